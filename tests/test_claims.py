"""Claim records: verdicts follow from criteria declared before the result."""

import math

import numpy as np
import pytest
import torch

from interp_lib.claims import (
    VERDICTS,
    Claims,
    Estimate,
    all_above,
    at_least,
    at_most,
    contains,
    not_compared,
    same_sign,
    within,
)


def _judge(criterion, value, low=None, high=None):
    return criterion.judge(Estimate(value, low, high))


@pytest.mark.parametrize(
    ("paper", "low", "high", "verdict"),
    [
        (47, 1.0, 5.0, "agrees"),
        (47, -5.0, -1.0, "opposite"),
        (47, -1.0, 5.0, "inconclusive"),
        (-0.9, -0.8, -0.1, "agrees"),
        (-0.9, 0.1, 0.8, "opposite"),
        (0.94, 0.0, 0.5, "inconclusive"),  # an interval that touches 0 does not exclude it
    ],
)
def test_same_sign(paper, low, high, verdict):
    assert _judge(same_sign(paper), (low + high) / 2, low, high) == verdict


def test_same_sign_over_several_intervals_needs_all():
    c = same_sign(1)
    assert _judge(c, [2, 3], [1, 2], [3, 4]) == "agrees"
    assert _judge(c, [2, 0], [1, -1], [3, 1]) == "inconclusive"
    assert _judge(c, [2, -2], [1, -3], [3, -1]) == "opposite"


@pytest.mark.parametrize(
    ("criterion", "value", "verdict"),
    [
        (within(10, rel=0.1), 9.0, "agrees"),  # the boundary is inside
        (within(10, rel=0.1), 8.99, "differs"),
        (within(10, rel=0.1), 11.0, "agrees"),
        (within(-3.5, abs=1.0), -2.6, "agrees"),
        (within(-3.5, abs=1.0), -2.4, "differs"),
        (at_least(0.9), 0.9, "agrees"),
        (at_least(0.9), 0.89, "differs"),
        (at_most(3), 3.5, "differs"),
        (at_most(3), -10, "agrees"),
    ],
)
def test_point_criteria(criterion, value, verdict):
    assert _judge(criterion, value) == verdict


@pytest.mark.parametrize(
    ("criterion", "low", "high", "verdict"),
    [
        (at_least(-3, interval=True), -2.0, 1.0, "agrees"),
        (at_least(-3, interval=True), -3.3, -0.9, "inconclusive"),
        (at_least(-3, interval=True), -5.0, -3.1, "differs"),
        (at_most(3, interval=True), 0.0, 2.0, "agrees"),
        (at_most(3, interval=True), 2.0, 4.0, "inconclusive"),
        (at_most(3, interval=True), 3.5, 4.0, "differs"),
        (all_above(0), 0.5, 2.0, "agrees"),
        (all_above(0), -0.5, 2.0, "inconclusive"),
        (all_above(0), -2.0, -0.5, "differs"),
        (contains(0.94), 0.5, 0.97, "agrees"),
        (contains(0.94), 0.1, 0.9, "differs"),
    ],
)
def test_interval_criteria(criterion, low, high, verdict):
    assert _judge(criterion, (low + high) / 2, low, high) == verdict


def test_all_above_judges_every_layer():
    c = all_above(0, what="trained minus untrained at every layer up to the peak")
    assert _judge(c, [20, -4.5], [15, -8.5], [25, -0.5]) == "differs"
    assert _judge(c, [20, 4], [15, 1], [25, 8]) == "agrees"
    assert "every layer" in c.description


def test_not_compared():
    assert _judge(not_compared(), 3.0) == "not compared"


def test_declare_before_resolve_is_enforced():
    claims = Claims("ch", display=False)
    claims.declare("a", quantity="q", paper="p", criterion=within(1, rel=0.5))
    claims.resolve("a", 1.2)
    with pytest.raises(RuntimeError, match="declared after a result"):
        claims.declare("b", quantity="q", paper="p", criterion=within(1, rel=0.5))


