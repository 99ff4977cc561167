"""Per-class profiling and the exact k-NN search sharded over ``torch.distributed`` ranks.

The ``distributed`` tests start 2 CPU processes (gloo) with ``torch.distributed.run``:
``interp-lib-profile`` under ``torchrun`` writes the same ``profile.json`` as one process,
resumes whatever rank finished a class, and stops every rank with one line when a class
fails on one of them; ``distributed_nearest_neighbors`` gives the whole exact result on
every rank. The other tests check the pieces in one process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from interp_lib import cli as app
from interp_lib.cli import distributed
from interp_lib.id import Neighbors, nearest_neighbors
from interp_lib.id.distributed import (
    _prepare,
    _search_rows,
    _unsorted,
    block_nearest_neighbors,
    distributed_nearest_neighbors,
    order_ties,
    row_block,
)
from interp_lib.profile import cli
from interp_lib.studies import per_class
from interp_lib.studies.sharding import merge_class_records, shard_classes

HERE = Path(__file__).resolve().parent
CLASSES = ("n01", "n02", "n03", "n04")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's processes (OMP_NUM_THREADS=1)
    yield
    torch.set_num_threads(before)


def _folder(root: Path, sizes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _folder(
        tmp_path_factory.mktemp("imagefolder"), {c: 18 + i for i, c in enumerate(CLASSES)}
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from test_profile_cli import tiny_net

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(tiny_net().state_dict(), path)
    return path


def args(folder, out, weights, *extra) -> list[str]:
    return ["test_profile_cli:tiny_net", str(folder), "--out", str(out), "--weights",
            str(weights), "--image-size", "16", "--n-per-class", "15", "--n-resamples", "3",
            "--batch-size", "8", "--no-figure", "--device", "cpu", *extra]  # fmt: skip


def torchrun(*command: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node=2 command...`` on 2 CPU processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *command]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ the profile command


@pytest.fixture(scope="module")
def launched(tmp_path_factory, folder, weights) -> tuple[Path, subprocess.CompletedProcess]:
    """One launch of ``_profile_ddp_worker.py`` on 2 gloo ranks (see its docstring)."""
    root = tmp_path_factory.mktemp("ddp")
    shutil.copytree(folder, root / "data")
    shutil.copy(weights, root / "tiny.pt")
    _folder(root / "bad", {"n01": 16, "n02": 16, "n03": 16, "n04": 2})
    proc = torchrun(str(HERE / "_profile_ddp_worker.py"), str(root), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc


@pytest.mark.distributed
def test_distributed_profile_equals_one_process_and_resumes(launched, tmp_path, monkeypatch):
    root, proc = launched
    folder, weights = root / "data", root / "tiny.pt"  # the settings of the ranks' run
    one = json.loads(json.dumps(cli.run(args(folder, tmp_path / "one", weights))))
    out = root / "two"
    assert json.loads((out / "first.json").read_text()) == one  # every number, bit for bit
    for c in CLASSES:  # each rank wrote its classes' files: the one-process files
        assert (out / "classes" / f"{c}.json").read_text() == (
            tmp_path / "one" / "classes" / f"{c}.json"
        ).read_text()
    meta = [json.loads((o / "run.json").read_text()) for o in (tmp_path / "one", out)]
    assert meta[0]["settings"] == meta[1]["settings"]  # written by rank 0
    # the rerun with --resume after rank 1's classes were lost redid those only
    assert json.loads((out / "profile.json").read_text()) == one
    kept = json.loads((root / "mtimes.json").read_text())
    assert sorted(kept) == shard_classes(CLASSES, 0, 2) == ["n01", "n03"]
    assert all((out / "classes" / f"{c}.json").stat().st_mtime_ns == t for c, t in kept.items())
    assert proc.stderr.count("done before, skipped") == 2  # said by rank 0 only

    # one process resumes what the ranks did: only the missing class is profiled
    (out / "classes" / "n01.json").unlink()
    calls = []
    real = per_class.layer_ids
    monkeypatch.setattr(
        per_class, "layer_ids", lambda *a, **k: calls.append(k["label"]) or real(*a, **k)
    )
    assert cli.run(args(folder, out, weights, "--resume")) == one
    assert calls == ["n01"]


@pytest.mark.distributed
def test_an_error_on_one_rank_stops_every_rank_with_one_line(launched):
    root, proc = launched
    # n04 (rank 1 of 2 in sorted order) has 2 images, too few: both ranks stop, status 2
    assert json.loads((root / "statuses.json").read_text()) == [2, 2]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "error" in line]
    assert errors == ["error: rank 1: class 'n04' has 2 images; need at least 3."]
    assert "Traceback" not in proc.stderr
    # the classes finished before the error are kept for --resume (rank 1 did n02
    # before n04); no profile.json
    done = sorted(p.name for p in (root / "bad_run" / "classes").iterdir())
    assert done == ["n01.json", "n02.json", "n03.json"]
    assert not (root / "bad_run" / "profile.json").exists()


def test_shard_classes_is_a_round_robin_partition():
    names = ["e", "b", "a", "d", "c"]
    shards = [shard_classes(names, r, 2) for r in range(2)]
    assert shards == [["a", "c", "e"], ["b", "d"]]
    assert shard_classes(reversed(names), 0, 2) == shards[0]  # order given does not matter
    assert sorted(c for r in range(3) for c in shard_classes(names, r, 3)) == sorted(names)
    assert shard_classes(["a"], 1, 2) == []  # more ranks than classes
    assert shard_classes([3, 1, 2], 0, 1) == [1, 2, 3]
    with pytest.raises(ValueError, match="at most 1"):
        shard_classes(names, 2, 2)
    with pytest.raises(ValueError, match="more than once"):
        shard_classes(["a", "a"], 0, 2)
    with pytest.raises(TypeError, match="all names or all labels"):
        shard_classes(["a", 1], 0, 2)


def test_merge_class_records_orders_and_checks():
    rec = {c: {"class": c, "id": [float(i)]} for i, c in enumerate("abc")}
    parts = [[rec["c"]], [rec["a"]], [rec["b"], rec["a"]]]  # a twice, identical: fine
    assert merge_class_records(parts, ["b", "a", "c"]) == [rec["b"], rec["a"], rec["c"]]
    with pytest.raises(ValueError, match=r"no record of classes \['c'\]"):
        merge_class_records([[rec["a"], rec["b"]]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="two different records of class 'a'"):
        merge_class_records([[rec["a"]], [{"class": "a", "id": [9.0]}]], ["a"])
    with pytest.raises(ValueError, match="not among the run's classes"):
        merge_class_records([[rec["a"]]], ["b"])


def test_together_alone_and_quiet_rank(monkeypatch):
    ranks = distributed.start(torch.device("cpu"))
    assert ranks == distributed.Ranks() and ranks.is_main and not ranks.enabled
    assert distributed.together(ranks, lambda: 3) == 3
    with pytest.raises(KeyError):
        distributed.together(ranks, lambda: {}["x"])
    assert distributed.gather("x", ranks) == ["x"]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.quiet_rank()
    # a bad flag is reported by rank 0 only: rank 1 stops quietly with status 2
    assert cli.main(["m", "d", "--out", "o", "--n-per-class", "0"]) == app.EXIT_USAGE
    monkeypatch.setenv("RANK", "0")
    assert not distributed.quiet_rank()


# --------------------------------------------------------------------- exact k-NN search


def knn_cases() -> dict[str, tuple[torch.Tensor, int, int]]:
    """``{name: (X, k, chunk_size)}``: continuous data with planted duplicates, a lattice
    (exact ties everywhere), float64, low-rank data (the projected search space) and wide
    float32 rows (products split in 512-column slices)."""
    g = torch.Generator().manual_seed(0)
    general = torch.randn(301, 6, generator=g)
    general[10:20] = general[0]  # 11 copies: more than k + margin
    general[100:103] = general[200]  # 4 copies: all among the candidates
    general[50] = general[60]
    lattice = torch.randint(0, 4, (250, 2), generator=g).double()
    low = torch.randn(4500, 3, generator=g) @ torch.randn(3, 40, generator=g)
    low[7] = low[4000]
    wide = torch.randn(90, 4200, generator=g)
    wide[1] = wide[89]
    return {
        "general_k1": (general, 1, 64),
        "general_k5": (general, 5, 64),
        "lattice_k4": (lattice, 4, 100),
        "float64_k3": (torch.randn(150, 12, generator=g, dtype=torch.float64), 3, 4096),
        "low_rank_k2": (low, 2, 1024),
        "wide_k2": (wide, 2, 4096),
    }


def brute_force(X: torch.Tensor, k: int) -> Neighbors:
    """Every float64 distance by direct differences; ties by index (a stable sort)."""
    D = (X[:, None, :].double() - X[None, :, :].double()).norm(dim=2)
    D.fill_diagonal_(float("inf"))
    d, i = torch.sort(D, dim=1, stable=True)
    return Neighbors(d[:, :k], i[:, :k])


def _check_against_references(X: torch.Tensor, k: int, got: Neighbors) -> None:
    ref = nearest_neighbors(X, k)
    torch.testing.assert_close(got.distances, ref.distances, rtol=0, atol=0)
    # the indices are those of nearest_neighbors except among exactly tied distances
    d = got.distances
    tied = torch.zeros_like(d, dtype=torch.bool)
    tied[:, 1:] |= d[:, 1:] == d[:, :-1]
    tied[:, :-1] |= d[:, 1:] == d[:, :-1]
    tied |= d == d[:, -1:]  # a tie with the k-th may be with a point left out
    assert torch.equal(got.indices[~tied], ref.indices[~tied])
    if X.shape[0] * X.shape[0] * X.shape[1] <= 5e7:  # brute force: the very same result
        bf = brute_force(X, k)
        assert torch.equal(got.distances, bf.distances) and torch.equal(got.indices, bf.indices)


@pytest.mark.parametrize("name", ["general_k1", "general_k5", "lattice_k4", "float64_k3"])
def test_block_search_is_exact_with_ties_by_index(name):
    X, k, chunk_size = knn_cases()[name]
    n = X.shape[0]
    whole = block_nearest_neighbors(X, k, chunk_size=chunk_size)
    _check_against_references(X, k, whole)
    # any split of the rows into blocks gives the same rows
    for world in (2, 3):
        parts = [block_nearest_neighbors(X, k, *row_block(n, r, world), chunk_size=50)
                 for r in range(world)]  # fmt: skip
        assert torch.equal(torch.cat([p.indices for p in parts]), whole.indices)
        assert torch.equal(torch.cat([p.distances for p in parts]), whole.distances)
    alone = distributed_nearest_neighbors(X, k, chunk_size=chunk_size)  # no process group
    assert torch.equal(alone.indices, whole.indices)


@pytest.mark.slow
def test_the_windowed_search_split_over_ranks_is_the_block_search():
    # low-rank data: sorted along the first principal coordinate, each rank a contiguous
    # block of that order searched through windows (ranks emulated in one process)
    X, k, chunk_size = knn_cases()["low_rank_k2"]
    prep = _prepare(X, k, chunk_size, 2, sort=True)
    assert prep.space.rank > 0 and prep.order is not None  # the projected space
    whole = block_nearest_neighbors(X, k, chunk_size=chunk_size)
    for world in (1, 3):
        parts = [_search_rows(prep, k, *row_block(len(X), r, world), chunk_size)
                 for r in range(world)]  # fmt: skip
        got = _unsorted(prep, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        assert torch.equal(got.distances, whole.distances)
        assert torch.equal(got.indices, whole.indices)
    _check_against_references(X, k, whole)


def test_duplicates_beyond_the_candidates_are_the_lowest_indices():
    X, _, _ = knn_cases()["general_k1"]
    # rows 0 and 10..19 coincide: each one's 2 nearest are the two lowest other copies
    nb = block_nearest_neighbors(X, 2, chunk_size=64)
    assert nb.indices[0].tolist() == [10, 11] and nb.indices[15].tolist() == [0, 10]
    assert nb.distances[[0, *range(10, 20)]].abs().sum() == 0
    # rows 100..102 and 200 coincide (4 copies, all among the k + margin candidates)
    assert nb.indices[200].tolist() == [100, 101] and nb.indices[101].tolist() == [100, 102]


def test_order_ties_and_row_blocks():
    nb = Neighbors(torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 2.0]], dtype=torch.float64),
                   torch.tensor([[5, 3, 1], [9, 8, 2]]))  # fmt: skip
    out = order_ties(nb)
    assert out.indices.tolist() == [[3, 5, 1], [9, 2, 8]]
    assert torch.equal(out.distances, nb.distances)
    assert [row_block(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match="at most 2"):
        row_block(10, 3, 3)
    X = torch.randn(20, 3)
    with pytest.raises(ValueError, match="smaller than the number of points"):
        block_nearest_neighbors(X, 20)
    with pytest.raises(ValueError, match="stop must be at most 20"):
        block_nearest_neighbors(X, 2, 0, 21)
    assert block_nearest_neighbors(X, 2, 5, 5).indices.shape == (0, 2)


@pytest.mark.distributed
def test_distributed_knn_on_two_ranks_equals_one_process(launched):
    got = torch.load(launched[0] / "knn.pt", weights_only=True)
    for name, (X, k, chunk_size) in knn_cases().items():
        nb = Neighbors(got[name]["distances"], got[name]["indices"])
        one = block_nearest_neighbors(X, k, chunk_size=chunk_size)
        assert torch.equal(nb.distances, one.distances), name
        assert torch.equal(nb.indices, one.indices), name
        _check_against_references(X, k, nb)
