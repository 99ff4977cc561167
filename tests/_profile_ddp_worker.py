"""Run by tests/test_profile_distributed.py under ``torchrun --nproc_per_node=2`` (not a
test): everything the distributed tests check, in one launch of 2 gloo processes.

In the folder given as argv[1] (prepared by the test: ``data``, ``bad``, ``tiny.pt``):

1. ``distributed_nearest_neighbors`` on every data set of ``knn_cases()``; every rank
   checks that it holds the whole result, rank 0 saves it to ``knn.pt``;
2. ``interp-lib-profile`` from scratch into ``two`` (the process group started here:
   the command uses it and leaves it open);
3. rank 0 deletes rank 1's class files and ``profile.json``; the command again with
   ``--resume``;
4. the command on ``bad``, where one class of rank 1 has too few images: both ranks'
   exit statuses go to ``statuses.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from test_profile_distributed import CLASSES, args, knn_cases

from interp_lib.id.distributed import distributed_nearest_neighbors
from interp_lib.profile import cli
from interp_lib.studies.sharding import shard_classes


def main(root: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = {}
    for name, (X, k, chunk_size) in knn_cases().items():
        d, i = distributed_nearest_neighbors(X, k, chunk_size=chunk_size)
        both = [None, None]
        dist.all_gather_object(both, (d, i))
        assert all(torch.equal(b[0], d) and torch.equal(b[1], i) for b in both), name
        results[name] = {"distances": d, "indices": i}
    if rank == 0:
        torch.save(results, root / "knn.pt")

    out, weights = root / "two", root / "tiny.pt"
    first = cli.run(args(root / "data", out, weights))
    assert dist.is_initialized()  # the command left the group it did not start
    dist.barrier()
    if rank == 0:  # an interrupted run: rank 1's classes lost
        for c in shard_classes(CLASSES, 1, 2):
            (out / "classes" / f"{c}.json").unlink()
        (out / "profile.json").rename(out / "first.json")
        mtimes = {p.stem: p.stat().st_mtime_ns for p in (out / "classes").iterdir()}
        (root / "mtimes.json").write_text(json.dumps(mtimes))
    dist.barrier()
    second = cli.run(args(root / "data", out, weights, "--resume"))
    assert first == second

    status = cli.main(args(root / "bad", root / "bad_run", weights))
    statuses = [None, None]
    dist.all_gather_object(statuses, status)
    if rank == 0:
        (root / "statuses.json").write_text(json.dumps(statuses))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
