"""Bench: last-hidden ID against test error over architectures; shuffled labels; MNIST*.

Three experiments of Ansuini et al. (2019), at one thread, written to a JSON summary that
the book's chapter ``id_generalisation`` reads (``bench/summaries/id_generalisation.json``):

- ``family``: :func:`interp_lib.studies.generalisation_study` on procedural birds
  (:func:`birds_task`: 10 classes, 32 px, difficulty 0.3, 100 training and 100 held-out
  images per class), the ten architectures of
  :data:`interp_lib.studies.ARCHITECTURES` x ``--seeds``, each trained with Adam until its
  accuracy on the whole training set (eval mode) reaches 0.99 (at most
  ``--max-epochs``); last hidden layer (after its ReLU; a ResNet's average pool) measured
  on the 1000 held-out images with TwoNN (mean of five 90 % subsamples) and Gride at
  ranks up to 32; the training-progress curve of ``vgg2`` (ID and error after every
  epoch);
- ``shuffled``: :func:`interp_lib.studies.shuffled_label_study` on 16-px digits;
- ``star``: :func:`interp_lib.studies.mnist_star_study` on 16-px digits, two seeds:
  Adam (40 epochs) at lambda = 0, 30, 300, and the authors' SGD recipe (lr 1e-4,
  momentum 0.9, 90 epochs = their 1876 steps) at lambda = 300.

    OMP_NUM_THREADS=1 python bench/id_generalisation.py            # everything
    OMP_NUM_THREADS=1 python bench/id_generalisation.py --parts family --seeds 0
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from interp_lib import studies

SUMMARY = Path(__file__).parent / "summaries" / "id_generalisation.json"


def save(out: dict, args) -> None:
    out["machine"] = {
        "threads": args.threads,
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["family", "shuffled", "star"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--archs", nargs="+", default=None, help="names (default: all ten)")
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=SUMMARY)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    archs = studies.ARCHITECTURES
    if args.archs:
        archs = [a for a in archs if a.name in args.archs]
    for part in args.parts:
        t = time.time()
        if part == "family":
            train, test = studies.birds_task()
            out["family_settings"] = {
                "task": studies.BIRDS_TASK,
                "seeds": args.seeds,
                "target": 0.99,
                "max_epochs": args.max_epochs,
            }
            rows: list[dict] = []
            for seed in args.seeds:  # seed by seed, saved after each: a partial run is usable
                study = studies.generalisation_study(
                    train,
                    test,
                    architectures=archs,
                    seeds=[seed],
                    max_epochs=args.max_epochs,
                    track=("vgg2",) if any(a.name == "vgg2" for a in archs) else (),
                    log=lambda line: print(line, flush=True),
                )
                rows += study.rows
                out["family"] = {"rows": rows, "architectures": study.architectures}
                save(out, args)
        elif part == "shuffled":
            out["shuffled"] = studies.shuffled_label_study(
                seeds=args.seeds, log=lambda line: print(line, flush=True)
            )
        elif part == "star":
            seeds = args.seeds[:2]
            out["star"] = studies.mnist_star_study(
                seeds=seeds, lams=(0.0, 30.0, 300.0), log=lambda line: print(line, flush=True)
            )
            authors = {"optimizer": "sgd", "lr": 1e-4, "epochs": 90}
            out["star_authors"] = studies.mnist_star_study(
                seeds=seeds,
                lams=(300.0,),
                recipes={"sgd (authors)": authors},
                log=lambda line: print(line, flush=True),
            )
        else:
            raise SystemExit(f"unknown part {part!r}")
        out[f"{part}_seconds"] = time.time() - t
        save(out, args)
        print(f"{part}: {out[f'{part}_seconds']:.0f} s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
