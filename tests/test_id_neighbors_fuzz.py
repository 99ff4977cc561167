"""Fuzzing ``nearest_neighbors``' input validation (issue 10).

Random shapes, dtypes, NaN/inf, empty and one-row inputs, duplicates, random options and
precomputed matrices: the result is either correct (checked against a float64 brute
force) or a ValueError/TypeError raised from interp_lib's own frames, never an error
from inside torch or numpy.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from interp_lib.id import nearest_neighbors

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int8, np.bool_, np.complex64]


def raised_in_interp_lib(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "interp_lib" in tb.tb_frame.f_code.co_filename


def brute(X: torch.Tensor, k: int):
    X = X.to(torch.float64)
    D = torch.cdist(X, X, compute_mode="donot_use_mm_for_euclid_dist")
    D.fill_diagonal_(float("inf"))
    return torch.sort(D, dim=1, stable=True)[0][:, :k], D


@st.composite
def inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.sampled_from([2, 2, 2, 1, 3, 0]))
    shape = tuple(draw(st.integers(0, 12)) for _ in range(ndim))
    if np.issubdtype(dtype, np.floating):
        width, top = (16, 6e4) if dtype is np.float16 else (32, 1e6)
        elements = st.floats(-top, top, width=width)
    else:
        elements = None
    X = draw(arrays(dtype, shape, elements=elements))
    if X.size and np.issubdtype(dtype, np.floating) and draw(st.booleans()):
        X.flat[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if ndim == 2 and X.shape[0] > 2 and draw(st.booleans()):
        X[1] = X[0]  # a duplicate row
    as_tensor = draw(st.booleans()) and dtype is not np.bool_
    kwargs = {}
    if draw(st.booleans()):
        kwargs["k"] = draw(st.one_of(st.integers(-2, 14), st.just(1.5), st.just("2")))
    if draw(st.booleans()):
        kwargs["chunk_size"] = draw(st.one_of(st.integers(-3, 20), st.just(2.0), st.just(None)))
    if draw(st.booleans()):
        kwargs["margin"] = draw(st.one_of(st.integers(-2, 4), st.just(0.5)))
    if draw(st.booleans()):
        kwargs["metric"] = draw(st.sampled_from(["euclidean", "precomputed", "cosine", None]))
    if draw(st.booleans()):  # device strings (issue 21, item 13): cpu, or one clear error
        kwargs["device"] = draw(st.sampled_from(
            ["cpu", torch.device("cpu"), None, "meta", "nonsense", "cuda:99", "mps", "", 3, 1.5]
        ))  # fmt: skip
    return (torch.from_numpy(X) if as_tensor else X), kwargs


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_nearest_neighbors_fuzz(case):
    X, kwargs = case
    try:
        d, i = nearest_neighbors(X, **kwargs)
    except (ValueError, TypeError) as exc:
        assert raised_in_interp_lib(exc), f"{type(exc).__name__} from outside: {exc}"
        return
    k = kwargs.get("k", 2)
    T = torch.as_tensor(np.asarray(X)).to(torch.float64)
    assert d.shape == i.shape == (T.shape[0], k)
    assert not bool((i == torch.arange(T.shape[0])[:, None]).any())
    if kwargs.get("metric") == "precomputed":
        Dm = T.clone()
        Dm.fill_diagonal_(float("inf"))
    else:
        _, Dm = brute(T, k)
    bd = torch.sort(Dm, dim=1, stable=True)[0][:, :k]
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Dm.gather(1, i), d, rtol=1e-12, atol=1e-12)


@st.composite
def precomputed(draw):
    n = draw(st.integers(2, 10))
    X = draw(arrays(np.float64, (n, 3), elements=st.floats(-10, 10, width=32)))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    damage = draw(st.sampled_from(["none", "asym", "diag", "neg", "nan", "rect"]))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    if damage == "asym" and i != j:
        D[i, j] += 1.0
    elif damage == "diag":
        D[i, i] = 1.0 + D.max()
    elif damage == "neg" and i != j:
        D[i, j] = D[j, i] = -1.0
    elif damage == "nan":
        D[i, j] = np.nan
    elif damage == "rect":
        D = D[:, :-1]
    return D


@pytest.mark.fuzz
@settings(max_examples=150, deadline=None)
@given(precomputed())
def test_precomputed_fuzz(D):
    try:
        d, i = nearest_neighbors(D, k=1, metric="precomputed")
    except (ValueError, TypeError) as exc:
        assert raised_in_interp_lib(exc), f"{type(exc).__name__} from outside: {exc}"
        return
    T = torch.from_numpy(D).clone()
    # accepted: a valid distance matrix, and the neighbour is a nearest one
    assert torch.allclose(T, T.T) and bool((T >= 0).all()) and bool((T.diagonal() == 0).all())
    T.fill_diagonal_(float("inf"))
    torch.testing.assert_close(d[:, 0], T.min(1).values, rtol=0, atol=0)
    assert torch.equal(T.gather(1, i), d)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_row(n):
    with pytest.raises(ValueError, match="at least 2 samples") as info:
        nearest_neighbors(np.zeros((n, 3)), k=1)
    assert "interp_lib" in info.traceback[-1].path.as_posix()
