"""compare(): methods x models x metrics into one tidy table; summarize()."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from interp_lib.baselines import ComparisonResult, compare, summarize
from interp_lib.protopnet import ProtoPNet


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ).eval()  # fmt: skip


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (5,), generator=g)
    parts = torch.zeros(5, 2, 16, 16, dtype=torch.bool)
    parts[:, 0, 2:6, 2:6] = True
    parts[:, 1, 8:12, 8:12] = True
    return [(x[:3], y[:3], parts[:3]), {"image": x[3:], "label": y[3:], "part_masks": parts[3:]}]


def test_compare_table_rows_and_summary() -> None:
    torch.manual_seed(0)
    proto = ProtoPNet(
        "small_cnn", n_classes=3, n_prototypes_per_class=2, prototype_dim=4, image_size=16,
        backbone_kwargs={"widths": (4, 4), "batch_norm": False},
    ).eval()  # fmt: skip
    cnn = _cnn()
    methods = [
        "random",
        "grad_cam",
        ("integrated_gradients", {"n_steps": 4, "label": "ig4"}),
        "prototype",
    ]
    with pytest.warns(UserWarning, match="skipping 'prototype' on 'cnn'"):
        result = compare(
            {"cnn": cnn, "protopnet": proto}, _data(), methods,
            layers={"cnn": cnn[3], "protopnet": "features.conv2"}, step=32, progress=False,
        )  # fmt: skip
    assert isinstance(result, ComparisonResult)
    assert result.skipped == [("cnn", "prototype", "is not a ProtoPNet")]
    table = result.to_pandas()
    assert isinstance(table, pd.DataFrame) and len(table) == len(result.records)
    assert list(table.columns) == ["model", "method", "index", "metric", "value"]
    per = table.groupby(["model", "method"]).size()
    # 5 images x 5 metrics for each (model, method) that applies: 3 for cnn, 4 for protopnet.
    assert per.to_dict() == {
        ("cnn", "grad_cam"): 25, ("cnn", "ig4"): 25, ("cnn", "random"): 25,
        ("protopnet", "grad_cam"): 25, ("protopnet", "ig4"): 25,
        ("protopnet", "prototype"): 25, ("protopnet", "random"): 25,
    }  # fmt: skip
    assert sorted(table["index"].unique().tolist()) == [0, 1, 2, 3, 4]
    auc = table[table.metric.isin(["deletion", "insertion", "pointing_game", "energy_in_mask"])]
    assert auc.value.between(0, 1).all()
    summary = summarize(result)
    assert ("deletion", "mean") in summary.columns and ("seconds", "std") in summary.columns
    sub = table[(table.model == "cnn") & (table.method == "random") & (table.metric == "deletion")]
    assert summary.loc[("cnn", "random"), ("deletion", "mean")] == pytest.approx(sub.value.mean())
    rows = {(r["model"], r["method"], r["metric"]): r for r in result.summary()}
    for (model, method), row in summary.iterrows():
        for metric in ("deletion", "pointing_game", "seconds"):
            plain = rows[(model, method, metric)]
            assert plain["mean"] == pytest.approx(row[(metric, "mean")], nan_ok=True)
            assert plain["std"] == pytest.approx(row[(metric, "std")], nan_ok=True)


def test_one_result_type_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare returns a ComparisonResult whatever is installed; only tables need pandas."""
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    result = compare(
        _cnn(), _data(), ["random"], metrics=("deletion", "pointing_game"), step=64, progress=False
    )
    assert isinstance(result, ComparisonResult) and len(result) == 10
    assert {r["metric"] for r in result} == {"deletion", "pointing_game"}
    rows = result.summary()
    assert {(r["metric"], r["n"]) for r in rows} == {("deletion", 5), ("pointing_game", 5)}
    with pytest.raises(ModuleNotFoundError, match=r'pip install "interp_lib\[viz\]"'):
        result.to_pandas()
    with pytest.raises(ModuleNotFoundError, match="pandas"):
        summarize(result)


def test_compare_errors() -> None:
    with pytest.raises(ValueError, match="unknown method 'gradcam'"):
        compare(_cnn(), _data(), ["gradcam"], progress=False)
    with pytest.raises(ValueError, match="unknown metrics"):
        compare(_cnn(), _data(), ["random"], metrics=("auc",), progress=False)
    with pytest.raises(TypeError, match="ComparisonResult"):
        summarize([{"model": "m", "method": "random", "metric": "deletion", "value": 0.5}])
