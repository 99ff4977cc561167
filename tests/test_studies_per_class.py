"""The one per-class protocol, ``studies.class_profiles``: numbers unchanged for both of its
callers (part I's tensors, the command line's ImageFolder), image choice, streaming from a
Dataset, resuming from saved records.

``data/per_class_golden.json`` holds the outputs of the two implementations that existed
before they were merged (commit 167605f: ``studies.class_profiles`` and
``python -m interp_lib.profile``), made by ``data/make_per_class_golden.py`` on one CPU
(an AMD EPYC). They were bit-identical there; on another CPU the float32 products and
reductions (MKL's and torch's kernels for that instruction set) round differently in the
last bits, which moves the estimates by up to about 1e-5 relative (7e-6 seen on an Intel
Xeon with AVX-512). So the golden comparison allows 1e-4 relative on floats, far below
what any change of the protocol (images, resamples, seeds, ranks) moves, and every
integer, string and missing value must match exactly; within one machine the runs are
compared bit for bit.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from _helpers import GOLDEN_RTOL, same_numbers
from torch import nn
from torch.utils.data import TensorDataset

from interp_lib.studies import ClassProfiles, class_indices, class_profiles

GOLDEN = json.loads((Path(__file__).parent / "data" / "per_class_golden.json").read_text())

#: The option sets of the golden tensor runs.
TENSOR_RUNS = {
    "tensors_a": {"n_resamples": 3, "max_rank": 16, "seed": 2},
    "tensors_b": {"n_per_class": 30, "n_resamples": 0, "pca": False, "max_rank": None},
    "tensors_c": {"n_per_class": 35, "n_resamples": 4, "max_rank": 8, "subsample": 0.8, "seed": 1},
}


def tensor_data():
    """Two classes of known ID (2 and 5) in 12 pixels, with duplicates; a tiny ReLU net."""
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(8, 12, generator=g)
    x0 = torch.rand(40, 2, generator=g) @ basis[:2]
    x1 = torch.rand(45, 5, generator=g) @ basis[2:7] + 5
    x = torch.cat([x0, x1, x0[:6]]).reshape(-1, 1, 3, 4)
    y = torch.tensor([0] * 40 + [1] * 45 + [0] * 6)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))
    return net, x, y


def _same(a, b) -> bool:
    return same_numbers(a, b)


def _close(a, b) -> bool:
    return same_numbers(a, b, GOLDEN_RTOL)


def _profile(**kw) -> ClassProfiles:
    net, x, y = tensor_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return class_profiles(net, x, y, **kw)


@pytest.mark.parametrize("run", sorted(TENSOR_RUNS))
def test_tensor_numbers_are_those_of_the_old_class_profiles(run):
    prof = _profile(**TENSOR_RUNS[run])
    for field, old in GOLDEN[run].items():
        new = getattr(prof, field)
        new = new.tolist() if isinstance(new, torch.Tensor) else new
        assert _close(old, new), field


def test_a_dataset_streamed_per_class_gives_the_numbers_of_the_tensors():
    net, x, y = tensor_data()
    kw = {"n_resamples": 3, "max_rank": 16, "seed": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = class_profiles(net, TensorDataset(x, y), y, **kw)
        small = class_profiles(net, TensorDataset(x, y), y, max_bytes=2400, **kw)
    tensors = _profile(**kw)
    for field, old in GOLDEN["tensors_a"].items():
        want = getattr(tensors, field)
        want = want.tolist() if isinstance(want, torch.Tensor) else want
        assert _close(old, want), field
        for prof in (streamed, small):  # on one machine: bit for bit
            new = getattr(prof, field)
            assert _same(want, new.tolist() if isinstance(new, torch.Tensor) else new), field


def test_class_indices_first_or_a_seeded_random_subset_per_class():
    labels = [0, 1, 0, 0, 1, 0, 2, 0, 1]
    assert class_indices(labels) == {0: [0, 2, 3, 5, 7], 1: [1, 4, 8], 2: [6]}
    assert class_indices(labels, 2) == {0: [0, 2], 1: [1, 4], 2: [6]}
    rand = class_indices(labels, 2, choose="random", seed=5)
    assert rand == class_indices(torch.tensor(labels), 2, choose="random", seed=5)
    pick = torch.randperm(5, generator=torch.Generator().manual_seed(5))[:2]
    assert rand[0] == sorted([0, 2, 3, 5, 7][int(j)] for j in pick)  # drawn with seed + label
    pick = torch.randperm(3, generator=torch.Generator().manual_seed(6))[:2]
    assert rand[1] == sorted([1, 4, 8][int(j)] for j in pick)
    assert rand[2] == [6]
    with pytest.raises(ValueError, match="choose"):
        class_indices(labels, 2, choose="last")


def test_random_choice_profiles_the_random_subset():
    net, x, y = tensor_data()
    idx = class_indices(y, 30, choose="random", seed=4)
    prof = _profile(n_per_class=30, choose="random", seed=4, n_resamples=2, max_rank=8)
    by_hand = _profile(n_per_class=None, seed=4, n_resamples=2, max_rank=8, classes=[0])
    assert prof.n_per_class == (30, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = class_profiles(net, x[idx[1]], y[idx[1]], seed=4, n_resamples=2, max_rank=8)
    assert torch.equal(prof.twonn[1], one.twonn[0]) and torch.equal(prof.gride[1], one.gride[0])
    assert not torch.equal(prof.twonn[0], by_hand.twonn[0])  # a subset, not all 46 images


def test_done_classes_are_skipped_and_each_new_class_is_handed_over():
    full = _profile(**TENSOR_RUNS["tensors_c"])
    records = full.to_records()
    assert json.loads(json.dumps(records)) == records  # JSON-ready
    seen = []
    again = _profile(**TENSOR_RUNS["tensors_c"], done={0: records[0]}, on_class=seen.append)
    assert [r["class"] for r in seen] == [1] and _same(seen[0], records[1])
    assert again.to_records() == records
    back = ClassProfiles.from_records(records)
    for field in ("twonn", "twonn_error", "pca", "gride", "gride_scale", "dimension"):
        assert _same(getattr(back, field).tolist(), getattr(full, field).tolist()), field
    assert back.gride_ranks == full.gride_ranks and back.classes == (0, 1)
    other = dict(records[1], layers=["a"])
    with pytest.raises(ValueError, match="other layers"):
        ClassProfiles.from_records([records[0], other])


def test_mean_profile_and_summary_average_over_classes():
    prof = _profile(**TENSOR_RUNS["tensors_b"])
    mean = prof.mean_profile()
    assert mean.layers == prof.layers and mean.dimensions == tuple(prof.mean().tolist())
    assert mean.errors == tuple(prof.sd().tolist())
    summary = prof.summary()
    assert summary["id_mean"] == prof.mean().tolist() and summary["n_classes"] == 2
    one = ClassProfiles.from_records(prof.to_records()[:1])
    assert one.sd().isnan().all()  # no spread over one class


def test_clear_errors():
    net, x, y = tensor_data()
    with pytest.raises(ValueError, match="shared_search=False"):
        class_profiles(net, x, y, estimator="mle")
    with pytest.raises(ValueError, match="pca and max_rank need shared_search"):
        class_profiles(net, x, y, shared_search=False)
    with pytest.raises(ValueError, match="classes \\[7\\]"):
        class_profiles(net, x, y, classes=[7])
    with pytest.raises(ValueError, match="labels are needed"):
        class_profiles(net, x)
    with pytest.raises(TypeError, match="map-style Dataset"):
        class_profiles(net, [x], y)
    with pytest.raises(ValueError, match="need at least 10"):
        class_profiles(net, x, y, n_per_class=5)
