"""Corruption drill: damage a ``fit`` checkpoint at random and check every damage is caught.

Writes a real checkpoint (a tiny ProtoPNet after two epochs of ``fit``: model, optimiser
states, RNG states, history), then for each trial applies one random damage to a copy:
one flipped bit, 2-16 flipped bits, a truncation, an overwritten header (the first
16-512 bytes), or a block of random bytes. Each copy is read with ``load_checkpoint`` and
``read_checkpoint``. Outcomes:

* ``detected``: :class:`~interp_lib.protopnet.checkpoint.CorruptCheckpointError`;
* ``harmless``: it loaded and its contents equal the original exactly (the damage hit
  bytes that carry no content, e.g. zip metadata of the outer envelope);
* ``other error``: another exception type (a bug: should be a clear error);
* ``silent``: loaded with different contents (a bug: must never happen).

    .venv/bin/python bench/drill_corrupt.py --trials 500

Result (2026-11-29, 2-core machine, ``--trials 400``): 398 detected with
CorruptCheckpointError (83 single bits, 82 multi-bit, 79 blocks, 73 headers, 81
truncations), 2 harmless single-bit flips in zip metadata (contents loaded bit-identical),
0 other errors, 0 silent: 398/398 of the damages that changed the contents detected.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _damage(data: bytearray, rng: random.Random) -> tuple[str, bytearray]:
    data = bytearray(data)
    kind = rng.choice(["bit", "bits", "truncate", "header", "block"])
    if kind == "bit":
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    elif kind == "bits":
        for _ in range(rng.randint(2, 16)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "header":
        n = rng.randint(16, 512)
        data[:n] = bytes(rng.randrange(256) for _ in range(n))
    else:
        n, i = rng.randint(1, 256), rng.randrange(len(data))
        data[i : i + n] = bytes(rng.randrange(256) for _ in range(min(n, len(data) - i)))
    return kind, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import warnings

    from interp_lib.protopnet import ProtoPNet, Schedule, fit
    from interp_lib.protopnet.checkpoint import (
        CorruptCheckpointError,
        load_checkpoint,
        read_checkpoint,
    )

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ProtoPNet("small_cnn", n_classes=4, n_prototypes_per_class=2, prototype_dim=8,
                      image_size=16, backbone_kwargs={"widths": (8, 8), "batch_norm": False})  # fmt: skip
    x, y = torch.rand(32, 3, 16, 16), torch.randint(0, 4, (32,))
    tmp = Path(tempfile.mkdtemp(prefix="drill_corrupt_"))
    good = tmp / "good.pt"
    fit(model, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
        schedule=Schedule(epochs=2, warmup_epochs=1, push_start=99, final_push=False,
                          steps_per_epoch=None),
        checkpoint=good, progress=False)  # fmt: skip
    original = read_checkpoint(good)
    data = bytearray(good.read_bytes())
    print(f"checkpoint: {len(data)} bytes, keys {sorted(original)}")
    rng = random.Random(args.seed)
    outcomes: Counter = Counter()
    by_kind: Counter = Counter()
    examples: dict[str, str] = {}
    bad = tmp / "bad.pt"
    for _ in range(args.trials):
        kind, damaged = _damage(data, rng)
        bad.write_bytes(bytes(damaged))
        try:
            payload = read_checkpoint(bad)
            load_checkpoint(bad)
            outcome = "harmless" if _same(payload, original) else "silent"
        except CorruptCheckpointError as exc:
            outcome = "detected"
            examples.setdefault(kind, str(exc)[:160])
        except Exception as exc:  # what the drill looks for
            outcome = "other error"
            examples.setdefault("other " + kind, f"{type(exc).__name__}: {str(exc)[:160]}")
        outcomes[outcome] += 1
        by_kind[(kind, outcome)] += 1
    for (kind, outcome), n in sorted(by_kind.items()):
        print(f"  {kind:9s} {outcome:12s} {n}")
    for k, msg in examples.items():
        print(f"  e.g. {k}: {msg}")
    changed = args.trials - outcomes["harmless"]
    print(f"\n{args.trials} damaged copies: {outcomes['detected']} detected with "
          f"CorruptCheckpointError, {outcomes['harmless']} harmless (contents intact), "
          f"{outcomes['other error']} other errors, {outcomes['silent']} silent; "
          f"detected {outcomes['detected']}/{changed} of those whose contents changed")  # fmt: skip


if __name__ == "__main__":
    main()
