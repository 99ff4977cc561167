"""Hardening of interp_lib.profile: loaders that change between passes, bad inputs,
threads, seeds and optional dependencies (issue 10 items 4, 5 and 7)."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from _helpers import run_in_threads
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from interp_lib.profile import (
    ActivationCollector,
    collect_activations,
    default_checkpoints,
    layer_ids,
    list_layers,
)


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )


X = torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(1))
LAYERS = ["input", "0", "2", "4"]
ONE_LAYER = 40 * 4 * 8 * 8 * 4  # bytes of the widest layer ("0"): several passes


class RandomFlip(Dataset):
    """A RandomHorizontalFlip-like augmentation: every row sum is unchanged."""

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i: int):
        x = X[i]
        return (x.flip(-1) if torch.rand(()) < 0.5 else x), 0


def test_a_flipping_loader_is_refused_under_a_memory_budget():
    # the old check compared per-row sums, which a flip leaves unchanged: this passed
    # silently and mixed activations of different inputs across layers
    torch.manual_seed(0)
    loader = DataLoader(RandomFlip(), batch_size=10)
    collector = ActivationCollector(cnn(), loader, LAYERS, max_bytes=ONE_LAYER, progress=False)
    assert len(collector.groups) > 1
    with pytest.raises(ValueError, match="loader must be deterministic"):
        collector.collect()


def test_a_deterministic_loader_passes_the_check_and_gives_one_pass_numbers():
    loader = DataLoader(TensorDataset(X), batch_size=10)
    one = collect_activations(cnn(), loader, LAYERS, progress=False)
    many = collect_activations(cnn(), loader, LAYERS, max_bytes=ONE_LAYER, progress=False)
    for name in LAYERS:
        assert torch.equal(one[name], many[name])


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.randn(6, 1, 8, 8), ValueError, r"expects 3-channel inputs \(B, 3, H, W\)"),
        (torch.randn(6, 3, 12, 12), ValueError, r"shapes cannot be multiplied.*image size"),
        (torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8), TypeError, "x.float"),
        (torch.randn(6, 3, 8, 8, dtype=torch.float64), TypeError, "torch.float32"),
    ],
)
def test_inputs_the_model_cannot_take_fail_clearly(images, error, match):
    for call in (
        lambda: collect_activations(cnn(), images, ["0"], progress=False),
        lambda: layer_ids(cnn(), images, progress=False),
        lambda: default_checkpoints(cnn(), images),
    ):
        with pytest.raises(error, match=match) as info:
            call()
        assert info.traceback[-1].path.parts[-3:-1] == ("interp_lib", "profile")


def test_a_later_batch_of_another_size_fails_clearly():
    batches = [X[:10], X[10:20, :, :6, :6]]
    with pytest.raises(ValueError, match=r"batch at row 10 .* same size, channels and dtype"):
        collect_activations(cnn(), batches, ["0"], n_samples=20, progress=False)


@pytest.mark.parametrize("bad", [0, -3])
def test_zero_or_negative_sizes_are_value_errors(bad):
    with pytest.raises(ValueError, match="batch_size"):
        collect_activations(cnn(), X, ["0"], batch_size=bad, progress=False)
    with pytest.raises(ValueError, match="chunk_size"):
        layer_ids(cnn(), X, ["4"], estimator_kwargs={"chunk_size": bad}, progress=False)
    with pytest.raises(ValueError, match="n_samples"):
        layer_ids(cnn(), X, ["4"], n_samples=bad, progress=False)


def test_one_model_profiled_from_several_threads():
    net = cnn()
    expected = collect_activations(net, X, LAYERS, batch_size=8, progress=False)
    results: dict[int, dict] = {}

    def work(i: int) -> None:
        results[i] = collect_activations(net, X[: 20 + i], LAYERS, batch_size=4 + i, progress=False)

    run_in_threads(work, 4)
    for i, acts in results.items():
        for name in LAYERS:
            torch.testing.assert_close(acts[name], expected[name][: 20 + i])


def test_seed_accepts_int_generator_and_none():
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(150, 6, generator=torch.Generator().manual_seed(3))
    a = layer_ids(net, x, n_resamples=3, seed=torch.Generator().manual_seed(5), progress=False)
    b = layer_ids(net, x, n_resamples=3, seed=torch.Generator().manual_seed(5), progress=False)
    assert a == b
    c = layer_ids(net, x, n_resamples=3, seed=None, progress=False)
    assert c.dimensions == a.dimensions  # the full-set estimate needs no randomness
    with pytest.raises(TypeError, match=r"seed must be an int, a torch\.Generator or None"):
        layer_ids(net, x, seed=1.5, progress=False)
    with pytest.raises(TypeError):
        layer_ids(net, x, repeats=3, progress=False)  # the old name is gone


@pytest.mark.parametrize(("module", "method"), [("pandas", "to_pandas"), ("matplotlib", "plot")])
def test_missing_optional_dependency_names_the_extra(monkeypatch, module, method):
    net = nn.Sequential(nn.Linear(4, 3))
    prof = layer_ids(net, torch.randn(50, 4), n_resamples=0, progress=False)
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "interp_lib\[viz\]"'):
        getattr(prof, method)()


@pytest.mark.slow  # a fresh interpreter imports torch
def test_profile_does_not_import_viz_or_matplotlib():
    import subprocess

    code = (
        "import sys, interp_lib.profile; "
        "print(any(m.startswith(('interp_lib.viz', 'matplotlib')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_checkpoints_and_relative_depth_check_the_example():
    from interp_lib.profile import relative_depth

    with pytest.raises(TypeError, match="example must be an input batch"):
        default_checkpoints(cnn(), [[1.0]])
    with pytest.raises(ValueError, match="at least one sample"):
        relative_depth(cnn(), torch.zeros(0, 3, 8, 8), ["0"])


class _Aliased(nn.Module):
    """A module registered under two names, and a shared activation under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6))
        self.head = self.body[2]
        self.act = nn.ReLU()
        self.act2 = self.act

    def forward(self, x):
        return self.act(self.body(x))


