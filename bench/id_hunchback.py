"""Bench: the hunchback on single-class sets of procedural birds, trained vs untrained,
for several architectures and training seeds.

The protocol of Ansuini et al. (2019, the released ``scripts/pretrained/hunchback.py``):
single-class image sets (there: 7 ImageNet categories x about 500 training images), the
network in eval mode, checkpoints at the input, every max-pool (every stage of a ResNet),
every hidden linear layer and the output; TwoNN (least squares on 90 % of the ratios)
averaged over 90 % subsamples (there 50, here ``--n-resamples``). The same for the
untrained twin (same initial weights). Added here: the Gride ID at neighbour ranks
(1, 2) ... (32, 64), the ID-vs-scale curve of every layer (the hunchback "at a larger
scale" is Gride at ranks (32, 64)), several architectures and several training seeds.

Data: ``interp_lib.datasets.birds`` at 64 px, ``difficulty=1.0``, 5 classes, 500
training images per class (profiled, as the paper profiles training images; the same
set as the chapter "The ID of a network's layers") and 100 test images per class.

Architectures (``make_net``): ``vgg8`` (4 stages x 2 convs with BatchNorm, fc 128-64:
the chapter's network; seed 0 is the chapter's network exactly), ``vgg4`` (the same
with 1 conv per stage: shallower), ``resnet`` (stem + 4 residual stages of one block,
:func:`interp_lib.networks.residual_classifier`: 9 convs with skips). All trained with
Adam, lr 5e-4, 12 epochs, batches of 64, weights and batch order seeded by the seed.

Reported per architecture (printed, and under ``"summary"`` in the JSON): the mean
profile over seeds x classes (TwoNN and Gride at ranks (32, 64)), trained and untrained;
the peak (the layer after the input where the trained mean profile is highest), its
relative depth, the rise "peak minus input" with a 95 % paired Student-t interval over
the seeds x classes (15 pairs: the same images at the input and at the peak), the same
interval over the 3 seeds alone (class means: the honest n for "does it replicate"),
the untrained twin's change at the same layer and trained minus untrained there; test
accuracy (mean and sd over seeds).

    python bench/id_hunchback.py                        # the full study
    python bench/id_hunchback.py --quick                # smoke run, about 2 CPU-minutes
    python bench/id_hunchback.py --summary-only         # re-read the JSON, redo the outputs

Outputs: ``--out`` (default ``bench/results/id_hunchback.json``, untracked: every per-class
TwoNN, Gride and scale number of every run) and the figure beside it (same name,
``.png``); a full run (not ``--quick``) also writes the tracked summary
``bench/summaries/id_hunchback.json`` (``--summary``): per architecture the peak, the
rises with their intervals and the accuracies, plus the fields ``bench/report.py`` reads.
The chapter "The intrinsic dimension of a network's layers" renders that summary, so the
measured numbers live there and on the page, not in this docstring. Each finished network
is written at once and a re-run skips the networks already there (with the same
settings), so a long run can be stopped and resumed. One thread by default
(``--threads``). The full run took about 1600 CPU-seconds (2026-11-30).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from interp_lib.datasets import birds
from interp_lib.models import accuracy, train_classifier
from interp_lib.networks import cnn_classifier, residual_classifier
from interp_lib.studies import ClassProfiles, class_profiles, hunchback

WIDTHS = (16, 32, 64, 128)
ARCHS = ("vgg8", "vgg4", "resnet")
RANK = 64  # the larger-scale estimate: Gride at neighbour ranks (RANK / 2, RANK)
SUMMARY = Path("bench/summaries/id_hunchback.json")  # tracked; read by the chapter


def make_net(arch: str, n_classes: int, image_size: int, seed: int) -> torch.nn.Module:
    """The architectures of the study, initialised with ``seed``."""
    torch.manual_seed(seed)
    if arch in ("vgg8", "vgg4"):  # 4 stages x 2 (vgg8) or 1 (vgg4) convs + BN, fc 128-64
        return cnn_classifier(
            n_classes,
            image_size=image_size,
            widths=WIDTHS,
            convs_per_stage=2 if arch == "vgg8" else 1,
            hidden=(128, 64),
            batch_norm=True,
        )
    if arch == "resnet":  # stem + 4 residual stages of 1 block (2 convs) each
        return residual_classifier(n_classes, image_size=image_size, widths=WIDTHS)
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}.")


def profile_summary(prof) -> dict:
    return {
        "layers": list(prof.layers),
        "relative_depth": list(prof.relative_depth),
        "n_features": list(prof.n_features),
        "twonn": prof.twonn.tolist(),
        "pca": prof.pca.tolist(),
        "gride_ranks": list(prof.gride_ranks),
        "gride": prof.gride.tolist(),
        "gride_scale": prof.gride_scale.tolist(),
    }


def as_profiles(d: dict) -> ClassProfiles:
    """A :class:`ClassProfiles` back from its JSON form (``profile_summary``)."""
    tw = torch.tensor(d["twonn"], dtype=torch.float64)
    g = torch.tensor(d["gride"], dtype=torch.float64)
    return ClassProfiles(
        classes=tuple(range(tw.shape[0])),
        layers=tuple(d["layers"]),
        relative_depth=tuple(d["relative_depth"]),
        n_features=tuple(d["n_features"]),
        n_per_class=(),
        twonn=tw,
        twonn_error=torch.full_like(tw, math.nan),
        pca=torch.tensor(d["pca"], dtype=torch.float64),
        gride_ranks=tuple(d["gride_ranks"]),
        gride=g,
        gride_scale=torch.tensor(d["gride_scale"], dtype=torch.float64),
    )


def _interval(r) -> dict:
    return {"mean": r.mean, "low": r.low, "high": r.high, "n": r.n}


def summarise(runs: list[dict]) -> dict:
    """Per architecture: mean profiles, peak, rise with paired intervals, accuracy."""
    out = {}
    for arch in dict.fromkeys(r["arch"] for r in runs):
        rs = sorted((r for r in runs if r["arch"] == arch), key=lambda r: r["seed"])
        trained = [as_profiles(r["trained"]) for r in rs]
        untrained = [as_profiles(r["untrained"]) for r in rs]
        entry = {
            "seeds": [r["seed"] for r in rs],
            "layers": list(trained[0].layers),
            "relative_depth": list(trained[0].relative_depth),
            "test_accuracy": [r["final_test_accuracy"] for r in rs],
        }
        for what, rank in (("twonn", None), ("gride", RANK)):
            h = hunchback(trained, untrained, rank=rank)
            vals = [p.twonn if rank is None else p.at_rank(rank) for p in trained]
            tf = torch.cat(vals)
            uf = torch.cat([p.twonn if rank is None else p.at_rank(rank) for p in untrained])
            entry[what] = {
                "trained": h.trained.tolist(),
                "trained_sd": tf.std(0).tolist(),
                "untrained": h.untrained.tolist(),
                "untrained_sd": uf.std(0).tolist(),
                "peak_layer": h.peak_layer,
                "peak_depth": h.peak_depth,
                "rise": _interval(h.rise),
                "rise_over_seeds": _interval(h.rise_over_seeds),
                "untrained_change": _interval(h.untrained_change),
                "trained_minus_untrained": _interval(h.trained_minus_untrained),
                "output": {"trained": float(h.trained[-1]), "untrained": float(h.untrained[-1])},
            }
        out[arch] = entry
    return out


def _rounded(iv: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in iv.items()}


def tracked_summary(summary: dict, settings: dict, seconds: float) -> dict:
    """The tracked summary (``bench/summaries/id_hunchback.json``) of :func:`summarise`.

    Per architecture and estimator (``twonn``; ``gride``: Gride at ranks (32, 64)): the
    trained input, peak and output ID, the peak layer and its relative depth, the
    untrained twin at the input, at the peak layer and at the output, and the intervals
    ``rise`` (over seeds x classes), ``rise_over_seeds`` (class means, n = seeds),
    ``untrained_change`` and ``trained_minus_untrained``; with the fields
    ``bench/report.py`` reads (``script``, ``date``, ``machine``, ``table``).
    """
    try:  # run as a script (bench/ on the path) or imported as bench.id_hunchback
        from _common import load, machine, now
    except ModuleNotFoundError:
        from bench._common import load, machine, now

    archs, table_rows = {}, []
    for arch, e in summary.items():
        acc = torch.tensor(e["test_accuracy"], dtype=torch.float64)
        entry = {
            "seeds": e["seeds"],
            "test_accuracy_mean": round(float(acc.mean()), 3),
            "test_accuracy_sd": round(float(acc.std()), 3) if acc.numel() > 1 else None,
        }
        for what in ("twonn", "gride"):
            s = e[what]
            i = e["layers"].index(s["peak_layer"])
            entry[what] = {
                "input": round(s["trained"][0], 2),
                "peak": round(s["trained"][i], 2),
                "peak_layer": s["peak_layer"],
                "peak_depth": round(s["peak_depth"], 3),
                "output": round(s["output"]["trained"], 2),
                "untrained_input": round(s["untrained"][0], 2),
                "untrained_at_peak": round(s["untrained"][i], 2),
                "untrained_output": round(s["output"]["untrained"], 2),
                **{
                    k: _rounded(s[k])
                    for k in (
                        "rise",
                        "rise_over_seeds",
                        "untrained_change",
                        "trained_minus_untrained",
                    )
                },
            }
        archs[arch] = entry
        t = entry["twonn"]
        table_rows.append(
            {
                "what": f"hunchback, {arch} ({len(e['seeds'])} seeds x {settings['n_classes']} "
                "single-class sets)",
                "setting": f"birds {settings['image_size']} px, {settings['n_per_class']} per "
                f"class, {settings['epochs']} epochs",
                "ours": f"TwoNN rise {_fmt(t['rise'])} at {t['peak_layer']} (depth "
                f"{t['peak_depth']:.2f}); over seeds {_fmt(t['rise_over_seeds'])}",
                "peer": "VGG-16 on ImageNet (Ansuini et al.): 31 -> 119 at depth 0.2-0.45",
                "ratio": f"untrained twin {_fmt(t['untrained_change'])}",
            }
        )
    return {
        "script": "bench/id_hunchback.py",
        "date": now(),
        "machine": machine(),
        "threads": settings.get("threads", 1),
        "load_after": load(),
        "seconds": round(seconds),
        "settings": settings,
        "table": table_rows,
        "archs": archs,
    }


def _fmt(iv: dict) -> str:
    if math.isnan(iv["low"]):
        return f"{iv['mean']:+.1f}"
    return f"{iv['mean']:+.1f} [{iv['low']:+.1f}, {iv['high']:+.1f}]"


def table(summary: dict) -> str:
    """The measured table (plain text, as in this docstring)."""
    lines = []
    for what, name in (("twonn", "TwoNN"), ("gride", f"Gride ({RANK // 2}, {RANK})")):
        lines.append(
            f"{name}: input -> peak (layer, rel. depth) -> output, trained | untrained at the "
            "peak layer; rise = peak - input, 95 % paired interval over seeds x classes "
            "(n) and over seeds (class means)"
        )
        for arch, e in summary.items():
            s = e[what]
            acc = torch.tensor(e["test_accuracy"])
            sd = f" +- {float(acc.std()):.2f}" if acc.numel() > 1 else ""
            lines.append(
                f"  {arch:7s} acc {float(acc.mean()):.2f}{sd}: {s['trained'][0]:.1f} -> "
                f"{max(s['trained'][1:]):.1f} ({s['peak_layer']}, {s['peak_depth']:.2f}) -> "
                f"{s['output']['trained']:.1f} | untrained {s['untrained'][0]:.1f} -> "
                f"{s['untrained'][e['layers'].index(s['peak_layer'])]:.1f} -> "
                f"{s['output']['untrained']:.1f}"
            )
            lines.append(
                f"          rise {_fmt(s['rise'])} (n={s['rise']['n']}); over seeds "
                f"{_fmt(s['rise_over_seeds'])} (n={s['rise_over_seeds']['n']}); untrained "
                f"{_fmt(s['untrained_change'])}; trained - untrained "
                f"{_fmt(s['trained_minus_untrained'])}"
            )
    return "\n".join(lines)


def figure(summary: dict, path: Path) -> None:
    """One column per architecture; rows TwoNN and Gride (32, 64); mean +- sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(summary)
    fig, axes = plt.subplots(
        2, len(archs), figsize=(4 * len(archs), 6.5), squeeze=False, layout="constrained"
    )
    for col, arch in enumerate(archs):
        e = summary[arch]
        for row, (what, name) in enumerate(
            (("twonn", "TwoNN"), ("gride", f"Gride ranks ({RANK // 2}, {RANK})"))
        ):
            ax, s = axes[row, col], e[what]
            for which, colour in (("trained", "C0"), ("untrained", "C1")):
                ax.errorbar(e["relative_depth"], s[which], yerr=s[f"{which}_sd"], marker="o",
                            ms=3, capsize=2, color=colour, label=which)  # fmt: skip
            ax.set_ylim(0, None)
            ax.set_xlabel("relative depth")
            ax.set_ylabel(f"{name} (mean +- sd, seeds x classes)", fontsize=8)
            acc = sum(e["test_accuracy"]) / len(e["test_accuracy"])
            ax.set_title(f"{arch}, {len(e['seeds'])} seeds, accuracy {acc:.2f}", fontsize=9)
        axes[0, col].legend(frameon=False, fontsize=8)
    fig.suptitle("birds (64 px, difficulty 1), single-class sets: trained vs untrained")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--difficulty", type=float, default=1.0)
    ap.add_argument("--n-classes", type=int, default=5)
    ap.add_argument("--n-per-class", type=int, default=250)
    ap.add_argument("--n-test", type=int, default=100, help="test images per class")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--n-resamples", type=int, default=5)
    ap.add_argument("--pca", action="store_true", help="also the PC-ID (slower)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 seeds, 60 images per class, 32 px, 1 epoch")  # fmt: skip
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--summary", type=Path, default=None,
                    help="where to write the tracked summary; default "
                    f"{SUMMARY} when the run is the full study with the default settings")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.n_per_class, args.n_test = args.seeds[:2], 70, 20
        args.image_size, args.epochs, args.n_resamples = 32, 1, 2
    if args.out is None:
        name = "id_hunchback_quick" if args.quick else "id_hunchback"
        args.out = Path(f"bench/results/{name}.json")
    torch.set_num_threads(args.threads)
    keys = ("difficulty", "n_classes", "n_per_class", "n_test", "image_size", "epochs", "lr",
            "n_resamples", "pca")  # fmt: skip
    settings = {k: getattr(args, k) for k in keys}
    results = {"settings": settings, "runs": []}
    if args.out.exists():
        results = json.loads(args.out.read_text())
        if results["settings"] != settings and not args.summary_only:
            raise SystemExit(
                f"{args.out} holds runs with other settings ({results['settings']}); "
                "pass another --out or delete it."
            )
    done = {(r["arch"], r["seed"]) for r in results["runs"]}
    todo = [(a, s) for s in args.seeds for a in args.archs if (a, s) not in done]  # seed-major
    if not args.summary_only and todo:
        t0, c0 = time.time(), time.process_time()
        data = dict(image_size=args.image_size, classes=args.n_classes,
                    difficulty=args.difficulty)  # fmt: skip
        train = birds(args.n_per_class, seed=0, **data)
        test = birds(args.n_test, seed=1, **data)
        print(f"data: {time.process_time() - c0:.0f} CPU-s; {len(todo)} networks to do",
              flush=True)  # fmt: skip
        for k, (arch, seed) in enumerate(todo, start=1):
            t, c = time.time(), time.process_time()
            untrained = make_net(arch, args.n_classes, args.image_size, seed).eval()
            net = make_net(arch, args.n_classes, args.image_size, seed)
            hist = train_classifier(net, (train.images, train.labels),
                                    test=(test.images, test.labels), epochs=args.epochs,
                                    lr=args.lr, seed=seed, progress=False)  # fmt: skip
            c_train = time.process_time() - c
            kw = dict(n_resamples=args.n_resamples, pca=args.pca, max_rank=RANK, seed=0)
            run = {
                "arch": arch,
                "seed": seed,
                "test_accuracy": hist.test_accuracy,
                "train_accuracy": hist.train_accuracy,
                "final_test_accuracy": accuracy(net, (test.images, test.labels)),
                "trained": profile_summary(class_profiles(net, train.images, train.labels, **kw)),
                "untrained": profile_summary(
                    class_profiles(untrained, train.images, train.labels, **kw)
                ),
                "train_cpu_seconds": c_train,
                "cpu_seconds": time.process_time() - c,
                "wall_seconds": time.time() - t,
            }
            results["runs"].append(run)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results))
            tw = torch.tensor(run["trained"]["twonn"]).mean(0)
            uw = torch.tensor(run["untrained"]["twonn"]).mean(0)
            print(
                f"[{k}/{len(todo)}] {arch} seed {seed}: accuracy "
                f"{run['final_test_accuracy']:.3f}; {run['cpu_seconds']:.0f} CPU-s "
                f"(training {c_train:.0f}), {run['wall_seconds']:.0f} s wall; total "
                f"{time.time() - t0:.0f} s\n  TwoNN trained   {[round(v, 1) for v in tw.tolist()]}"
                f"\n  TwoNN untrained {[round(v, 1) for v in uw.tolist()]}",
                flush=True,
            )
    runs = [r for r in results["runs"] if r["arch"] in args.archs and r["seed"] in args.seeds]
    if not runs:
        raise SystemExit(f"no runs in {args.out} for {args.archs} x seeds {args.seeds}.")
    results["summary"] = summarise(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results))
    figure(results["summary"], args.out.with_suffix(".png"))
    summary_path = args.summary
    if summary_path is None and not args.quick:
        defaults = {a.dest: ap.get_default(a.dest) for a in ap._actions if a.dest in settings}
        full = settings == defaults and sorted(args.archs) == sorted(ARCHS)
        if full and sorted(args.seeds) == [0, 1, 2]:
            summary_path = SUMMARY
        else:
            print(f"not the full study with the default settings: {SUMMARY} left as it is "
                  "(pass --summary PATH to write this run's summary)")  # fmt: skip
    if summary_path is not None:
        cpu = sum(r["cpu_seconds"] for r in runs)
        tracked = tracked_summary(results["summary"], {**settings, "threads": args.threads}, cpu)
        if summary_path.exists():  # keep the side measurements recorded beside the study
            old = json.loads(summary_path.read_text())
            if "reconciliation" in old:
                tracked["reconciliation"] = old["reconciliation"]
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(tracked, indent=1) + "\n")
        print(f"wrote {summary_path}")
    print(table(results["summary"]))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
