"""interp_lib.studies: paired intervals, bootstrap correlations, per-class profiles, residual nets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from interp_lib.networks import ImageCentering, residual_classifier
from interp_lib.studies import class_profiles, correlation_bootstrap, paired_interval


def test_paired_interval_matches_a_hand_computed_t_interval():
    a = [10.0, 12.0, 11.0, 13.0]
    b = [9.0, 10.0, 10.5, 11.0]
    res = paired_interval(a, b)
    diff = torch.tensor(a) - torch.tensor(b)
    half = 3.182446305284263 * float(diff.std()) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert res.mean == pytest.approx(float(diff.mean()))
    assert res.low == pytest.approx(res.mean - half, rel=1e-6)
    assert res.high == pytest.approx(res.mean + half, rel=1e-6)
    assert res.n == 4 and res.excludes_zero
    assert "95 % CI" in str(res)


def test_paired_interval_is_paired_not_two_sample():
    # large spread between pairs, constant difference: a paired interval is tight
    a = torch.tensor([1.0, 50.0, 100.0, 7.0]) + 1.0
    b = torch.tensor([1.0, 50.0, 100.0, 7.0]) + torch.tensor([0.9, 1.1, 1.0, 1.0]) - 1.0
    res = paired_interval(a, b)
    assert res.high - res.low < 0.5


def test_paired_interval_with_one_pair_and_bad_input():
    one = paired_interval([2.0], [1.0])
    assert one.mean == 1.0 and math.isnan(one.low)
    with pytest.raises(ValueError, match="pair up"):
        paired_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_interval([1.0, 2.0], [1.0, 0.0], confidence=1.5)
    with pytest.raises(ValueError, match="NaN"):
        paired_interval([1.0, float("nan")], [1.0, 0.0])


def test_correlation_bootstrap_coefficients_and_intervals():
    from scipy.stats import pearsonr, spearmanr

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    y = 2 * x + 0.5 * torch.randn(40, generator=g, dtype=torch.float64)
    res = correlation_bootstrap(x, y, n_resamples=300, seed=1)
    assert res.pearson == pytest.approx(pearsonr(x, y)[0])
    assert res.spearman == pytest.approx(spearmanr(x, y)[0])
    assert res.pearson_interval[0] < res.pearson < res.pearson_interval[1]
    assert res.pearson_interval[0] > 0.8
    assert res.n == 40 and res.n_groups == 40
    again = correlation_bootstrap(x, y, n_resamples=300, seed=1)
    assert again.spearman_interval == res.spearman_interval
    assert list(res.to_pandas().index) == ["Pearson r", "Spearman rho"]


def test_correlation_bootstrap_groups_widen_the_interval_of_clustered_points():
    # 4 groups of 5 near-identical networks: 20 points, but only 4 independent units
    base_x = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    base_y = torch.tensor([0.0, 2.0, 1.0, 3.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = base_x.repeat_interleave(5) + 0.01 * torch.randn(20, generator=g, dtype=torch.float64)
    y = base_y.repeat_interleave(5) + 0.01 * torch.randn(20, generator=g, dtype=torch.float64)
    groups = [i // 5 for i in range(20)]
    naive = correlation_bootstrap(x, y, n_resamples=500, seed=0)
    clustered = correlation_bootstrap(x, y, groups=groups, n_resamples=500, seed=0)
    width = lambda r: r.pearson_interval[1] - r.pearson_interval[0]  # noqa: E731
    assert clustered.n_groups == 4
    assert width(clustered) > 2 * width(naive)


def test_correlation_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        correlation_bootstrap([1, 2], [1, 2])
    with pytest.raises(ValueError, match="one value per network"):
        correlation_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="one label per network"):
        correlation_bootstrap([1, 2, 3], [1, 2, 3], groups=[0, 1])
    with pytest.raises(TypeError):
        correlation_bootstrap("abc", [1, 2, 3])


def test_residual_classifier_shapes_and_default_checkpoints():
    from interp_lib.profile import default_checkpoints

    net = residual_classifier(3, image_size=16, widths=(4, 8), blocks_per_stage=2)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
    names = default_checkpoints(net, torch.zeros(1, 3, 16, 16))
    assert names == ["input", "stem.pool", "layer1", "layer2", "avgpool", "out"]
    with pytest.raises(ValueError, match="divisible"):
        residual_classifier(3, image_size=18, widths=(4, 8))
    with pytest.raises(ValueError):
        residual_classifier(1)


def _two_class_data():
    g = torch.Generator().manual_seed(0)
    # class 0 varies along 2 directions, class 1 along 5: a known per-class ID
    basis = torch.randn(8, 12, generator=g)
    x0 = torch.rand(300, 2, generator=g) @ basis[:2]
    x1 = torch.rand(300, 5, generator=g) @ basis[2:7] + 5
    x = torch.cat([x0, x1]).reshape(600, 1, 3, 4)
    y = torch.tensor([0] * 300 + [1] * 300)
    return x, y


@pytest.mark.slow
def test_class_profiles_measures_each_class_on_its_own():
    x, y = _two_class_data()
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 12))
    with torch.no_grad():
        net[1].weight.copy_(torch.eye(12))
        net[1].bias.zero_()
    prof = class_profiles(net, x, y, n_resamples=3, max_rank=16)
    assert prof.classes == (0, 1) and prof.n_per_class == (300, 300)
    assert prof.layers[0] == "input" and prof.relative_depth[0] == 0.0
    assert prof.twonn.shape == (2, len(prof.layers))
    assert prof.twonn[0, 0] == pytest.approx(2.0, abs=0.4)
    assert prof.twonn[1, 0] == pytest.approx(5.0, abs=1.2)
    # an identity layer keeps each class's ID; the mix of classes is not what is measured
    assert torch.allclose(prof.twonn[:, 0], prof.twonn[:, -1], atol=1e-6)
    assert prof.pca[0, 0] <= 2 and prof.pca[1, 0] <= 5
    assert prof.gride_ranks == (2, 4, 8, 16)
    assert prof.gride.shape == (2, len(prof.layers), 4)
    assert prof.at_rank(8).shape == (2, len(prof.layers))
    assert prof.mean().shape == (len(prof.layers),)
    assert prof.sd().shape == (len(prof.layers),)
    table = prof.to_pandas()
    assert {"twonn", "twonn_sd", "pca", "gride_16"} <= set(table.columns)


@pytest.mark.slow
def test_class_profiles_options_and_errors():
    x, y = _two_class_data()
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2))
    prof = class_profiles(net, x, y, n_per_class=50, n_resamples=0, pca=False, max_rank=None)
    assert prof.n_per_class == (50, 50)
    assert torch.isnan(prof.pca).all() and prof.gride_ranks == ()
    assert torch.isnan(prof.twonn_error).all()
    with pytest.raises(ValueError, match="one per image"):
        class_profiles(net, x, y[:10])
    with pytest.raises(ValueError, match="need at least 10"):
        class_profiles(net, x[:305], y[:305])
    with pytest.raises(ValueError, match="rank must be one of"):
        class_profiles(net, x, y, n_resamples=0, max_rank=8).at_rank(3)


def test_image_centering_removes_a_per_image_offset_exactly():
    x = torch.rand(5, 2, 4, 4, dtype=torch.float64)
    offset = torch.rand(5, 1, 1, 1, dtype=torch.float64) * 300
    layer = ImageCentering()
    assert torch.allclose(layer(x + offset), layer(x), atol=1e-10)
    assert torch.allclose(layer(x).mean(dim=(1, 2, 3)), torch.zeros(5, dtype=torch.float64))
    assert not list(layer.parameters())


@pytest.mark.slow
def test_class_profiles_gives_the_numbers_of_twonn_and_gride_from_one_search():
    # the per-class numbers come from one neighbour search per layer; they must be those
    # of the library's estimators called on each class and layer (with duplicates, as
    # after a ReLU)
    from interp_lib.id import gride, pca_dim, twonn
    from interp_lib.profile import collect_activations

    x, y = _two_class_data()
    x = torch.cat([x, x[:20], x[300:320]])  # exact duplicates in both classes
    y = torch.cat([y, y[:20], y[300:320]])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 30), nn.ReLU(), nn.Linear(30, 3))
    prof = class_profiles(net, x, y, n_resamples=4, max_rank=32, seed=3)
    for i, c in enumerate(prof.classes):
        acts = collect_activations(net, x[y == c], progress=False)
        for j, a in enumerate(acts.values()):
            X = a.flatten(1).double()
            with pytest.warns(UserWarning, match="dropped"):
                ref = twonn(X, n_resamples=4, seed=3)
            assert float(prof.twonn[i, j]) == pytest.approx(float(ref.resamples.mean()), rel=1e-9)
            assert float(prof.twonn_error[i, j]) == pytest.approx(
                float(ref.resamples.std()), rel=1e-9
            )
            g = gride(X, max_rank=32)
            assert prof.gride_ranks == tuple(g.n2.tolist())
            assert torch.allclose(prof.gride[i, j], g.dimensions, rtol=1e-9)
            assert torch.allclose(prof.gride_scale[i, j], g.scales, rtol=1e-9)
            assert prof.pca[i, j] == pca_dim(X)
    # k = 2 neighbours only: most subsamples fall back to a search inside the subsample
    small = class_profiles(net, x, y, n_resamples=4, max_rank=None, pca=False, seed=3)
    acts = collect_activations(net, x[y == 1], progress=False)
    with pytest.warns(UserWarning, match="dropped"):
        ref = twonn(list(acts.values())[-1].flatten(1).double(), n_resamples=4, seed=3)
    assert float(small.twonn[1, -1]) == pytest.approx(float(ref.resamples.mean()), rel=1e-9)
    with pytest.raises(ValueError, match="subsample"):
        class_profiles(net, x, y, subsample=1.5)


def _profiles(twonn, gride=None):
    from interp_lib.studies import ClassProfiles

    twonn = torch.as_tensor(twonn, dtype=torch.float64)
    n_c, n_l = twonn.shape
    g = twonn[:, :, None] / 2 if gride is None else torch.as_tensor(gride, dtype=torch.float64)
    return ClassProfiles(
        classes=tuple(range(n_c)), layers=tuple(f"l{j}" for j in range(n_l)),
        relative_depth=tuple(j / (n_l - 1) for j in range(n_l)), n_features=(1,) * n_l,
        n_per_class=(10,) * n_c, twonn=twonn, twonn_error=torch.full_like(twonn, math.nan),
        pca=torch.full_like(twonn, math.nan), gride_ranks=(64,), gride=g,
        gride_scale=torch.ones_like(g),
    )  # fmt: skip


def test_hunchback_peak_rise_and_twin_paired_over_seeds_and_classes():
    from interp_lib.studies import hunchback

    seed0 = _profiles([[10.0, 14.0, 12.0, 3.0], [12.0, 15.0, 13.0, 4.0]])
    seed1 = _profiles([[10.0, 16.0, 11.0, 3.0], [12.0, 17.0, 12.0, 4.0]])
    flat0 = _profiles([[10.0, 10.5, 9.0, 3.0], [12.0, 12.0, 11.0, 4.0]])
    flat1 = _profiles([[10.0, 9.5, 9.0, 3.0], [12.0, 12.0, 11.0, 4.0]])
    h = hunchback([seed0, seed1], [flat0, flat1])
    assert h.peak == 1 and h.peak_layer == "l1" and h.peak_depth == pytest.approx(1 / 3)
    assert h.n_seeds == 2 and h.n_classes == 2 and h.rise.n == 4
    assert h.rise.mean == pytest.approx((4 + 3 + 6 + 5) / 4)
    assert h.rise.excludes_zero
    assert h.rise_over_seeds.n == 2
    assert h.rise_over_seeds.mean == pytest.approx(h.rise.mean)
    assert h.untrained_change.mean == pytest.approx(0.0)
    assert h.trained_minus_untrained.mean == pytest.approx((3.5 + 3 + 6.5 + 5) / 4)
    assert torch.allclose(h.trained, torch.tensor([11.0, 15.5, 12.0, 3.5], dtype=torch.float64))
    one = hunchback(seed0, flat0, rank=64)  # Gride at rank 64: half the TwoNN here
    assert one.rise.mean == pytest.approx(h.rise.mean / 2 - 0.5)  # seed 0 only: 3.5 / 2
    assert math.isnan(one.rise_over_seeds.low)
    with pytest.raises(ValueError, match="pair up"):
        hunchback([seed0, seed1], [flat0])
    with pytest.raises(TypeError, match="ClassProfiles"):
        hunchback([], [flat0])
    with pytest.raises(ValueError, match="rank must be one of"):
        hunchback(seed0, flat0, rank=32)


# --- the multi-seed hunchback study: the bench's tracked summary and its reader ---------


def _bench_module():
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "bench"))  # the bench scripts import their _common
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_id_hunchback", root / "bench" / "id_hunchback.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    return mod


def _fake_run(arch, seed, bump):
    """A run as bench/id_hunchback.py stores it: 3 classes x 4 layers, ranks 1..64."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([20.0, 20.0, 15.0, 5.0])
    ranks = [1, 2, 4, 8, 16, 32, 64]

    def prof(b):
        tw = base + torch.tensor([0.0, b, 0.0, 0.0]) + 0.5 * torch.randn(3, 4, generator=g)
        gride = tw[..., None] / torch.arange(1, len(ranks) + 1)
        return {
            "layers": ["input", "pool1", "fc1", "out"],
            "relative_depth": [0.0, 1 / 3, 2 / 3, 1.0],
            "n_features": [768, 1024, 64, 5],
            "twonn": tw.tolist(),
            "pca": (3 * tw).tolist(),
            "gride_ranks": ranks,
            "gride": gride.tolist(),
            "gride_scale": torch.ones(3, 4, len(ranks)).tolist(),
        }

    return {
        "arch": arch,
        "seed": seed,
        "final_test_accuracy": 0.8 + 0.01 * seed,
        "trained": prof(bump),
        "untrained": prof(0.0),
        "cpu_seconds": 1.0,
    }