@pytest.mark.parametrize("name", ["body.2", "head", "act", "act2"])
def test_a_module_registered_under_two_names_is_profiled_under_either(name):
    torch.manual_seed(0)
    model = _Aliased()
    x = torch.randn(64, 5)
    acts = collect_activations(model, x, [name], progress=False)
    assert list(acts) == [name]  # keyed by the name asked for
    with torch.no_grad():
        expected = model.body(x) if name in ("body.2", "head") else model(x)
    torch.testing.assert_close(acts[name], expected)
    assert name in ("head", "act2") or name in list_layers(model)


def test_two_names_of_one_module_are_one_layer():
    with pytest.raises(ValueError, match=r"requested twice.*another name"):
        collect_activations(_Aliased(), torch.randn(8, 5), ["body.2", "head"], progress=False)


class _DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.relu, self.b = nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)

    def forward(self, x):
        return {"logits": self.b(self.relu(self.a(x)))}


def test_a_model_returning_a_dict_is_profiled_at_its_layers():
    torch.manual_seed(0)
    x = torch.randn(100, 5)
    prof = layer_ids(_DictOutput(), x, progress=False)  # default checkpoints
    assert prof.layers[0] == "input" and "output" not in prof.layers and "b" in prof.layers
    prof = layer_ids(_DictOutput(), x, ["a", "b"], progress=False)
    assert all(math.isfinite(d) for d in prof.dimensions)
    with pytest.raises(ValueError, match="did not produce a tensor"):
        layer_ids(_DictOutput(), x, ["output"], progress=False)


def test_float16_overflow_names_the_layer_and_the_dtype():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 50), nn.ReLU(), nn.Linear(50, 50))
    with torch.no_grad():
        net[2].weight.mul_(1e4)
    x = 100 * torch.randn(100, 5)
    with pytest.raises(ValueError, match=r"layer '2' .*float16.*float32"):
        layer_ids(net, x, ["0", "2"], dtype=torch.float16, progress=False)
    prof = layer_ids(net, x, ["0", "2"], dtype=torch.bfloat16, progress=False)
    assert all(math.isfinite(d) for d in prof.dimensions)
