"""The shared plumbing: batches, eval mode, devices, optional imports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from interp_lib._plumbing import (
    check_device,
    evaluating,
    model_device,
    require,
    unpack_batch,
)


def test_evaluating_restores_every_submodule_mode_even_on_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net.train()
    net[1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError), evaluating(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError("boom")
    assert net.training and net[0].training and not net[1].training


def test_unpack_batch_forms():
    x, y, m = torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), torch.zeros(2, 4, 4)
    assert unpack_batch(x).y is None
    b = unpack_batch((x, y, m))
    assert b.x is x and b.y is y and b.masks is m
    b = unpack_batch({"image": x, "label": [0, 1]})
    assert torch.equal(b.y, y)
    assert unpack_batch(np.zeros((2, 3))).x.shape == (2, 3)
    with pytest.raises(TypeError, match="each batch must be"):
        unpack_batch("images")
    with pytest.raises(ValueError, match="needs labels"):
        unpack_batch(x, need_labels=True)


def test_device_policy():
    net = nn.Linear(2, 2)
    assert model_device(net) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert check_device(net, None) == torch.device("cpu")
    with pytest.raises(ValueError, match="move the model first"):
        check_device(net, "meta")


def test_require_names_the_extra():
    with pytest.raises(ModuleNotFoundError, match=r'pip install "interp_lib\[all\]"'):
        require("surely_not_installed_pkg", "a feature")
    assert require("math", "x").sqrt(4.0) == 2.0


def test_glue_hands_myst_nb_plain_numbers(monkeypatch):
    """numpy and torch scalars reach MyST-NB as Python numbers (it cannot format
    'np.float64(0.9)'), and print as numbers outside a book build."""
    import sys
    import types

    from interp_lib.book import glue

    seen = {}
    fake = types.SimpleNamespace(glue=lambda name, value, display=False: seen.update({name: value}))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    monkeypatch.setenv("INTERP_LIB_BOOK_BUILD", "1")
    glue("a", np.float64(0.9))
    glue("b", torch.tensor(2.5))
    assert seen == {"a": 0.9, "b": 2.5}
    assert type(seen["a"]) is float and type(seen["b"]) is float
