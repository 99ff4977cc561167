"""``python -m interp_lib.protopnet``: train, push, prune and explain from a config file.

The paper-scale recipe for readers with CUB-200-2011 and a GPU. Every command reads one
config file (TOML or JSON) and writes into one output folder::

    python -m interp_lib.protopnet train   cub_vgg19.toml --out runs/vgg19 [--resume]
    python -m interp_lib.protopnet push    cub_vgg19.toml --out runs/vgg19
    python -m interp_lib.protopnet prune   cub_vgg19.toml --out runs/vgg19
    python -m interp_lib.protopnet explain cub_vgg19.toml --out runs/vgg19 --n-images 8
    torchrun --nproc_per_node=4 -m interp_lib.protopnet train cub_vgg19.toml --out runs/vgg19

The config has five tables; keys of ``[model]``, ``[schedule]``, ``[fit]`` and
``[prune]`` are passed as keyword arguments to :class:`~interp_lib.protopnet.ProtoPNet`,
:class:`~interp_lib.protopnet.Schedule`, :func:`~interp_lib.protopnet.fit` and
:func:`~interp_lib.protopnet.prune`, so every option of the library is reachable::

    [data]
    kind = "cub"              # "cub" (CUB_200_2011 folder) or "folder" (root/train, root/test)
    root = "/data/CUB_200_2011"
    image_size = 224
    batch_size = 80           # per process under torchrun
    eval_batch_size = 100
    num_workers = 4
    augment = true            # rotation +-15 deg, shear, flip (the original's, on the fly)
    val_fraction = 0.1        # of the official training set, for model selection

    [model]
    backbone = "vgg19"
    backbone_weights = "/weights/vgg19-dcbb9e9d.pth"   # torchvision ImageNet weights, never downloaded
    n_prototypes_per_class = 10
    prototype_dim = 128
    add_on = "bottleneck"

    [schedule]                # the paper's Schedule() when empty

    [fit]
    amp = "bf16"
    channels_last = true
    seed = 0

Outputs in ``--out``: ``checkpoint.pt`` (resumable, written atomically after every
step), ``model.pt`` (the final trained model), ``history.json`` and ``history.csv``,
``metrics.json`` (test accuracy), ``pushed.pt`` / ``push.json``, ``pruned.pt`` /
``prune.json``, and ``explanations/*.png``. Figures need matplotlib
(``pip install "interp_lib[viz]"``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["load_config", "main"]

DATA_KEYS = {
    "kind": "cub",
    "root": None,
    "image_size": 224,
    "batch_size": 80,
    "eval_batch_size": 100,
    "num_workers": 0,
    "augment": True,
    "val_fraction": 0.1,
    "seed": 0,
}
TABLES = ("data", "model", "schedule", "fit", "prune")


def load_config(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read a TOML or JSON config into ``{table: {key: value}}`` with the data defaults.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be parsed, has an unknown table or data key, or no ``data.root``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist.")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        else:
            import tomllib

            raw = tomllib.loads(text)
    except (ValueError, ImportError) as exc:
        raise ValueError(
            f"could not read config {str(path)!r} ({exc}). Write TOML (.toml, Python >= 3.11) "
            "or JSON (.json) with the tables [data], [model], [schedule], [fit], [prune]."
        ) from exc
    if not isinstance(raw, dict):
        raise ValueError(
            f"config {str(path)!r} must be a table of tables, got {type(raw).__name__}."
        )
    unknown = sorted(set(raw) - set(TABLES))
    if unknown:
        raise ValueError(
            f"config {str(path)!r}: unknown tables {unknown}; expected {list(TABLES)}."
        )
    config = {t: dict(raw.get(t) or {}) for t in TABLES}
    bad = sorted(set(config["data"]) - set(DATA_KEYS))
    if bad:
        raise ValueError(f"config [data]: unknown keys {bad}; expected {sorted(DATA_KEYS)}.")
    config["data"] = {**DATA_KEYS, **config["data"]}
    if not config["data"]["root"]:
        raise ValueError("config [data] needs root = the dataset folder.")
    if config["data"]["kind"] not in ("cub", "folder"):
        raise ValueError(
            f"config [data] kind must be 'cub' or 'folder', got {config['data']['kind']!r}."
        )
    return config


def train_transform(image_size: int, augment: bool):
    """The original's augmentation, on the fly: rotation +-15 deg, shear, flip."""
    from torchvision import transforms as T

    from ..datasets.folders import IMAGENET_MEAN, IMAGENET_STD

    steps = [T.Resize((image_size, image_size))]
    if augment:
        steps += [
            T.RandomAffine(degrees=15, shear=(-10, 10, -10, 10)),
            T.RandomHorizontalFlip(),
        ]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


