"""interp_lib.studies.generalisation and .controls on small known cases."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from interp_lib.studies import (
    ARCHITECTURES,
    Architecture,
    GeneralisationStudy,
    generalisation_study,
    last_hidden_ids,
    train_to_criterion,
)


def test_family_has_ten_architectures_of_two_kinds_and_a_width_matched_core():
    assert len(ARCHITECTURES) >= 10
    assert {a.kind for a in ARCHITECTURES} == {"vgg", "resnet"}
    widths = [a.last_hidden_width for a in ARCHITECTURES]
    assert widths.count(128) >= 5 and len(set(widths)) >= 3
    assert len({a.name for a in ARCHITECTURES}) == len(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: a.name)
def test_architecture_builds_and_names_its_last_hidden_layer(arch):
    net = arch.build(10, in_channels=3, image_size=32, seed=0)
    modules = dict(net.named_modules())
    assert arch.last_hidden_layer in modules
    seen = {}
    handle = modules[arch.last_hidden_layer].register_forward_hook(
        lambda m, i, o: seen.setdefault("out", o)
    )
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    handle.remove()
    assert seen["out"].flatten(1).shape[1] == arch.last_hidden_width
    # the same seed gives the same weights
    again = arch.build(10, in_channels=3, image_size=32, seed=0)
    for a, b in zip(net.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_architecture_depth_counts_weight_layers():
    assert Architecture("a", "vgg", (8, 16), hidden=(32, 16)).depth == 2 + 2 + 1
    assert Architecture("b", "vgg", (8, 16), convs_per_stage=2).depth == 4 + 1 + 1
    assert Architecture("c", "resnet", (8, 16, 32)).depth == 1 + 6 + 1


def test_architecture_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        Architecture("x", "mlp", (8,))


def _blobs(n=64, seed=0):
    """Two separable classes of 8-px one-channel images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.3
    x[y == 1, :, :4] += 2.0
    return x, y


def test_train_to_criterion_stops_at_the_first_epoch_that_fits():
    x, y = _blobs()
    net = Architecture("t", "vgg", (4,), hidden=(8,)).build(2, in_channels=1, image_size=8)
    fit = train_to_criterion(net, x, y, target=0.99, max_epochs=50, lr=1e-2, seed=0)
    assert fit.reached and fit.train_accuracy >= 0.99
    assert fit.epochs < 50 and len(fit.loss) == fit.epochs
    assert not net.training


def test_train_to_criterion_reports_a_criterion_not_met():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 1, 8, 8, generator=g), torch.randint(10, (200,), generator=g)
    net = Architecture("t", "vgg", (2,), hidden=(4,)).build(10, in_channels=1, image_size=8)
    fit = train_to_criterion(net, x, y, target=0.99, max_epochs=2, seed=0)
    assert not fit.reached and fit.epochs == 2
    assert 0 <= fit.train_accuracy < 0.99


def test_train_to_criterion_calls_back_every_epoch():
    x, y = _blobs()
    net = Architecture("t", "vgg", (4,), hidden=(8,)).build(2, in_channels=1, image_size=8)
    seen = []
    fit = train_to_criterion(net, x, y, target=1.0, max_epochs=3, seed=0,
                             on_epoch=lambda e, m: seen.append((e, m.training)))  # fmt: skip
    assert seen == [(e, False) for e in range(1, fit.epochs + 1)]


def test_train_to_criterion_checks_its_input():
    x, y = _blobs()
    net = Architecture("t", "vgg", (4,), hidden=(8,)).build(2, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match="target"):
        train_to_criterion(net, x, y, target=1.5)
    with pytest.raises(ValueError, match="labels"):
        train_to_criterion(net, x, y[:3])


def test_last_hidden_ids_of_a_plane_is_two_at_every_scale():
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(1500, 2, generator=g, dtype=torch.float64)
    rot = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))[0][:2]
    points = (plane @ rot).float()
    net = nn.Sequential(OrderedDict(relu_fc1=nn.Identity(), out=nn.Linear(20, 3)))
    ids = last_hidden_ids(net, "relu_fc1", points)
    assert ids["twonn"] == pytest.approx(2.0, abs=0.2)
    assert ids["gride_ranks"] == [2, 4, 8, 16, 32]
    assert all(d == pytest.approx(2.0, abs=0.2) for d in ids["gride"])


def _rows(ids, errors, archs, widths=None, kinds=None):
    widths = widths or [128] * len(ids)
    kinds = kinds or ["vgg"] * len(ids)
    return [
        {"arch": a, "kind": k, "depth": 3, "width": w, "seed": i % 2, "epochs": 5,
         "reached": True, "train_accuracy": 1.0, "test_error": e, "twonn": d,
         "gride": [d, d + 1], "gride_ranks": [2, 4], "curve": [], "seconds": 1.0}
        for i, (d, e, a, w, k) in enumerate(zip(ids, errors, archs, widths, kinds, strict=True))
    ]  # fmt: skip


def test_correlations_over_architectures_on_a_linear_family():
    archs = [f"a{i}" for i in range(6) for _ in range(2)]
    ids = [float(i) + 0.1 * s for i in range(6) for s in range(2)]
    errors = [0.1 + 0.05 * d for d in ids]  # exactly linear: r = 1
    study = GeneralisationStudy(_rows(ids, errors, archs))
    table = study.correlations(n_resamples=200).set_index("subset")
    assert table.loc["architectures", "n"] == 6
    assert table.loc["networks", "n"] == 12
    assert table.loc["architectures", "pearson"] == pytest.approx(1.0)
    assert table.loc["architectures", "spearman"] == pytest.approx(1.0)
    assert table.loc["architectures", "pearson_low"] == pytest.approx(1.0)
    assert "width 128" in table.index and "kind vgg" in table.index
    assert "seed 0" in table.index
    by = study.by_architecture()
    assert list(by["arch"]) == [f"a{i}" for i in range(6)]
    assert by["n_seeds"].tolist() == [2] * 6


