"""``interp-lib-profile`` (or ``python -m interp_lib.profile``): the ID profile of a network
at paper scale.

Ansuini et al. (2019) measure the hunchback on **single-class** image sets: about 500
training images of one ImageNet category, the network in eval mode, activations
flattened at the input, every max-pool, every fully connected layer and the output; the
TwoNN ID (least squares, 90 % of the ratios) of each layer is the **mean over random 90 %
subsamples** and its error bar their standard deviation; the profiles of the categories
are then averaged (their ``scripts/pretrained/hunchback.py``: ``--nsamples 500``,
``--res 50``, ``Resize(256)``, ``CenterCrop(224)``, ImageNet normalisation). This command
runs that protocol on any ``ImageFolder`` (``root/<class>/<image>``), as a thin shell over
one library function, :func:`interp_lib.studies.class_profiles` (``choose="random"``)::

    interp-lib-profile vgg16 /data/imagenet_single_objects --out runs/vgg16 \\
        --weights vgg16-397923af.pth
    interp-lib-profile mypkg.nets:make_net /data/folder --out runs/mine \\
        --model-kwargs '{"n_classes": 10}' --image-size 64 --layers input features.3 fc

The flags shared with ``interp-lib-protopnet`` (``--device auto``: CUDA if there is one;
``--seed``, which draws the class subsets and the subsamples; ``--resume``,
``--overwrite``, ``--threads``, ``--debug``) are those of :mod:`interp_lib.cli.flags`; a
user error prints one line and exits with status 2 (:mod:`interp_lib.cli.errors`).

``MODEL`` is a torchvision model name (built with ``weights=None``: nothing is
downloaded; pass the weights file with ``--weights``) or ``module:factory``, a function
returning an ``nn.Module``. ``--weights`` is a state dict (or a checkpoint dict with a
``state_dict``/``model`` entry) loaded with ``torch.load(weights_only=True)``.

Outputs in ``--out``:

- ``run.json``: the settings of the run, the versions and the command line
  (:class:`interp_lib.cli.outputs.RunFolder`; written once the model and the data are loaded; a
  rerun with other settings is refused, naming them; the class selection may change);
- ``classes/<class>.json``: one file per class, written atomically when the class is
  done; **a rerun with** ``--resume`` **skips finished classes**, so an interrupted run
  continues (``--overwrite`` starts over);
- ``profile.json``: per layer, the mean and standard deviation over classes of the
  per-class ID, with every class's numbers;
- ``profile.png``: the mean profile against relative depth (needs matplotlib,
  ``pip install "interp_lib[viz]"``; ``--no-figure`` skips it).

**Under torchrun.** ``torchrun --nproc_per_node=N -m interp_lib.profile ...`` (or ``torchrun
--nproc_per_node=N $(which interp-lib-profile) ...``) shares the classes out among ``N``
processes (:mod:`interp_lib.cli.distributed`; ``gloo`` on the CPU, ``nccl`` with one GPU
per process, ``--device auto``). Rank 0 alone checks and writes ``run.json`` while the
others wait; every rank then profiles its share of the classes not yet finished, a
round-robin over their sorted names (:func:`interp_lib.studies.sharding.shard_classes`), and
writes their ``classes/<class>.json`` files itself, so ``--resume`` skips a finished
class whichever rank profiled it, and with any number of processes. Rank 0 merges the
records of every rank (:func:`interp_lib.studies.sharding.merge_class_records`) and writes
``profile.json`` and ``profile.png``: the same files as one process writes. An error on
any rank stops every rank at its next step, with one line from rank 0 (``error: rank
1: ...``); the finished classes are kept. ``--out`` must be a folder every rank can
reach (one machine, or a shared file system).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import cli
from .._plumbing import atomic_write, require
from ..cli import distributed
from ..cli.errors import USER_ERRORS
from ..networks import build

__all__ = ["main", "run"]

VERSION = 1


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="interp-lib-profile",
        description="Per-class intrinsic-dimension profile of a network (Ansuini et al. 2019).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="torchvision model name (e.g. vgg16) or module:factory")
    p.add_argument("data", help="ImageFolder root: one sub-folder of images per class")
    cli.add_common_flags(p, resume_help="continue the run in --out: finished classes are kept")
    p.add_argument("--weights", help="state dict file, loaded with weights_only=True")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of the factory")
    p.add_argument(
        "--layers", nargs="+", help="dotted layer names (default: the paper's checkpoints)"
    )
    p.add_argument("--classes", nargs="+", help="class folder names (default: all)")
    p.add_argument(
        "--max-classes", type=cli.positive_int, help="only the first N classes (sorted by name)"
    )
    p.add_argument("--n-per-class", type=cli.positive_int, default=500,
                   help="images per class (paper: ~500)")  # fmt: skip
    p.add_argument("--n-resamples", type=cli.non_negative_int, default=50,
                   help="90%% subsamples per class and layer")  # fmt: skip
    p.add_argument("--subsample", type=float, default=0.9, help="subsample share, in (0, 1]")
    p.add_argument("--estimator", default="twonn", choices=["twonn", "mle", "pca"])
    p.add_argument("--image-size", type=cli.positive_int, default=224,
                   help="centre crop side (pixels)")  # fmt: skip
    p.add_argument("--no-normalize", action="store_true", help="skip ImageNet normalisation")
    p.add_argument("--batch-size", type=cli.positive_int, default=64)
    p.add_argument("--num-workers", type=cli.non_negative_int, default=0,
                   help="DataLoader worker processes")  # fmt: skip
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage type of the activations")  # fmt: skip
    p.add_argument("--max-bytes", type=cli.positive_int,
                   help="memory budget for activations (bytes)")  # fmt: skip
    p.add_argument("--no-figure", action="store_true", help="do not draw profile.png")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p


def _model_kwargs(text: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise cli.UsageError(
            f"--model-kwargs must be a JSON object, got {text!r} ({exc})."
        ) from None
    if not isinstance(kwargs, dict):
        raise cli.UsageError(f"--model-kwargs must be a JSON object, got {text!r}.")
    return kwargs


def _settings(args) -> dict[str, Any]:
    """What the numbers depend on (compared with ``run.json`` on a rerun; ``--classes``
    and ``--max-classes`` choose which classes run, not what a class gives)."""
    keys = ("model", "layers", "n_per_class", "n_resamples", "subsample", "estimator",
            "image_size", "no_normalize", "dtype", "seed")  # fmt: skip
    settings = {k: getattr(args, k) for k in keys}
    settings["model_kwargs"] = _model_kwargs(args.model_kwargs)
    settings["data"] = str(Path(args.data).resolve())
    settings["weights"] = None if args.weights is None else str(Path(args.weights).resolve())
    return settings


def _finished(
    folder: cli.RunFolder, wanted: Sequence[str], *, quiet: bool = False
) -> dict[str, Any]:
    done = {}
    for name in wanted:
        path = folder.path("classes", f"{name}.json")
        if path.exists():  # finished by an earlier run
            try:
                done[name] = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:  # damaged
                raise ValueError(
                    f"{str(path)!r} is damaged ({exc}); delete it to profile class {name!r} again."
                ) from None
            if not quiet:
                print(f"{name}: done before, skipped", file=sys.stderr)
    return done


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command (see the module docstring); returns the summary of ``profile.json``.

    Under ``torchrun`` every rank runs it and returns the summary (see "Under torchrun"
    in the module docstring). Errors propagate (:func:`main` prints user errors as one
    line); on a rank other than 0, an error that rank 0 reports is
    :class:`interp_lib.cli.distributed.RankStopped`.
    """
    try:
        args = _parser().parse_args(argv)
        if not 0 < args.subsample <= 1:
            raise cli.UsageError(f"--subsample must lie in (0, 1], got {args.subsample}.")
        cli.apply_threads(args.threads)
        device = cli.resolve_device(args.device)
    except USER_ERRORS as exc:  # the same on every rank: rank 0 reports it
        if distributed.quiet_rank():
            raise distributed.RankStopped(str(exc)) from exc
        raise
    ranks = distributed.start(device)
    try:
        summary, profiles = _run(args, argv, device, ranks)
    finally:
        distributed.stop(ranks)
    if ranks.is_main and not args.no_figure:  # after profile.json, as one process does
        require("matplotlib", "profile.png").use("Agg")
        from ..viz import plot_profile

        title = f"{args.model}: {len(profiles.classes)} classes x {args.n_per_class} images"
        fig = plot_profile(profiles.mean_profile(), annotate=True, title=title)
        path = cli.RunFolder(args.out).path("profile.png")
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    return summary


