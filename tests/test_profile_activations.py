"""collect_activations(): exact row counts, values, memory budget, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.profile import ActivationCollector, collect_activations


class Counter(nn.Module):
    """Identity that counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
        Counter(),
    )


X = torch.randn(50, 1, 8, 8, generator=torch.Generator().manual_seed(1))
Y = torch.arange(50) % 3


def reference(net: nn.Sequential, x: torch.Tensor, index: int) -> torch.Tensor:
    with torch.no_grad():
        out = x
        for module in list(net)[: index + 1]:
            out = module(out.clone())
    return out.flatten(1)


@pytest.mark.parametrize("batch_size", [7, 16, 50])
def test_exact_rows_across_ragged_batches(batch_size):
    net = cnn()
    loader = DataLoader(TensorDataset(X, Y), batch_size=batch_size)
    acts = collect_activations(net, loader, ["input", "3", "9"], n_samples=23, progress=False)
    assert {k: v.shape for k, v in acts.items()} == {
        "input": (23, 64),
        "3": (23, 8 * 4 * 4),
        "9": (23, 3),
    }
    torch.testing.assert_close(acts["input"], X[:23].flatten(1))
    # conv output before the in-place ReLU
    torch.testing.assert_close(acts["3"], reference(net, X[:23], 3))
    torch.testing.assert_close(acts["9"], reference(net, X[:23], 9))


def test_tensor_data_all_samples_aliases_and_order():
    net = cnn()
    acts = collect_activations(
        net, X, {"9": "logits", "input": "pixels"}, batch_size=8, progress=False
    )
    assert list(acts) == ["logits", "pixels"]
    assert acts["logits"].shape == (50, 3) and acts["pixels"].shape == (50, 64)


def test_memory_budget_groups_give_the_same_numbers():
    net = cnn()
    layers = ["input", "0", "2", "3", "7", "output"]
    one = collect_activations(net, X, layers, n_samples=37, batch_size=10, progress=False)
    collector = ActivationCollector(
        net, X, layers, n_samples=37, batch_size=10, max_bytes=37 * 256 * 4, progress=False
    )
    assert len(collector.groups) >= 3
    grouped = collector.collect()
    assert list(grouped) == layers
    for name in layers:
        assert torch.equal(one[name], grouped[name]), name


def test_forward_pass_stops_after_the_last_requested_layer():
    net = cnn()
    collect_activations(net, X, ["3"], n_samples=40, batch_size=10, progress=False)
    assert net[-1].calls == 1  # the dry run only; the 4 real batches stopped at layer 3
    collect_activations(net, X, ["output"], n_samples=40, batch_size=10, progress=False)
    assert net[-1].calls == 1 + 1 + 4


def test_float16_storage_halves_memory_and_spatial_mean():
    net = cnn()
    full = collect_activations(net, X, ["0"], progress=False)["0"]
    half = collect_activations(net, X, ["0"], dtype=torch.float16, progress=False)["0"]
    assert half.dtype == torch.float16
    assert half.nbytes * 2 == full.nbytes
    torch.testing.assert_close(half.float(), full, atol=1e-2, rtol=1e-2)
    mean = collect_activations(net, X, ["0"], reduce="spatial_mean", progress=False)["0"]
    torch.testing.assert_close(mean, full.reshape(50, 4, 64).mean(2))


def test_shuffled_loader_with_several_passes_is_refused():
    net = cnn()
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(X), batch_size=10, shuffle=True)
    with pytest.raises(ValueError, match="different inputs"):
        collect_activations(
            net, loader, ["input", "0"], n_samples=40, max_bytes=40 * 256 * 4, progress=False
        )


def test_one_shot_iterator_needs_a_single_pass():
    net = cnn()
    batches = (x for x in X.split(10))
    acts = collect_activations(net, batches, ["9"], n_samples=50, progress=False)
    assert acts["9"].shape == (50, 3)
    with pytest.raises(ValueError, match="one-shot"):
        collect_activations(
            net,
            (x for x in X.split(10)),
            ["input", "0"],
            n_samples=50,
            max_bytes=50 * 256 * 4,
            progress=False,
        )


def test_clear_errors():
    net = cnn()
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8)), batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        collect_activations(net, empty, ["0"], progress=False)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        collect_activations(net.state_dict(), X, ["0"], progress=False)
    with pytest.raises(ValueError, match="Did you mean 'output'"):
        collect_activations(net, X, ["outptu"], progress=False)
    with pytest.raises(ValueError, match="only 50 samples"):
        collect_activations(net, X, ["0"], n_samples=60, progress=False)
    with pytest.raises(ValueError, match="cannot hold even one layer"):
        collect_activations(net, X, ["0"], max_bytes=100, progress=False)
    with pytest.raises(ValueError, match="n_samples is needed"):
        collect_activations(net, iter(X.split(5)), ["0"], progress=False)
    # batches are unpacked by interp_lib._plumbing.unpack_batch: a dict needs an image key
    with pytest.raises(TypeError, match="each batch must be a tensor"):
        collect_activations(net, [{"pixels": X}], ["0"], n_samples=3, progress=False)
    assert (
        collect_activations(net, [{"x": X}], ["0"], n_samples=3, progress=False)["0"].shape[0] == 3
    )
    with pytest.raises(TypeError, match="dtype"):
        collect_activations(net, X, ["0"], dtype=torch.int32, progress=False)


def test_model_training_flags_restored_and_no_hooks_left():
    net = cnn().train()
    with pytest.raises(ValueError):
        collect_activations(net, X, ["0"], n_samples=60, progress=False)
    collect_activations(net, X, ["0"], progress=False)
    assert all(m.training for m in net.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