def test_correlations_on_a_gride_column_and_a_reversed_family():
    archs = [f"a{i}" for i in range(5)]
    ids = [1.0, 2.0, 3.0, 4.0, 5.0]
    errors = [0.5, 0.4, 0.3, 0.2, 0.1]
    study = GeneralisationStudy(_rows(ids, errors, archs))
    table = study.correlations("gride_4", n_resamples=100).set_index("subset")
    assert table.loc["architectures", "pearson"] == pytest.approx(-1.0)


def test_leave_one_out_drops_each_architecture_once():
    archs = [f"a{i}" for i in range(5)]
    ids = [1.0, 2.0, 3.0, 4.0, 10.0]
    errors = [0.1, 0.2, 0.3, 0.4, 0.0]  # the outlier a4 reverses the sign
    loo = GeneralisationStudy(_rows(ids, errors, archs)).leave_one_out()
    assert list(loo["left_out"]) == archs
    assert loo.set_index("left_out").loc["a4", "pearson"] == pytest.approx(1.0)
    assert loo.set_index("left_out").loc["a0", "pearson"] < 0


def test_study_round_trips_through_a_dict():
    study = GeneralisationStudy(_rows([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], ["a", "b", "c"]))
    again = GeneralisationStudy.from_dict(study.to_dict())
    assert again.to_pandas().equals(study.to_pandas())
    assert list(study.to_pandas().columns[-2:]) == ["gride_2", "gride_4"]


@pytest.mark.slow
def test_generalisation_study_runs_end_to_end_on_tiny_data():
    x, y = _blobs(96)
    xt, yt = _blobs(64, seed=1)
    archs = [Architecture("v", "vgg", (4,), hidden=(8,)),
             Architecture("r", "resnet", (4, 8))]  # fmt: skip
    lines = []
    study = generalisation_study((x, y), (xt, yt), architectures=archs, seeds=(0, 1),
                                 max_epochs=5, track=("v",), log=lines.append)  # fmt: skip
    df = study.to_pandas()
    assert len(df) == 4 and len(lines) == 4
    assert set(df["width"]) == {8}
    assert df["test_error"].between(0, 1).all()
    assert df["twonn"].map(math.isfinite).all()
    curves = study.curves()
    assert set(curves["arch"]) == {"v"}
    assert curves.groupby("seed").size().tolist() == df[df.arch == "v"]["epochs"].tolist()
    with pytest.raises(ValueError, match="track"):
        generalisation_study((x, y), (xt, yt), architectures=archs, track=("nope",))


def test_compare_to_summary_flags_networks_outside_the_tolerance():
    from interp_lib.studies import compare_to_summary

    summary = GeneralisationStudy(_rows([5.0, 6.0], [0.30, 0.40], ["a", "b"]))
    live = GeneralisationStudy(_rows([5.2, 7.0], [0.31, 0.40], ["a", "b"]))
    table = compare_to_summary(live, summary, error_tol=0.03, id_tol=0.5)
    assert table["within"].tolist() == [True, False]
    other = GeneralisationStudy(_rows([5.0], [0.3], ["zzz"]))
    with pytest.raises(KeyError, match="zzz"):
        compare_to_summary(other, summary)


def test_load_generalisation_summary_reads_the_family_back(tmp_path):
    import json

    from interp_lib.studies import load_generalisation_summary

    study = GeneralisationStudy(_rows([5.0, 6.0, 7.0], [0.3, 0.4, 0.5], ["a", "b", "c"]))
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"family": study.to_dict(), "shuffled": {"rows": []}}))
    data = load_generalisation_summary(path)
    assert data["family"].to_pandas().equals(study.to_pandas())
    with pytest.raises(FileNotFoundError, match="bench"):
        load_generalisation_summary(tmp_path / "missing.json")


def test_profile_table_averages_over_seeds():
    from interp_lib.studies import profile_table

    rows = [
        {"seed": s, "labels": lab, "epochs": 3, "reached": True, "train_accuracy": acc,
         "seconds": 1.0, "ids": {"input": 6.0, "relu_fc1": hid + s}}
        for s in (0, 1) for lab, acc, hid in (("true", 1.0, 5.0), ("shuffled", 0.99, 7.0))
    ]  # fmt: skip
    table = profile_table({"rows": rows}, "labels")
    assert table.loc["shuffled", ("relu_fc1", "mean")] == pytest.approx(7.5)
    assert table.loc["true", ("relu_fc1", "sd")] == pytest.approx(2**-0.5)
    assert table.loc["true", ("train_accuracy", "mean")] == 1.0


def test_correlations_computes_only_the_subsets_asked_for():
    archs = [f"a{i}" for i in range(5) for _ in range(2)]
    ids = [float(i) + 0.1 * s for i in range(5) for s in range(2)]
    study = GeneralisationStudy(_rows(ids, [0.1 * d for d in ids], archs))
    table = study.correlations(subsets=["architectures"], n_resamples=50)
    assert table["subset"].tolist() == ["architectures"]
    seeds = study.correlations(subsets=["seed"]).set_index("subset")
    assert list(seeds.index) == ["seed 0", "seed 1"]
    assert seeds["pearson"].tolist() == pytest.approx([1.0, 1.0])
    assert seeds["pearson_low"].isna().all()  # point estimates only
    with pytest.raises(ValueError, match="subsets"):
        study.correlations(subsets=["everything"])


def test_build_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ARCHITECTURES[0].build(10, in_channels=3, image_size=32, seed=7)
    assert torch.equal(torch.rand(3), expected)
