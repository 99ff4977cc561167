"""Profiling: device strings and damaged per-class files give one clear error (issue 21,
items 13 and 16)."""

from __future__ import annotations

import pytest
import torch
from test_profile_cli import args, folder, weights  # noqa: F401 (fixtures)
from torch import nn

from interp_lib.profile import cli, collect_activations, layer_ids


@pytest.mark.parametrize("storage_device", ["bogus", "meta", "cuda:99"])
def test_storage_device_names_the_valid_devices(storage_device):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"storage_device.*valid devices here: \['cpu'"):
        collect_activations(model, x, storage_device=storage_device, progress=False)
    with pytest.raises(ValueError, match="storage_device"):
        layer_ids(model, x, storage_device=storage_device, progress=False)


def test_a_truncated_class_file_is_named(folder, weights, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    extra = ("--no-figure", "--max-classes", "1")
    cli.run(args(folder, out, weights, *extra))
    path = out / "classes" / "n01.json"
    path.write_text(path.read_text()[:20])  # a copy cut short
    with pytest.raises(ValueError, match=r"n01\.json.*damaged.*delete it"):
        cli.run(args(folder, out, weights, *extra, "--resume"))  # a bare JSONDecodeError before
