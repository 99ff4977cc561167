"""Tiny synthetic data and models shared by the ProtoPNet training tests (not a test file).

Images are 16x16 RGB noise with one 4x4 square at a random place; the class (0..3) is
the square's colour (red, green, blue, yellow): a part that a prototype can match anywhere,
so a tiny ProtoPNet learns it in a few epochs.
"""

from __future__ import annotations

import pytest
import torch
from _helpers import single_thread, tiny_protopnet
from torch.utils.data import DataLoader, Dataset, TensorDataset

from interp_lib.protopnet import ProtoPNet
from interp_lib.protopnet.stages import Schedule

COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def squares(n: int, seed: int = 0, size: int = 16) -> TensorDataset:
    """``n`` images (n, 3, size, size) and labels (n,): class = colour of the square."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.2 * torch.rand(n, 3, size, size, generator=g)
    corners = torch.randint(0, size - 4 + 1, (n, 2), generator=g)
    for i in range(n):
        a, b = int(corners[i, 0]), int(corners[i, 1])
        x[i, :, a : a + 4, b : b + 4] = COLOURS[y[i]].view(3, 1, 1)
    return TensorDataset(x, y)


class Jitter(Dataset):
    """Adds noise drawn from torch's *global* RNG: an augmentation that resuming must
    reproduce exactly."""

    def __init__(self, base: Dataset, scale: float = 0.05) -> None:
        self.base, self.scale = base, scale

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x + self.scale * torch.randn(x.shape), y


def tiny_model(seed: int = 0, *, batch_norm: bool = False) -> ProtoPNet:
    """2 prototypes per class, D = 8, a 2-stage small CNN: a 4x4 latent map at 16 px
    (the shared factory :func:`_helpers.tiny_protopnet`, also for the DDP worker)."""
    return tiny_protopnet(
        seed,
        n_classes=4,
        prototype_dim=8,
        widths=(8, 8),
        backbone_kwargs={"batch_norm": batch_norm},
    )


def no_push(epochs: int = 3, **kw) -> Schedule:
    """A schedule without pushes: 1 warm-up epoch, then joint at lr 1e-2 (from scratch)."""
    base = dict(epochs=epochs, warmup_epochs=1, push_start=10**6, final_push=False,
                joint_lr_features=1e-2, joint_lr_add_on=1e-2, joint_lr_prototypes=1e-2)  # fmt: skip
    base.update(kw)
    return Schedule(**base)


def loaders(n_train: int = 64, n_val: int = 32, batch_size: int = 16, shuffle: bool = True):
    """(train, val, push) loaders over :func:`quadrants` data."""
    tr, va = squares(n_train, 0), squares(n_val, 1)
    return (
        DataLoader(tr, batch_size=batch_size, shuffle=shuffle),
        DataLoader(va, batch_size=n_val),
        DataLoader(tr, batch_size=n_train),
    )


#: One torch thread for tiny models (autouse in the modules that import it).
one_thread = pytest.fixture(autouse=True, name="one_thread")(single_thread)


def ddp_setup(per_process_batch: int, world_size: int = 2):
    """Model, loaders and schedule of the DDP test.

    Under DDP each process gets ``per_process_batch`` images per step; run alone with
    ``per_process_batch * world_size`` to see the same global batches (no shuffling, so
    the DistributedSampler's interleaved shards make up exactly the same batches).
    """
    train_set, val_set = squares(64, 0), squares(24, 1)
    model = tiny_model(seed=0)
    train = DataLoader(train_set, batch_size=per_process_batch, shuffle=False)
    val = DataLoader(val_set, batch_size=8)
    push_ld = DataLoader(train_set, batch_size=32)
    schedule = with_push(epochs=2, last_layer_passes=1, select="any")
    return model, train, val, push_ld, schedule


def with_push(epochs: int = 3, **kw) -> Schedule:
    """1 warm-up epoch, joint epochs at lr 1e-2, a push after epochs 1, 2, ... (and the
    last), each followed by 2 last-layer passes."""
    base = dict(push_start=1, push_every=1, final_push=True, last_layer_passes=2)
    base.update(kw)
    return no_push(epochs, **base)