def test_the_bench_summary_holds_the_rise_and_reads_back(tmp_path):
    from interp_lib.studies.hunchback import hunchback_summary_table, load_hunchback_summary

    bench = _bench_module()
    runs = [_fake_run("vgg4", s, 10.0) for s in (0, 1, 2)]
    settings = {"n_classes": 3, "image_size": 32, "n_per_class": 10, "epochs": 1}
    tracked = bench.tracked_summary(bench.summarise(runs), settings, 3.0)
    for key in ("script", "date", "machine", "table"):  # what bench/report.py needs
        assert key in tracked
    tw = tracked["archs"]["vgg4"]["twonn"]
    assert tw["peak_layer"] == "pool1"
    assert 8 < tw["rise"]["mean"] < 12 and tw["rise"]["n"] == 9
    assert tw["rise_over_seeds"]["n"] == 3 and tw["rise_over_seeds"]["low"] > 0
    assert abs(tw["untrained_change"]["mean"]) < 2
    path = tmp_path / "s.json"
    path.write_text(__import__("json").dumps(tracked))
    table = hunchback_summary_table(load_hunchback_summary(path))
    assert list(table.index) == ["vgg4"]
    assert table.loc["vgg4", "peak layer"] == "pool1"


def test_the_committed_hunchback_summary_is_complete():
    from interp_lib.studies.hunchback import hunchback_summary_table, load_hunchback_summary

    study = load_hunchback_summary()
    assert set(study["archs"]) == {"vgg8", "vgg4", "resnet"}
    for e in study["archs"].values():
        for what in ("twonn", "gride"):
            for key in ("rise", "rise_over_seeds", "untrained_change", "trained_minus_untrained"):
                iv = e[what][key]
                assert iv["low"] <= iv["mean"] <= iv["high"], (key, iv)
    assert "resnet_n500" in study["reconciliation"]
    assert len(hunchback_summary_table(study, "gride")) == 3


def test_load_hunchback_summary_names_what_to_do(tmp_path):
    from interp_lib.studies.hunchback import hunchback_summary_table, load_hunchback_summary

    with pytest.raises(FileNotFoundError, match=r"bench/id_hunchback\.py"):
        load_hunchback_summary(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="archs"):
        load_hunchback_summary(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="twonn"):
        hunchback_summary_table(load_hunchback_summary(), "pca")