def datasets(data: dict[str, Any]) -> dict[str, Dataset]:
    """``train`` (augmented), ``push`` (the same images, plain), ``val`` and ``test``."""
    size, root = int(data["image_size"]), Path(data["root"])
    if data["kind"] == "cub":
        from ..datasets import CUB200

        kw = dict(crop=True, val_fraction=data["val_fraction"], seed=data["seed"])
        return {
            "train": CUB200(root, "train", transform=train_transform(size, data["augment"]), **kw),
            "push": CUB200(root, "train", image_size=size, **kw),
            "val": CUB200(root, "val", image_size=size, **kw) if data["val_fraction"] > 0 else None,
            "test": CUB200(root, "test", image_size=size, **kw),
        }
    from ..datasets import image_folder

    plain = train_transform(size, augment=False)
    out = {
        "train": image_folder(root / "train", transform=train_transform(size, data["augment"])),
        "push": image_folder(root / "train", transform=plain),
        "val": image_folder(root / "val", transform=plain) if (root / "val").is_dir() else None,
        "test": image_folder(root / "test", transform=plain),
    }
    return out


def loaders(sets: dict[str, Dataset | None], data: dict[str, Any]) -> dict[str, DataLoader | None]:
    common = dict(num_workers=int(data["num_workers"]), pin_memory=torch.cuda.is_available())
    out: dict[str, DataLoader | None] = {
        "train": DataLoader(
            sets["train"], batch_size=int(data["batch_size"]), shuffle=True, **common
        )
    }
    for name in ("push", "val", "test"):
        ds = sets[name]
        out[name] = (
            None
            if ds is None
            else DataLoader(ds, batch_size=int(data["eval_batch_size"]), shuffle=False, **common)
        )
    return out


def n_classes_of(dataset: Dataset) -> int:
    if hasattr(dataset, "class_names"):
        return len(dataset.class_names)
    return len(dataset.classes)


def build_model(config: dict[str, dict[str, Any]], n_classes: int):
    from .model import ProtoPNet

    kw = {"image_size": int(config["data"]["image_size"]), **config["model"]}
    kw.setdefault("n_classes", n_classes)
    return ProtoPNet(**kw)


@torch.no_grad()
def accuracy(model, loader: DataLoader, device: torch.device) -> float:
    from .._plumbing import evaluating, unpack_batch

    right = total = 0
    with evaluating(model):
        for batch in loader:
            b = unpack_batch(batch, need_labels=True)
            pred = model(b.x.to(device)).argmax(1).cpu()
            right += int((pred == b.y).sum())
            total += len(b.y)
    return right / max(total, 1)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)


