"""``python -m interp_lib.profile``: the ID profile of a network at paper scale.

Ansuini et al. (2019) measure the hunchback on **single-class** image sets: about 500
training images of one ImageNet category, the network in eval mode, activations
flattened at the input, every max-pool, every fully connected layer and the output; the
TwoNN ID (least squares, 90 % of the ratios) of each layer is the **mean over random 90 %
subsamples** and its error bar their standard deviation; the profiles of the categories
are then averaged (their ``scripts/pretrained/hunchback.py``: ``--nsamples 500``,
``--res 50``, ``Resize(256)``, ``CenterCrop(224)``, ImageNet normalisation). This command
runs that protocol on any ``ImageFolder`` (``root/<class>/<image>``)::

    python -m interp_lib.profile vgg16 /data/imagenet_single_objects --out runs/vgg16 \\
        --weights vgg16-397923af.pth --device cuda
    python -m interp_lib.profile mypkg.nets:make_net /data/folder --out runs/mine \\
        --model-kwargs '{"n_classes": 10}' --image-size 64 --layers input features.3 fc

``MODEL`` is a torchvision model name (built with ``weights=None``: nothing is
downloaded; pass the weights file with ``--weights``) or ``module:factory``, a function
returning an ``nn.Module``. ``--weights`` is a state dict (or a checkpoint dict with a
``state_dict``/``model`` entry) loaded with ``torch.load(weights_only=True)``.

Outputs in ``--out``:

- ``config.json``: the settings of the run (a rerun with other settings is refused);
- ``classes/<class>.json``: one file per class, written atomically when the class is
  done; **a rerun skips finished classes**, so an interrupted run resumes;
- ``profile.json``: per layer, the mean and standard deviation over classes of the
  per-class ID, with every class's numbers;
- ``profile.png``: the mean profile against relative depth (needs matplotlib,
  ``pip install "interp_lib[viz]"``; ``--no-figure`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._plumbing import require
from ..networks import build

__all__ = ["main", "run"]

VERSION = 1


# ------------------------------------------------------------------------- results


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically: a temporary file renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m interp_lib.profile",
        description="Per-class intrinsic-dimension profile of a network (Ansuini et al. 2019).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="torchvision model name (e.g. vgg16) or module:factory")
    p.add_argument("data", help="ImageFolder root: one sub-folder of images per class")
    p.add_argument("--out", required=True, help="output folder (created; resumable)")
    p.add_argument("--weights", help="state dict file, loaded with weights_only=True")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of the factory")
    p.add_argument(
        "--layers", nargs="+", help="dotted layer names (default: the paper's checkpoints)"
    )
    p.add_argument("--classes", nargs="+", help="class folder names (default: all)")
    p.add_argument("--max-classes", type=int, help="only the first N classes (sorted by name)")
    p.add_argument("--n-per-class", type=int, default=500, help="images per class (paper: ~500)")
    p.add_argument(
        "--n-resamples", type=int, default=50, help="90%% subsamples per class and layer"
    )
    p.add_argument("--subsample", type=float, default=0.9, help="subsample share")
    p.add_argument("--estimator", default="twonn", choices=["twonn", "mle", "pca"])
    p.add_argument("--image-size", type=int, default=224, help="centre crop side (pixels)")
    p.add_argument("--no-normalize", action="store_true", help="skip ImageNet normalisation")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage type of the activations")  # fmt: skip
    p.add_argument("--max-bytes", type=int, help="memory budget for activations (bytes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and subsamples")
    p.add_argument("--no-figure", action="store_true", help="do not draw profile.png")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p


def _config(args: argparse.Namespace, class_names: list[str]) -> dict[str, Any]:
    keys = ("model", "weights", "layers", "n_per_class", "n_resamples", "subsample",
            "estimator", "image_size", "no_normalize", "dtype", "seed")  # fmt: skip
    config = {k: getattr(args, k) for k in keys}
    config["model_kwargs"] = json.loads(args.model_kwargs)
    config["data"] = str(Path(args.data).resolve())
    config["weights"] = None if args.weights is None else str(Path(args.weights).resolve())
    config["classes"] = class_names
    return config


def _check_args(args: argparse.Namespace) -> None:
    for name in ("n_per_class", "n_resamples", "image_size", "batch_size", "max_classes",
                 "max_bytes", "num_workers"):  # fmt: skip
        value = getattr(args, name)
        minimum = 0 if name in ("n_resamples", "num_workers") else 1
        if value is not None and value < minimum:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}.")
    if not 0 < args.subsample <= 1:
        raise ValueError(f"--subsample must lie in (0, 1], got {args.subsample}.")
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--model-kwargs must be a JSON object, got {args.model_kwargs!r} ({exc})."
        ) from exc
    if not isinstance(kwargs, dict):
        raise ValueError(f"--model-kwargs must be a JSON object, got {args.model_kwargs!r}.")


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command (see the module docstring); returns the summary of ``profile.json``."""
    args = _parser().parse_args(argv)
    _check_args(args)
    if not args.no_figure:
        require("matplotlib", "python -m interp_lib.profile (profile.png; or pass --no-figure)")
    from ..datasets import image_folder, imagenet_transform

    dataset = image_folder(
        args.data, transform=imagenet_transform(args.image_size, normalize=not args.no_normalize)
    )
    names = list(dataset.classes)
    wanted = names
    if args.classes:
        unknown = [c for c in args.classes if c not in dataset.class_to_idx]
        if unknown:
            raise ValueError(
                f"--classes {unknown} are not folders of {args.data!r}; it has {names[:10]}..."
            )
        wanted = list(args.classes)
    if args.max_classes:
        wanted = wanted[: args.max_classes]
    config = _config(args, wanted)
    out = Path(args.out)
    (out / "classes").mkdir(parents=True, exist_ok=True)
    config_file = out / "config.json"
    if config_file.exists():
        saved = json.loads(config_file.read_text())
        # the class selection may change between runs: per-class results do not depend on it
        keys = (set(saved) | set(config)) - {"classes"}
        diff = sorted(k for k in keys if saved.get(k) != config.get(k))
        if diff:
            raise ValueError(
                f"{str(out)!r} holds results of another run (settings differ in {diff}). "
                "Pass another --out, or delete the folder to start afresh."
            )
    else:
        _write_json(config_file, config)
    model = build(args.model, args.weights, **config["model_kwargs"]).to(args.device)
    from ..studies import ClassProfiles, class_profiles

    done = {}
    for name in wanted:
        path = out / "classes" / f"{name}.json"
        if path.exists():  # finished by an earlier run
            try:
                done[name] = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError) as exc:  # truncated or damaged
                raise ValueError(
                    f"{str(path)!r} is damaged ({exc}); delete it to profile class {name!r} again."
                ) from None
            print(f"{name}: done before, skipped", file=sys.stderr)

    def save(record: dict[str, Any]) -> None:
        _write_json(out / "classes" / f"{record['class']}.json", record)
        ids = ", ".join(f"{v:.1f}" for v in record["id"] if v is not None)
        print(f"{record['class']}: {record['n_images']} images, ID {ids}", file=sys.stderr)

    profiles: ClassProfiles = class_profiles(
        model, dataset, layers=args.layers, choose="random", n_per_class=args.n_per_class,
        classes=wanted, shared_search=False, estimator=args.estimator, pca=False,
        max_rank=None, n_resamples=args.n_resamples, subsample=args.subsample, seed=args.seed,
        batch_size=args.batch_size, num_workers=args.num_workers, dtype=getattr(torch, args.dtype),
        max_bytes=args.max_bytes, progress=args.progress, done=done, on_class=save,
    )  # fmt: skip
    summary = {"version": VERSION, "config": config, **profiles.summary()}
    _write_json(out / "profile.json", summary)
    if not args.no_figure:
        require("matplotlib", "profile.png").use("Agg")
        from ..viz import plot_profile

        title = f"{args.model}: {len(profiles.classes)} classes x {args.n_per_class} images"
        fig = plot_profile(profiles.mean_profile(), annotate=True, title=title)
        fig.savefig(out / "profile.png", dpi=120)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m interp_lib.profile``; errors print as one line."""
    try:
        summary = run(argv)
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = zip(summary["layers"], summary["id_mean"], summary["id_sd_over_classes"], strict=True)
    for layer, m, s in rows:
        print(f"{layer:>24}  {m if m is not None else float('nan'):8.2f} ± "
              f"{s if s is not None else float('nan'):.2f}")  # fmt: skip
    return 0
