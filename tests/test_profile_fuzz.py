"""Fuzzing the input validation of list_layers, capture, collect_activations, layer_ids.

Every call either works or raises ``ValueError``/``TypeError`` from interp_lib's own
frames (never an error from deep inside torch, never a silent wrong result).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from interp_lib.profile import capture, collect_activations, layer_ids, list_layers

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))


NET = net()
GOOD = torch.randn(12, 2, 4, 4, generator=torch.Generator().manual_seed(0))


def raised_by_us(info: pytest.ExceptionInfo) -> bool:
    """The exception was raised in interp_lib's code (not in torch, numpy, ...)."""
    return "interp_lib" in info.traceback[-1].path.parts


def attempt(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or the TypeError/ValueError it raised from interp_lib's code
    (any other error, or one raised elsewhere, fails the test); records the outcome as a
    hypothesis event."""
    try:
        out = fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        info = pytest.ExceptionInfo.from_exc_info((type(exc), exc, exc.__traceback__))
        assert raised_by_us(info), info.traceback[-1]
        event(f"{type(exc).__name__}: {str(exc)[:50]}")
        return exc
    event("ok")
    return out


names = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "input", "output", "", "4", "0.weight", "Input"]),
    st.text(max_size=8),
)
layer_specs = st.one_of(
    names,
    st.lists(names, max_size=4),
    st.dictionaries(names, st.one_of(names, st.integers()), max_size=3),
    st.integers(),
    st.none(),
    st.just(NET[0]),
    st.just(nn.Linear(2, 2)),
    st.lists(st.one_of(names, st.just(NET[3])), max_size=3),
)


@FUZZ
@given(
    types=st.one_of(
        st.none(), st.sampled_from([nn.Conv2d, (nn.Linear, nn.ReLU), (), "Linear", 3, (int, "x")])
    )
)
def test_list_layers(types):
    out = attempt(list_layers, NET, types=types)
    if isinstance(out, Exception):
        return
    known = [n for n, _ in NET.named_modules() if n]
    assert set(out) <= set(known)


@FUZZ
@given(layers=layer_specs)
def test_capture(layers):
    try:
        with torch.no_grad(), capture(NET, layers) as acts:
            out = NET(GOOD)
    except (TypeError, ValueError) as exc:
        info = pytest.ExceptionInfo.from_exc_info((type(exc), exc, exc.__traceback__))
        assert raised_by_us(info), info.traceback[-1]
        event(f"{type(exc).__name__}: {str(exc)[:50]}")
        return
    finally:
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in NET.modules())
    event("ok")
    for alias, value in acts.items():
        assert isinstance(alias, str) and value.shape[0] == len(GOOD)
    if "output" in acts:
        torch.testing.assert_close(acts["output"], out)


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` about 6 times in 7, so that whole calls succeed often enough."""
    return st.one_of(*([valid] * 6), invalid)


shapes = mostly(
    st.tuples(st.integers(1, 14), st.just(2), st.just(4), st.just(4)),
    st.tuples(st.integers(0, 5), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)).map(
        lambda s: s[: 1 + len(s) % 4] if s[0] % 2 else s
    ),
)
dtypes = mostly(
    st.just(torch.float32), st.sampled_from([torch.float64, torch.int64, torch.uint8, torch.bool])
)


def make_data(kind: str, shape: tuple, dtype: torch.dtype):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))).to(dtype)
    if kind == "tensor":
        return x
    if kind == "numpy":
        return x.numpy()
    if kind == "list":
        return [x, x]
    if kind == "dicts":
        return [{"image": x}]
    if kind == "junk":
        return [object()]
    return "not data"