def _write_history(out: Path, history) -> None:
    rows = history.rows()
    _write_json(out / "history.json", rows)
    keys = sorted({k for r in rows for k in r})
    tmp = out / "history.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "history.csv")


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _device(arg: str | None) -> torch.device:
    """``--device`` (default: CUDA if there is one); under ``torchrun`` a CUDA device without
    an index is this process's GPU (``LOCAL_RANK``)."""
    device = (
        torch.device(arg) if arg else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _load_model(path: Path, device: torch.device):
    from .checkpoint import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: run `train` first.")
    return load_checkpoint(path, map_location=device).to(device)


def cmd_train(config, out: Path, args) -> int:
    from .checkpoint import save_checkpoint
    from .stages import Schedule
    from .train import fit

    sets = datasets(config["data"])
    dl = loaders(sets, config["data"])
    device = _device(args.device)
    model = build_model(config, n_classes_of(sets["train"]))
    fit_kw = {"checkpoint": out / "checkpoint.pt", "resume": args.resume, **config["fit"]}
    history = fit(
        model,
        dl["train"],
        val_loader=dl["val"],
        push_loader=dl["push"],
        schedule=Schedule(**config["schedule"]),
        device=device,
        **fit_kw,
    )
    if _is_main():
        save_checkpoint(out / "model.pt", model)
        _write_history(out, history)
        acc = accuracy(model, dl["test"], device)
        _write_json(out / "metrics.json", {"test_accuracy": acc, "best_step": history.best_step})
        print(f"test accuracy {acc:.4f}; wrote {out}")
    return 0


def cmd_push(config, out: Path, args) -> int:
    from .checkpoint import save_checkpoint
    from .push import push

    device = _device(args.device)
    model = _load_model(out / "model.pt", device)
    dl = loaders(datasets(config["data"]), config["data"])
    result = push(model, dl["push"])
    save_checkpoint(out / "pushed.pt", model)
    acc = accuracy(model, dl["test"], device)
    summary = {
        "test_accuracy": acc,
        "duplicate_groups": result.duplicates(),
        "sample_index": result.sample_index.tolist(),
        "box_xyxy": result.box.tolist(),
        "activation_box_xyxy": result.activation_box.tolist(),
    }
    _write_json(out / "push.json", summary)
    print(f"pushed {model.prototypes.shape[0]} prototypes; test accuracy {acc:.4f}")
    return 0


def cmd_prune(config, out: Path, args) -> int:
    from .checkpoint import save_checkpoint
    from .prune import prune, retrain_last_layer

    device = _device(args.device)
    source = out / "pushed.pt" if (out / "pushed.pt").is_file() else out / "model.pt"
    model = _load_model(source, device)
    dl = loaders(datasets(config["data"]), config["data"])
    before = accuracy(model, dl["test"], device)
    result = prune(model, dl["push"], **config["prune"])
    retrain_last_layer(model, dl["push"])
    after = accuracy(model, dl["test"], device)
    save_checkpoint(out / "pruned.pt", model)
    _write_json(
        out / "prune.json",
        {
            "removed": [int(i) for i in result.removed],
            "accuracy_before": before,
            "accuracy_after": after,
        },
    )
    print(f"pruned {len(result.removed)} prototypes; test accuracy {before:.4f} -> {after:.4f}")
    return 0


def cmd_explain(config, out: Path, args) -> int:
    from .._plumbing import require
    from .explain import explain

    plt = require("matplotlib.pyplot", "python -m interp_lib.protopnet explain")
    from ..viz.protopnet import plot_scoring_sheet

    device = _device(args.device)
    source = next(
        (out / f for f in ("pruned.pt", "pushed.pt", "model.pt") if (out / f).is_file()), None
    )
    if source is None:
        raise FileNotFoundError(f"no model in {str(out)!r}: run `train` first.")
    model = _load_model(source, device)
    test = datasets(config["data"])["test"]
    folder = out / "explanations"
    folder.mkdir(exist_ok=True)
    n = min(int(args.n_images), len(test))
    index = torch.linspace(0, len(test) - 1, n).round().long().tolist() if n else []
    rows = []
    for i in index:
        x, y = test[i][0], int(test[i][1])
        (e,) = explain(model, x.unsqueeze(0).to(device), top_k=args.top_k)
        fig = plot_scoring_sheet(e)
        fig.savefig(folder / f"test_{i:05d}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        rows.append({"index": i, "label": y, "predicted": e.predicted_class, "logit": e.logit})
    _write_json(folder / "explanations.json", rows)
    print(f"wrote {len(rows)} scoring sheets to {folder}")
    return 0


COMMANDS = {"train": cmd_train, "push": cmd_push, "prune": cmd_prune, "explain": cmd_explain}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m interp_lib.protopnet",
        description="Train, push, prune and explain a ProtoPNet from a config file.",
    )
    p.add_argument("command", choices=sorted(COMMANDS))
    p.add_argument(
        "config", help="TOML or JSON config ([data], [model], [schedule], [fit], [prune])"
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--resume", action="store_true", help="train: continue from out/checkpoint.pt")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if any)")
    p.add_argument("--n-images", type=int, default=8, help="explain: number of test images")
    p.add_argument("--top-k", type=int, default=5, help="explain: prototypes per sheet")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if _is_main() and args.command == "train":
        _write_json(out / "config.json", config)
    created = _start_process_group(args)
    try:
        return COMMANDS[args.command](config, out, args)
    finally:
        if created:
            torch.distributed.destroy_process_group()


def _start_process_group(args) -> bool:
    """Under ``torchrun`` (any number of processes), join its process group for ``train``:
    nccl on CUDA, gloo on the CPU. ``fit`` then shards data and wraps the model in DDP
    when there is more than one process."""
    import torch.distributed as dist

    if args.command != "train" or "LOCAL_RANK" not in os.environ or not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    device = _device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
