"""``interp-lib-protopnet`` (or ``python -m interp_lib.protopnet``): train, push, prune and
explain from a config file.

The paper-scale recipe for readers with CUB-200-2011 and a GPU. Every command reads one
TOML config and writes into one run folder, ``--out``::

    interp-lib-protopnet train   cub_vgg19.toml --out runs/vgg19 [--resume | --overwrite]
    interp-lib-protopnet push    cub_vgg19.toml --out runs/vgg19
    interp-lib-protopnet prune   cub_vgg19.toml --out runs/vgg19
    interp-lib-protopnet explain cub_vgg19.toml --out runs/vgg19 --n-images 8
    torchrun --nproc_per_node=4 -m interp_lib.protopnet train cub_vgg19.toml --out runs/vgg19

Each command is a thin shell over one library function: ``train`` over
:func:`~interp_lib.protopnet.fit`, ``push`` over :func:`~interp_lib.protopnet.push`,
``prune`` over :func:`~interp_lib.protopnet.prune` then
:func:`~interp_lib.protopnet.retrain_last_layer`, ``explain`` over
:func:`~interp_lib.protopnet.explain`; the data come from
:func:`~interp_lib.protopnet.data.protopnet_data`. The flags shared with
``interp-lib-profile`` (``--device auto``, ``--seed``, ``--resume``, ``--overwrite``,
``--threads``, ``--debug``) are those of :mod:`interp_lib.cli.flags`.

The config's tables take the keyword arguments of the library, read from its signatures
(:func:`interp_lib.cli.config.keys_of`), so every option that TOML can write is
reachable, and each is checked (type and range) before anything runs::

    [data]                    # protopnet_data() and ProtoPNetData.loaders()
    kind = "cub"              # "cub" (CUB_200_2011 folder) or "folder" (root/train, root/test)
    root = "/data/CUB_200_2011"
    image_size = 224
    batch_size = 80           # per process under torchrun
    eval_batch_size = 100
    num_workers = 4
    augment = true            # rotation +-15 deg, shear, flip (the original's, on the fly)
    val_fraction = 0.1        # of the official training set, for model selection

    [model]                   # ProtoPNet(); n_classes and image_size come from [data]
    backbone = "vgg19"
    backbone_weights = "/weights/vgg19-dcbb9e9d.pth"   # torchvision ImageNet weights, never downloaded
    n_prototypes_per_class = 10
    prototype_dim = 128
    add_on = "bottleneck"

    [schedule]                # Schedule(); the paper's when empty

    [fit]                     # fit()
    amp = "bf16"
    channels_last = true

    [loss_weights]            # LossWeights() of fit
    [prune]                   # prune()
    [retrain]                 # retrain_last_layer() after pruning

The command line owns what decides where and whether a run is written: ``[fit]`` takes
no ``checkpoint`` (always ``--out/checkpoint.pt``), ``resume``, ``overwrite``, ``device``
or ``seed`` (``--resume``, ``--overwrite``, ``--device``, ``--seed``); a config that sets
one is refused, so a config can neither write outside ``--out`` nor replace a finished
run. ``--seed`` seeds the model's initial weights and :func:`~interp_lib.protopnet.fit`:
two identical ``train`` runs give identical models.

Outputs in ``--out``: ``run.json`` (the settings of the run: config and seed, with the
versions and the command line; written once the inputs are checked and compared by
every later command: a run with other settings is refused, naming them),
``checkpoint.pt`` (resumable, written atomically after every step), ``model.pt`` (the
final trained model), ``history.json`` and ``history.csv``, ``metrics.json`` (test
accuracy), ``pushed.pt`` / ``push.json``, ``pruned.pt`` / ``prune.json``, and
``explanations/``: per test image, ``test_<index>.png`` ("this looks like that": the
test image with each top prototype's similarity map and patch boxes, the prototype's
source patch and source image from the training set, and its points;
:func:`~interp_lib.viz.plot_explanation`) and ``test_<index>_points.png`` (the
scoring sheet's bars), classes named as in the data set, and ``explanations.json``.
Figures need matplotlib (``pip install "interp_lib[viz]"``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import cli
from . import _runtime as rt

__all__ = ["budget_message", "load_config", "main", "schema"]

#: Config keys the command line sets, and the flag that sets each.
OWNED_BY_FLAGS = {
    "checkpoint": "--out (the checkpoint is always --out/checkpoint.pt)",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "device": "--device",
    "seed": "--seed",
}
#: Tables whose settings make the trained model (compared by every command).
RUN_TABLES = ("data", "model", "schedule", "fit", "loss_weights")
#: Keys that change no result, left out of the compared settings.
NOT_COMPARED = {"data": ("num_workers",), "fit": ("progress",)}
#: Files ``train --overwrite`` removes (the outputs of the run it replaces).
OUTPUTS = ("model.pt", "pushed.pt", "pruned.pt", "metrics.json", "push.json", "prune.json",
           "history.json", "history.csv")  # fmt: skip


def schema() -> dict[str, dict[str, cli.Key]]:
    """The config's tables and keys, read from the library's signatures (see the module
    docstring), with the ranges the command checks before any work."""
    from . import data as D
    from .functional import SIMILARITIES
    from .losses import LossWeights
    from .model import ADD_ONS, ProtoPNet
    from .prune import prune, retrain_last_layer
    from .stages import LAST_LAYER_SOLVERS, Schedule
    from .train import fit

    positive = {"minimum": 1}
    return {
        "data": {
            **cli.keys_of(D.protopnet_data, kind={"choices": D.KINDS}, image_size=positive,
                          val_fraction={"minimum": 0, "maximum": 0.99}),
            **cli.keys_of(D.ProtoPNetData.loaders, batch_size=positive,
                          eval_batch_size=positive),
        },
        "model": cli.keys_of(
            ProtoPNet, skip=("n_classes", "image_size"), types={"backbone_weights": (str,)},
            n_prototypes_per_class=positive, prototype_dim=positive, prototype_size=positive,
            similarity={"choices": SIMILARITIES}, add_on={"choices": ADD_ONS},
        ),
        "schedule": cli.keys_of(
            Schedule, epochs=positive, push_every=positive, lr_step_size=positive,
            last_layer_batch_size=positive, steps_per_epoch=positive,
            select={"choices": ("pushed", "any")},
            last_layer_solver={"choices": LAST_LAYER_SOLVERS},
        ),
        "fit": cli.keys_of(
            fit, skip=("model", "train_loader", "val_loader", "push_loader", "schedule",
                       *OWNED_BY_FLAGS),
            amp={"choices": ("bf16", "fp16")},
        ),
        "loss_weights": cli.keys_of(LossWeights),
        "prune": cli.keys_of(prune, skip=("model", "loader", "device"), k=positive),
        "retrain": cli.keys_of(
            retrain_last_layer, skip=("model", "loader", "device"), epochs=positive,
            solver={"choices": ("adam", "convex", "convex_nonpositive")},
        ),
    }  # fmt: skip


def load_config(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read and check a config (see the module docstring): ``{table: {key: value}}``
    with every table and every default.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        One line naming ``table.key``: not UTF-8, not TOML, an unknown table or key, a
        key the command line owns, a wrong type or a value out of range.
    """
    raw = cli.read_toml(path)
    fit_table = raw.get("fit")
    if isinstance(fit_table, dict):
        owned = next((k for k in OWNED_BY_FLAGS if k in fit_table), None)
        if owned is not None:
            raise ValueError(
                f"config {Path(path).name}: fit.{owned} is set on the command line "
                f"({OWNED_BY_FLAGS[owned]}), not in the config; remove it."
            )
    return cli.load_config(path, schema())