def _run(args, argv: Sequence[str] | None, device: torch.device, ranks: distributed.Ranks):
    from ..datasets import image_folder, imagenet_transform
    from ..studies import ClassProfiles, class_profiles
    from ..studies.sharding import merge_class_records, shard_classes

    main = ranks.is_main

    def prepare():  # every rank loads the data and the model; rank 0 alone keeps run.json
        settings = _settings(args)
        folder = cli.RunFolder(args.out)
        resume = main and folder.begin(settings, resume=args.resume, overwrite=args.overwrite)
        if main and not args.no_figure:
            require("matplotlib", "interp-lib-profile (profile.png; or pass --no-figure)")
        transform = imagenet_transform(args.image_size, normalize=not args.no_normalize)
        dataset = image_folder(args.data, transform=transform)
        names = list(dataset.classes)
        wanted = names
        if args.classes:
            unknown = [c for c in args.classes if c not in dataset.class_to_idx]
            if unknown:
                raise cli.UsageError(
                    f"--classes {unknown} are not folders of {args.data!r}; it has {names[:10]}..."
                )
            wanted = list(args.classes)
        if args.max_classes:
            wanted = wanted[: args.max_classes]
        model = build(args.model, args.weights, **settings["model_kwargs"]).to(device)
        if main:
            outputs = [folder.path("classes", f"{n}.json") for n in names]
            outputs += [folder.path("profile.json"), folder.path("profile.png")]
            if args.overwrite:  # the outputs of the run it replaces
                for path in outputs:
                    path.unlink(missing_ok=True)
            elif not resume and any(path.exists() for path in outputs):
                raise FileExistsError(
                    f"--out {args.out!r} holds profiles without {cli.METADATA}; pass "
                    "--overwrite to replace them, or another --out."
                )
            folder.record(settings, argv)
        return settings, folder, dataset, wanted, model

    # a collective: the other ranks go on once rank 0 has written run.json
    settings, folder, dataset, wanted, model = distributed.together(ranks, prepare)
    done = distributed.together(ranks, lambda: _finished(folder, wanted, quiet=not main))
    todo = [c for c in wanted if c not in done]
    share = set(shard_classes(todo, ranks.rank, ranks.world_size))
    mine = [c for c in todo if c in share]  # in the order asked for
    records: list[dict[str, Any]] = []

    def save(record: dict[str, Any]) -> None:
        cli.write_json(folder.path("classes", f"{record['class']}.json"), record)
        records.append(record)
        ids = ", ".join(f"{v:.1f}" for v in record["id"] if v is not None)
        print(f"{record['class']}: {record['n_images']} images, ID {ids}", file=sys.stderr)

    def profile() -> None:
        if not mine:  # more ranks than classes to do
            return
        class_profiles(
            model, dataset, layers=args.layers, choose="random", n_per_class=args.n_per_class,
            classes=mine, shared_search=False, estimator=args.estimator, pca=False,
            max_rank=None, n_resamples=args.n_resamples, subsample=args.subsample,
            seed=args.seed, batch_size=args.batch_size, num_workers=args.num_workers,
            dtype=getattr(torch, args.dtype), max_bytes=args.max_bytes, progress=args.progress,
            on_class=save,
        )  # fmt: skip

    distributed.together(ranks, profile)
    parts = distributed.gather(records, ranks)

    def merge() -> tuple[dict[str, Any], ClassProfiles]:
        merged = merge_class_records([done.values(), *parts], wanted)
        profiles = ClassProfiles.from_records(merged, estimator=args.estimator)
        config = {**settings, "classes": wanted}
        summary = {"version": VERSION, "config": config, **profiles.summary()}
        if main:
            cli.write_json(folder.path("profile.json"), summary)
        return summary, profiles

    return distributed.together(ranks, merge)


def _main(argv: Sequence[str]) -> int:
    try:
        summary = run(argv)
    except distributed.RankStopped as exc:  # rank 0 reports the error
        return exc.status
    if distributed.quiet_rank():
        return 0
    rows = zip(summary["layers"], summary["id_mean"], summary["id_sd_over_classes"], strict=True)
    for layer, m, s in rows:
        print(f"{layer:>24}  {m if m is not None else float('nan'):8.2f} ± "
              f"{s if s is not None else float('nan'):.2f}")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``interp-lib-profile`` and ``python -m interp_lib.profile``; returns
    the exit status (2 after a user error, printed as one line; see
    :mod:`interp_lib.cli.errors`)."""
    return cli.run_command(
        _main, argv, interrupted="interrupted: finished classes are kept; rerun with --resume"
    )