def test_resolve_checks():
    claims = Claims("ch", display=False)
    claims.declare("a", quantity="q", paper="p", criterion=same_sign(1))
    claims.declare("b", quantity="q", paper="p", criterion=within(1, rel=0.5))
    with pytest.raises(KeyError, match="not declared"):
        claims.resolve("c", 1.0)
    with pytest.raises(ValueError, match="needs an interval"):
        claims.resolve("a", 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        claims.resolve("b", math.nan)
    with pytest.raises(ValueError, match="non-finite"):
        claims.resolve("a", 1.0, 0.5, math.inf)
    with pytest.raises(ValueError, match="outside its interval"):
        claims.resolve("a", 3.0, 0.5, 1.5)
    with pytest.raises(TypeError, match="real numbers"):
        claims.resolve("b", "1.0")
    claims.resolve("b", 1.2)
    with pytest.raises(ValueError, match="resolved twice"):
        claims.resolve("b", 1.2)
    with pytest.raises(ValueError, match="never resolved: a"):
        claims.html()


def test_declare_checks():
    claims = Claims("ch", display=False)
    with pytest.raises(TypeError, match="criterion"):
        claims.declare("a", quantity="q", paper="p", criterion="agrees")
    with pytest.raises(ValueError, match="identifier"):
        claims.declare("a b", quantity="q", paper="p", criterion=not_compared())
    claims.declare("a", quantity="q", paper="p", criterion=not_compared())
    with pytest.raises(ValueError, match="twice"):
        claims.declare("a", quantity="q", paper="p", criterion=not_compared())
    with pytest.raises(ValueError, match="exactly one tolerance"):
        within(1.0)
    with pytest.raises(ValueError, match="non-zero"):
        same_sign(0)


def test_table_rows_and_html():
    claims = Claims("ch", display=False)
    claims.declare("a", quantity="rise <x>", paper="+47", criterion=same_sign(47), headline=True)
    claims.declare("b", quantity="size", paper="+47", criterion=within(47, rel=0.2))
    a = claims.resolve("a", 15.3, 10.0, 20.5, fmt="+.1f", note="birds, 3 seeds")
    b = claims.resolve("b", 15.3, fmt=".1f")
    assert a.ours == "+15.3 [+10.0, +20.5] (birds, 3 seeds)"
    assert (a.verdict, b.verdict) == ("agrees", "differs")
    table = claims.to_pandas()
    assert list(table["verdict"]) == ["agrees", "differs"]
    assert list(claims.to_pandas(headline=True)["quantity"]) == ["rise <x>"]
    page = claims.html()
    assert "rise &lt;x&gt;" in page  # escaped
    assert "overflow-x:auto" in page  # wide tables scroll instead of being cut
    assert page.count("<tr>") == 3
    assert claims.html(headline=True).count("<tr>") == 2
    assert all(c.verdict in VERDICTS for c in claims)


def test_show_glues_in_a_book_build(monkeypatch):
    glued = {}
    import interp_lib.claims as mod

    monkeypatch.setattr(mod, "glue", lambda name, value, display=False: glued.update({name: value}))
    monkeypatch.setenv(mod.BOOK_BUILD_ENV, "1")
    claims = Claims("ch", display=False)
    claims.declare("a", quantity="q", paper="p", criterion=at_least(0.9), headline=True)
    claims.resolve("a", 0.95)
    claims.show()
    assert glued["a_verdict"] == "agrees"
    assert "agrees" in glued["claims"]._repr_html_()
    assert glued["claims_headline"]._repr_html_().count("<tr>") == 2


def test_estimate_accepts_arrays():
    assert Estimate(np.float64(1.5)).value == (1.5,)
    assert Estimate(torch.tensor([1.0, 2.0])).text(".1f") == "1.0; 2.0"
    with pytest.raises(ValueError, match="both ends"):
        Estimate(1.0, low=0.0)