@FUZZ
@given(
    kind=mostly(
        st.sampled_from(["tensor", "numpy", "list", "dicts"]), st.sampled_from(["junk", "str"])
    ),
    shape=shapes,
    dtype=dtypes,
    layers=mostly(st.sampled_from([None, ["input", "0"], {"3": "logits"}, NET[1]]), layer_specs),
    n_samples=mostly(st.one_of(st.none(), st.integers(1, 6)), st.integers(-2, 30)),
    batch_size=mostly(st.integers(1, 5), st.one_of(st.integers(-1, 0), st.floats(0.5, 2.0))),
    max_bytes=mostly(st.one_of(st.none(), st.integers(1000, 5000)), st.integers(-1, 999)),
    reduce=mostly(st.sampled_from(["flatten", "spatial_mean"]), st.just("mean")),
)
def test_collect_activations(kind, shape, dtype, layers, n_samples, batch_size, max_bytes, reduce):
    data = make_data(kind, shape, dtype)
    acts = attempt(
        collect_activations,
        NET,
        data,
        layers,
        n_samples,
        batch_size=batch_size,
        max_bytes=max_bytes,
        reduce=reduce,
        progress=False,
    )
    if isinstance(acts, Exception):
        return
    # success: every layer has one row per sample, all finite
    rows = {v.shape[0] for v in acts.values()}
    assert len(rows) == 1
    assert all(bool(torch.isfinite(v).all()) for v in acts.values())


@FUZZ
@given(
    n=mostly(st.integers(8, 40), st.integers(0, 7)),
    d=st.integers(1, 5),
    estimator=mostly(st.sampled_from(["twonn", "mle", "pca"]), st.sampled_from(["gauss", 3])),
    n_resamples=mostly(st.integers(0, 3), st.one_of(st.integers(-2, -1), st.floats(0, 2))),
    subsample=mostly(
        st.floats(0.3, 1.0), st.one_of(st.floats(-0.5, 0.0), st.just(float("nan")), st.just(2))
    ),
    seed=mostly(
        st.one_of(st.integers(0, 3), st.none(), st.just(torch.Generator())),
        st.one_of(st.integers(-2, -1), st.just("x"), st.just(1.5)),
    ),
    duplicates=mostly(st.just(False), st.just(True)),
)
def test_layer_ids(n, d, estimator, n_resamples, subsample, seed, duplicates):
    model = nn.Sequential(nn.Linear(d, 3))
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n))
    if duplicates and n:
        x[:] = x[0].clone()
    prof = attempt(
        layer_ids,
        model,
        x,
        estimator=estimator,
        n_resamples=n_resamples,
        subsample=subsample,
        seed=seed,
        progress=False,
    )
    if isinstance(prof, Exception):
        return
    assert len(prof) == 2 and all(np.isfinite(prof.dimensions))
    assert prof.n_samples == n


@FUZZ
@given(
    n=st.integers(1, 14),
    kind=st.sampled_from(["tensor", "numpy", "list", "dicts"]),
    batch_size=st.integers(1, 6),
    n_samples=st.one_of(st.none(), st.integers(1, 14)),
    budget=st.one_of(st.none(), st.integers(48 * 4 * 14, 4000)),
    layers=st.sampled_from([["input", "0", "1", "3"], {"3": "logits", "0": "conv"}, NET[1]]),
)
def test_valid_calls_give_the_plain_forward_values(n, kind, batch_size, n_samples, budget, layers):
    x = GOOD[:n] if n <= len(GOOD) else GOOD
    data = {"tensor": x, "numpy": x.numpy(), "list": list(x.split(5)), "dicts": [{"image": x}]}
    if kind in ("list", "dicts") and n_samples is None:
        n_samples = len(x)  # size unknown for a plain iterable
    if n_samples is not None and n_samples > len(x):
        with pytest.raises(ValueError, match="holds only"):
            collect_activations(NET, data[kind], layers, n_samples, progress=False)
        return
    acts = collect_activations(
        NET, data[kind], layers, n_samples, batch_size=batch_size, max_bytes=budget, progress=False
    )
    m = len(x) if n_samples is None else n_samples
    with torch.no_grad(), capture(NET, layers) as ref:
        NET(x[:m])
    assert set(acts) == set(ref)
    for alias, value in acts.items():
        torch.testing.assert_close(value, ref[alias].flatten(1))