def _settings(config: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    """What makes the trained model: the run tables (less what changes no result) and
    the seed."""
    out: dict[str, Any] = {"seed": seed}
    for table in RUN_TABLES:
        skip = NOT_COMPARED.get(table, ())
        out[table] = {k: v for k, v in config[table].items() if k not in skip}
    return out


def _library_call(table: str, build, *args, **kwargs):
    """``build(*args, **kwargs)``, its ``ValueError``/``TypeError`` naming the table."""
    try:
        return build(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"config [{table}]: {exc}") from None


def _data(config):
    from .data import protopnet_data

    d = config["data"]
    keys = ("kind", "image_size", "augment", "val_fraction", "seed")
    data = _library_call("data", protopnet_data, d["root"], **{k: d[k] for k in keys})
    loaders = data.loaders(d["batch_size"], d["eval_batch_size"], d["num_workers"])
    return data, loaders


def _new_model(config, n_classes: int, seed: int):
    """The untrained model, its initial weights drawn with ``seed`` (the global
    generator's state is left as it was)."""
    from .model import ProtoPNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _library_call(
            "model", ProtoPNet, n_classes=n_classes, image_size=config["data"]["image_size"],
            **config["model"],
        )  # fmt: skip


def _load_model(path: Path, device: torch.device):
    from .checkpoint import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: run `train` to the end first.")
    return load_checkpoint(path, map_location=device).to(device)


def _test_accuracy(model, data, config) -> float:
    from ..models import accuracy

    return accuracy(model, data.test, batch_size=config["data"]["eval_batch_size"])


#: The start of fit's warning about the steps per epoch; ``train`` says it in config keys.
FIT_BUDGET_WARNING = "the schedule's epoch counts were chosen for"


def budget_message(schedule, n_batches: int, *, per_process: bool = False) -> str | None:
    """What ``train`` prints when the training data's batches per epoch are far from
    ``[schedule] steps_per_epoch`` (fewer than half or more than twice): the config lines
    that fix it. ``None`` when they agree (or the check is off).

    Parameters
    ----------
    schedule : Schedule
        The run's schedule (``[schedule]``).
    n_batches : int
        Batches per epoch of the training loader (per process under ``torchrun``).
    per_process : bool
        Whether ``n_batches`` is per process (said in the message).
    """
    ref = schedule.steps_per_epoch
    if ref is None or ref / 2 <= n_batches <= 2 * ref:
        return None
    scaled = schedule.scaled(n_batches)
    changed = [f"{f.name} = {getattr(scaled, f.name)}" for f in dataclasses.fields(scaled)
               if getattr(scaled, f.name) != getattr(schedule, f.name)]  # fmt: skip
    where = " per process" if per_process else ""
    return (
        f"warning: [schedule] steps_per_epoch = {ref}: the epoch counts are meant for {ref} "
        f"optimizer steps per epoch, but the training data give {n_batches} batches per "
        f"epoch{where}, so every stage gets {ref / n_batches:.3g}x "
        f"{'fewer' if n_batches < ref else 'more'} steps than intended. To keep the intended "
        f"steps, write in [schedule]: {', '.join(changed)}; to keep the epochs as they are, "
        f"write steps_per_epoch = {n_batches}."
    )


def _warn_once_per_job() -> None:
    """Under ``torchrun``, only rank 0 shows warnings: every rank would print the same."""
    if int(os.environ.get("RANK", "0") or 0) != 0:
        warnings.simplefilter("ignore")


def cmd_train(config, folder: cli.RunFolder, args, device) -> int:
    from .checkpoint import save_checkpoint
    from .losses import LossWeights
    from .stages import Schedule
    from .train import fit

    settings = _settings(config, args.seed)
    resume = folder.begin(settings, resume=args.resume, overwrite=args.overwrite)
    if not resume and not args.overwrite and folder.path("checkpoint.pt").exists():
        raise FileExistsError(
            f"--out {args.out!r} holds a checkpoint without {cli.METADATA} (a run of another "
            "version?); pass --overwrite to replace it, or another --out."
        )
    schedule = _library_call("schedule", Schedule, **config["schedule"])
    weights = _library_call("loss_weights", LossWeights, **config["loss_weights"])
    data, loaders = _data(config)
    model = _new_model(config, data.n_classes, args.seed)
    info = rt.setup_distributed(device)
    try:
        if info.enabled:
            torch.distributed.barrier()  # every rank has read run.json before it is written
        if info.is_main:
            if args.overwrite:
                for name in OUTPUTS:
                    folder.path(name).unlink(missing_ok=True)
            folder.record(settings, args.argv)
            n_batches = len(rt.shard_train_loader(loaders["train"], info, args.seed))
            message = budget_message(schedule, n_batches, per_process=info.enabled)
            if message:
                print(message, file=sys.stderr)
        with warnings.catch_warnings():  # said above in config keys, not in Python
            warnings.filterwarnings("ignore", re.escape(FIT_BUDGET_WARNING), UserWarning)
            history = fit(
                model,
                loaders["train"],
                val_loader=loaders["val"],
                push_loader=loaders["push"],
                schedule=schedule,
                loss_weights=weights,
                device=device,
                checkpoint=folder.path("checkpoint.pt"),
                resume=resume,
                overwrite=args.overwrite,
                seed=args.seed,
                **config["fit"],
            )
    finally:
        if info.created_group:
            torch.distributed.destroy_process_group()
    if info.is_main:
        save_checkpoint(folder.path("model.pt"), model)
        rows = history.rows()
        cli.write_json(folder.path("history.json"), rows)
        cli.write_csv(folder.path("history.csv"), rows)
        acc = _test_accuracy(model, data, config)
        cli.write_json(
            folder.path("metrics.json"), {"test_accuracy": acc, "best_step": history.best_step}
        )
        print(f"test accuracy {acc:.4f}; wrote {folder.root}")
    return 0


def cmd_push(config, folder: cli.RunFolder, args, device) -> int:
    from .checkpoint import save_checkpoint
    from .push import push

    folder.check(_settings(config, args.seed))
    data, loaders = _data(config)
    model = _load_model(folder.path("model.pt"), device)
    result = push(model, loaders["push"], progress=config["fit"]["progress"])
    save_checkpoint(folder.path("pushed.pt"), model)
    acc = _test_accuracy(model, data, config)
    summary = {
        "test_accuracy": acc,
        "duplicate_groups": result.duplicates(),
        "sample_index": result.sample_index.tolist(),
        "box_xyxy": result.box.tolist(),
        "activation_box_xyxy": result.activation_box.tolist(),
    }
    cli.write_json(folder.path("push.json"), summary)
    print(f"pushed {model.prototypes.shape[0]} prototypes; test accuracy {acc:.4f}")
    return 0


def cmd_prune(config, folder: cli.RunFolder, args, device) -> int:
    from .checkpoint import save_checkpoint
    from .prune import prune, retrain_last_layer

    folder.check(_settings(config, args.seed))
    data, loaders = _data(config)
    pushed = folder.path("pushed.pt")
    model = _load_model(pushed if pushed.is_file() else folder.path("model.pt"), device)
    before = _test_accuracy(model, data, config)
    result = _library_call("prune", prune, model, loaders["push"], **config["prune"])
    _library_call("retrain", retrain_last_layer, model, loaders["push"], **config["retrain"])
    after = _test_accuracy(model, data, config)
    save_checkpoint(folder.path("pruned.pt"), model)
    cli.write_json(
        folder.path("prune.json"),
        {
            "removed": [int(i) for i in result.removed],
            "accuracy_before": before,
            "accuracy_after": after,
            "settings": {"prune": config["prune"], "retrain": config["retrain"]},
        },
    )
    print(f"pruned {len(result.removed)} prototypes; test accuracy {before:.4f} -> {after:.4f}")
    return 0


def _class_names(dataset) -> list[str] | None:
    """Readable class names of a data set: CUB's ``class_names`` or an image folder's
    ``classes``, without the numeric prefix and underscores (``"001.Black_footed_Albatross"``
    -> ``"Black footed Albatross"``); ``None`` if it has neither."""
    names = getattr(dataset, "class_names", None) or getattr(dataset, "classes", None)
    if not names:
        return None
    return [re.sub(r"^\d+\.", "", str(n)).replace("_", " ").strip() or str(n) for n in names]


def _provenance(model, loader, device):
    """Where each prototype's patch comes from in the push images: its nearest training
    patch (the patch itself after a push), as ``plot_explanation`` reads it."""
    from types import SimpleNamespace

    from .explain import nearest_patches

    near = nearest_patches(model, loader, k=1, device=device, progress=False)
    return SimpleNamespace(sample_index=near.sample_index[:, 0], box=near.box[:, 0],
                           activation_box=None)  # fmt: skip


def cmd_explain(config, folder: cli.RunFolder, args, device) -> int:
    from .._plumbing import atomic_write, require
    from .explain import explain

    plt = require("matplotlib.pyplot", "interp-lib-protopnet explain")
    from ..viz.protopnet import plot_explanation, plot_scoring_sheet

    folder.check(_settings(config, args.seed))
    names = ("pruned.pt", "pushed.pt", "model.pt")
    source = next((folder.path(f) for f in names if folder.path(f).is_file()), None)
    if source is None:
        raise FileNotFoundError(f"no model in {str(folder.root)!r}: run `train` to the end first.")
    model = _load_model(source, device)
    data, loaders = _data(config)
    labels = _class_names(data.push)
    provenance = _provenance(model, loaders["push"], device)
    test = data.test
    n = min(args.n_images, len(test))
    index = torch.linspace(0, len(test) - 1, n).round().long().tolist() if n else []
    rows = []

    def save(fig, name: str) -> None:
        atomic_write(
            folder.path("explanations", name),
            lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"),
        )
        plt.close(fig)

    for i in index:
        x, y = test[i][0], int(test[i][1])
        (e,) = explain(model, x.unsqueeze(0).to(device), top_k=args.top_k)
        save(plot_explanation(x, e, provenance, data.push, max_rows=args.top_k,
                              class_names=labels), f"test_{i:05d}.png")  # fmt: skip
        save(plot_scoring_sheet(e, class_names=labels), f"test_{i:05d}_points.png")
        rows.append({"index": i, "label": y, "predicted": e.predicted_class, "logit": e.logit,
                     "prototypes": [ev.index for ev in e.evidence],
                     "source_images": [int(provenance.sample_index[ev.index])
                                       for ev in e.evidence]})  # fmt: skip
        if labels is not None:
            rows[-1].update(label_name=labels[y], predicted_name=labels[e.predicted_class])
    cli.write_json(folder.path("explanations", "explanations.json"), rows)
    print(f"wrote {len(rows)} explanations to {folder.path('explanations')}")
    return 0


COMMANDS = {"train": cmd_train, "push": cmd_push, "prune": cmd_prune, "explain": cmd_explain}


#: What each table of the config feeds (``--help`` lists the keys, read from schema()).
TABLES = {
    "data": "protopnet_data() and ProtoPNetData.loaders()",
    "model": "ProtoPNet(); n_classes and image_size come from [data]",
    "schedule": "Schedule(); the paper's schedule when empty",
    "fit": "fit(); checkpoint, resume, overwrite, device, seed are flags",
    "loss_weights": "LossWeights() of fit",
    "prune": "prune()",
    "retrain": "retrain_last_layer() after pruning",
}

CONFIG_EXAMPLE = """\
  [data]
  kind = "cub"                       # or "folder": root/train, root/test
  root = "/data/CUB_200_2011"
  batch_size = 80
  [model]
  backbone = "vgg19"
  backbone_weights = "/weights/vgg19-dcbb9e9d.pth"
  [schedule]                         # empty: the paper's schedule
  [fit]
  amp = "bf16"
"""


def _config_help() -> str:
    """The ``--help`` epilog: the config's tables, their keys and an example."""
    import textwrap

    keys = schema()
    lines = ["config: a TOML file, one table per library call; each key is a keyword",
             "argument of that call, checked (type, range) before anything runs. Tables",
             "and their keys (every key is optional but [data] root):", ""]  # fmt: skip
    for table, what in TABLES.items():
        lines.append(f"  [{table}]  {what}")
        body = ", ".join(keys[table])
        lines += textwrap.wrap(body, 78, initial_indent="      ", subsequent_indent="      ")
    lines += ["", "example:", CONFIG_EXAMPLE, "",
              "the full reference: python -m pydoc interp_lib.protopnet.cli, and the",
              "book's chapter 'ProtoPNet at paper scale' (book/protopnet_paper_scale.md)."]  # fmt: skip
    return "\n".join(lines)


def parser() -> cli.ArgumentParser:
    """The command line (see the module docstring)."""
    p = cli.ArgumentParser(
        prog="interp-lib-protopnet",
        description="Train, push, prune and explain a ProtoPNet from a TOML config.",
        epilog=_config_help(),
    )
    p.add_argument("command", choices=list(COMMANDS))
    p.add_argument(
        "config",
        help="TOML config: [data] [model] [schedule] [fit] [loss_weights] [prune] [retrain]",
    )
    cli.add_common_flags(p, resume_help="train: continue the run in --out (same settings)")
    p.add_argument("--n-images", type=cli.positive_int, default=8, help="explain: test images")
    p.add_argument(
        "--top-k", type=cli.positive_int, default=5, help="explain: prototypes per sheet"
    )
    return p


def _main(argv: Sequence[str]) -> int:
    _warn_once_per_job()
    args = parser().parse_args(argv)
    args.argv = list(argv)
    if args.command != "train" and (args.resume or args.overwrite):
        raise cli.UsageError(f"--resume and --overwrite are options of train, not {args.command}.")
    cli.apply_threads(args.threads)
    device = cli.resolve_device(args.device)
    config = load_config(args.config)
    folder = cli.RunFolder(args.out)
    return COMMANDS[args.command](config, folder, args, device)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``interp-lib-protopnet`` and ``python -m interp_lib.protopnet``;
    returns the exit status (2 after a user error, printed as one line; see
    :mod:`interp_lib.cli.errors`)."""
    return cli.run_command(
        _main,
        argv,
        interrupted="interrupted: `train` continues from the last step with --resume",
    )
