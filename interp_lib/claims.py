"""Verdicts computed from a criterion declared before the result.

A chapter of the book that compares its numbers with a paper's does it through claim
records, never with a verdict written by hand. Each record holds

* what is compared (``quantity``) and the paper's number as the paper states it
  (``paper``, text);
* a **criterion** chosen before the result is known: an object that maps our estimate (a
  number, or numbers, with an optional interval) to a verdict word;
* our estimate, given later with :meth:`Claims.resolve`.

:class:`Claims` enforces the order: every claim of a chapter is declared (with its
criterion) before the first one is resolved, so a chapter cannot choose its criterion
after seeing its numbers. The verdict word and the table row are rendered here, from the
record; the prose around them may explain a verdict but never states one on its own (a
test of the book scans the chapters for verdict phrases).

The verdict words are ``VERDICTS``:

``agrees``
    the criterion holds;
``differs``
    it does not;
``opposite``
    a sign criterion whose interval excludes zero on the other side from the paper's;
``inconclusive``
    the interval is too wide to decide (it straddles the criterion's boundary);
``not compared``
    the paper publishes no number to compare with: the row is reported, not judged.

Examples
--------
>>> claims = Claims("demo", display=False)
>>> claims.declare("bias", quantity="TwoNN on a 10-d Gaussian", paper="10 (true ID)",
...                criterion=within(10.0, rel=0.1))
>>> claims.resolve("bias", 9.4, fmt=".2f").verdict  # glued in a book build, else printed
bias_verdict = agrees
'agrees'
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._plumbing import require
from .book import BOOK_BUILD_ENV, glue

__all__ = [
    "COLUMNS",
    "VERDICTS",
    "Claim",
    "Claims",
    "Criterion",
    "Estimate",
    "all_above",
    "at_least",
    "at_most",
    "contains",
    "not_compared",
    "same_sign",
    "within",
]

VERDICTS = ("agrees", "differs", "opposite", "inconclusive", "not compared")
#: The columns of a claims table.
COLUMNS = ("quantity", "paper", "ours", "criterion (declared before the result)", "verdict")


@dataclass(frozen=True)
class Estimate:
    """Our number(s) with an optional interval.

    Parameters
    ----------
    value : float or sequence of float
        The point estimate (a sequence for a claim over several layers, seeds, ...).
    low, high : float or sequence of float, optional
        The interval's ends (same length as ``value``); both or neither.
    """

    value: tuple[float, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def __init__(self, value, low=None, high=None) -> None:
        values = _floats(value, "value")
        if (low is None) != (high is None):
            raise ValueError("give both ends of the interval (low and high) or neither.")
        object.__setattr__(self, "value", values)
        object.__setattr__(self, "low", None if low is None else _floats(low, "low"))
        object.__setattr__(self, "high", None if high is None else _floats(high, "high"))
        if self.low is not None:
            if not len(self.low) == len(self.high) == len(values):
                raise ValueError(
                    f"value, low and high must have one length; got {len(values)}, "
                    f"{len(self.low)} and {len(self.high)}."
                )
            for v, lo, hi in zip(values, self.low, self.high, strict=True):
                if not lo <= hi:
                    raise ValueError(f"the interval [{lo}, {hi}] has low > high.")
                if not lo - 1e-9 * abs(lo) <= v <= hi + 1e-9 * abs(hi):
                    raise ValueError(f"the estimate {v} lies outside its interval [{lo}, {hi}].")

    @property
    def has_interval(self) -> bool:
        return self.low is not None

    def text(self, fmt: str = ".3g") -> str:
        """``v [lo, hi]`` (each number formatted with ``fmt``), ``;``-joined for several."""
        parts = []
        for i, v in enumerate(self.value):
            s = format(v, fmt)
            if self.low is not None:
                s += f" [{format(self.low[i], fmt)}, {format(self.high[i], fmt)}]"
            parts.append(s)
        return "; ".join(parts)


def _floats(x, name: str) -> tuple[float, ...]:
    if hasattr(x, "tolist"):  # numpy / torch
        x = x.tolist()
    seq = list(x) if isinstance(x, Sequence) and not isinstance(x, str) else [x]
    if not seq:
        raise ValueError(f"{name} is empty; give at least one number.")
    out = []
    for v in seq:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold real numbers; got {type(v).__name__} {v!r}.")
        if not math.isfinite(v):
            raise ValueError(
                f"{name} holds a non-finite number ({v}); a verdict needs finite numbers: "
                "check the measurement that produced it."
            )
        out.append(float(v))
    return tuple(out)


class Criterion:
    """A rule from an :class:`Estimate` to a verdict, described in words.

    Subclasses set ``description`` (shown in the table) and implement ``judge``.
    """

    description: str = ""
    needs_interval: bool = False

    def judge(self, est: Estimate) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class _SameSign(Criterion):
    needs_interval = True

    def __init__(self, sign: int) -> None:
        self.sign = sign
        word = "positive" if sign > 0 else "negative"
        self.description = f"the paper's sign ({word}), our 95 % interval excludes 0"

    def judge(self, est: Estimate) -> str:
        verdicts = []
        for lo, hi in zip(est.low, est.high, strict=True):
            if (lo > 0 and self.sign > 0) or (hi < 0 and self.sign < 0):
                verdicts.append("agrees")
            elif lo > 0 or hi < 0:
                verdicts.append("opposite")
            else:
                verdicts.append("inconclusive")
        return _combine(verdicts)


def _combine(verdicts: list[str]) -> str:
    """All of several verdicts: ``agrees`` only if every one agrees."""
    for word in ("opposite", "differs", "inconclusive"):
        if word in verdicts:
            return word
    return "agrees"


def same_sign(paper: float) -> Criterion:
    """Same sign as the paper's ``paper`` (a number or its sign) and our interval excludes 0.

    ``opposite`` when the interval excludes 0 on the other side, ``inconclusive`` when it
    contains 0. Needs an interval.
    """
    if not math.isfinite(paper) or paper == 0:
        raise ValueError(f"paper must be a finite non-zero number (its sign); got {paper}.")
    return _SameSign(1 if paper > 0 else -1)


class _Within(Criterion):
    def __init__(self, target: float, rel: float | None, abs_: float | None) -> None:
        self.target, self.rel, self.abs = target, rel, abs_
        tol = f"{100 * rel:g} %" if rel is not None else f"{abs_:g}"
        self.description = f"within {tol} of {target:g}"
        self.tol = rel * abs(target) if rel is not None else abs_

    def judge(self, est: Estimate) -> str:
        return _combine(
            ["agrees" if abs(v - self.target) <= self.tol else "differs" for v in est.value]
        )


def within(target: float, *, rel: float | None = None, abs: float | None = None) -> Criterion:
    """Our value is within ``rel`` (a fraction of ``|target|``) or ``abs`` of ``target``."""
    if (rel is None) == (abs is None):
        raise ValueError("give exactly one tolerance: rel= (a fraction) or abs=.")
    tol = rel if rel is not None else abs
    if not math.isfinite(target) or not math.isfinite(tol) or tol < 0:
        raise ValueError(
            f"target and tolerance must be finite, tolerance >= 0; got {target}, {tol}."
        )
    return _Within(float(target), rel, abs)


class _Bound(Criterion):
    def __init__(self, threshold: float, above: bool, use_interval: bool, what: str) -> None:
        self.threshold, self.above, self.use_interval = threshold, above, use_interval
        self.needs_interval = use_interval
        side = ">=" if above else "<="
        where = {"value": "our value", "interval": "our whole 95 % interval"}
        self.description = (
            f"{what or where['interval' if use_interval else 'value']} {side} {threshold:g}"
        )

    def judge(self, est: Estimate) -> str:
        t = self.threshold
        out = []
        for i, v in enumerate(est.value):
            if not self.use_interval:
                out.append("agrees" if (v >= t if self.above else v <= t) else "differs")
                continue
            lo, hi = est.low[i], est.high[i]
            if (lo >= t) if self.above else (hi <= t):
                out.append("agrees")
            elif (hi < t) if self.above else (lo > t):
                out.append("differs")
            else:
                out.append("inconclusive")
        return _combine(out)


def at_least(threshold: float, *, interval: bool = False, what: str = "") -> Criterion:
    """Our value (or, with ``interval=True``, the whole interval) is at least ``threshold``.

    With ``interval=True``: ``agrees`` if the interval lies above, ``differs`` if it lies
    below, ``inconclusive`` if it straddles ``threshold``. ``what`` names the quantity in
    the description (e.g. ``"the gap"``).
    """
    return _Bound(float(threshold), True, interval, what)


def at_most(threshold: float, *, interval: bool = False, what: str = "") -> Criterion:
    """Our value (or, with ``interval=True``, the whole interval) is at most ``threshold``."""
    return _Bound(float(threshold), False, interval, what)


def all_above(threshold: float = 0.0, *, what: str = "every interval") -> Criterion:
    """Every one of several intervals lies above ``threshold`` (e.g. trained minus untrained
    at every layer up to the peak): ``agrees`` if all do, ``differs`` if one lies wholly
    below, else ``inconclusive``."""
    c = _Bound(float(threshold), True, True, what)
    c.description = f"{what} above {threshold:g}"
    return c


class _Contains(Criterion):
    needs_interval = True

    def __init__(self, target: float) -> None:
        self.target = target
        self.description = f"our 95 % interval contains the paper's {target:g}"

    def judge(self, est: Estimate) -> str:
        return _combine(
            [
                "agrees" if lo <= self.target <= hi else "differs"
                for lo, hi in zip(est.low, est.high, strict=True)
            ]
        )


def contains(target: float) -> Criterion:
    """Our interval contains the paper's ``target``."""
    if not math.isfinite(target):
        raise ValueError(f"target must be finite; got {target}.")
    return _Contains(float(target))


class _NotCompared(Criterion):
    description = "none: no published number"

    def judge(self, est: Estimate) -> str:
        return "not compared"


def not_compared() -> Criterion:
    """The paper publishes no number: the row is reported with the verdict ``not compared``."""
    return _NotCompared()


@dataclass
class Claim:
    """One row of a chapter's "paper and us" table (see :class:`Claims`)."""

    key: str
    quantity: str
    paper: str
    criterion: Criterion
    headline: bool = False
    estimate: Estimate | None = None
    ours: str = ""
    verdict: str | None = None

    def row(self) -> dict[str, str]:
        """The table row, keyed by :data:`COLUMNS`."""
        cells = (self.quantity, self.paper, self.ours, self.criterion.description)
        return dict(zip(COLUMNS, (*cells, self.verdict or "(not measured)"), strict=True))


@dataclass
class Claims:
    """The claim records of one chapter, declared first and resolved later.

    Parameters
    ----------
    chapter : str
        The chapter's name (shown in tables, used in error messages).
    display : bool, default True
        Whether :meth:`show` displays the table (``False`` in tests and scripts).
    """

    chapter: str
    display: bool = True
    _claims: dict[str, Claim] = field(default_factory=dict, repr=False)
    _resolved_any: bool = field(default=False, repr=False)

    def declare(
        self,
        key: str,
        *,
        quantity: str,
        paper: str,
        criterion: Criterion,
        headline: bool = False,
    ) -> None:
        """Declare a claim and its criterion, before any claim of the chapter is resolved.

        Parameters
        ----------
        key : str
            A name unique in the chapter (letters, digits, ``_``); the verdict is glued
            as ``{key}_verdict``.
        quantity, paper : str
            What is compared, and the paper's number as the paper states it.
        criterion : Criterion
            From :func:`same_sign`, :func:`within`, :func:`at_least`, :func:`at_most`,
            :func:`all_above`, :func:`contains` or :func:`not_compared`.
        headline : bool, default False
            Whether the landing page's findings table shows this claim.
        """
        if self._resolved_any:
            raise RuntimeError(
                f"{self.chapter}: claim {key!r} is declared after a result was resolved; "
                "declare every claim (and its criterion) before the first result."
            )
        if not key.isidentifier():
            raise ValueError(f"a claim key must be an identifier; got {key!r}.")
        if key in self._claims:
            raise ValueError(f"{self.chapter}: claim {key!r} is declared twice.")
        if not isinstance(criterion, Criterion):
            raise TypeError(
                f"criterion must come from interp_lib.claims (same_sign, within, ...); "
                f"got {type(criterion).__name__}."
            )
        self._claims[key] = Claim(key, quantity, paper, criterion, headline)

    def resolve(
        self,
        key: str,
        value,
        low=None,
        high=None,
        *,
        fmt: str = ".3g",
        ours: str | None = None,
        note: str = "",
    ) -> Claim:
        """Give our estimate for a declared claim; the verdict follows from its criterion.

        Parameters
        ----------
        key : str
            A declared claim.
        value, low, high : float or sequence of float
            Our estimate and its interval (see :class:`Estimate`); every number must be
            finite.
        fmt : str
            Number format of the ``ours`` cell.
        ours : str, optional
            The ``ours`` cell's text instead of the formatted estimate (its numbers must
            be the estimate's; use for units or labels).
        note : str
            Appended to the ``ours`` cell (e.g. the setting: "procedural birds, 5 seeds").
        """
        if key not in self._claims:
            known = ", ".join(self._claims) or "none"
            raise KeyError(f"{self.chapter}: claim {key!r} was not declared (declared: {known}).")
        claim = self._claims[key]
        if claim.verdict is not None:
            raise ValueError(f"{self.chapter}: claim {key!r} is resolved twice.")
        est = Estimate(value, low, high)
        if claim.criterion.needs_interval and not est.has_interval:
            raise ValueError(
                f"{self.chapter}: claim {key!r} uses a criterion that needs an interval "
                f"({claim.criterion.description}); give low= and high=."
            )
        self._resolved_any = True
        claim.estimate = est
        claim.ours = (ours if ours is not None else est.text(fmt)) + (f" ({note})" if note else "")
        claim.verdict = claim.criterion.judge(est)
        assert claim.verdict in VERDICTS
        glue(f"{key}_verdict", claim.verdict, display=False)
        return claim

    def __getitem__(self, key: str) -> Claim:
        return self._claims[key]

    def __iter__(self):
        return iter(self._claims.values())

    def to_pandas(self, headline: bool = False):
        """The table, one row per claim (``headline=True``: the landing page's rows)."""
        from ._plumbing import require

        pd = require("pandas", "viz")
        self._check_resolved()
        rows = [c.row() for c in self if c.headline or not headline]
        return pd.DataFrame(rows)

    def html(self, headline: bool = False) -> str:
        """The table as HTML that wraps inside the page's column (nothing cut)."""
        self._check_resolved()
        claims = [c for c in self if c.headline or not headline]
        out = ['<div class="claims-table" style="overflow-x:auto"><table class="claims">']
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in COLUMNS))
        out.append("</tr></thead><tbody>")
        for c in claims:
            cells = c.row()
            verdict = cells["verdict"]
            tds = [f"<td>{html.escape(v)}</td>" for k, v in cells.items() if k != "verdict"]
            tds.append(
                f'<td class="verdict verdict-{verdict.replace(" ", "-")}"><b>{verdict}</b></td>'
            )
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table></div>")
        return "".join(out)

    def _check_resolved(self) -> None:
        missing = [c.key for c in self if c.verdict is None]
        if missing:
            raise ValueError(
                f"{self.chapter}: claims declared but never resolved: {', '.join(missing)}; "
                "every declared claim must get its number."
            )

    def show(self) -> None:
        """Display the chapter's table and glue it (``claims``; the headline rows as
        ``claims_headline`` for the landing page). Fails if a declared claim was never
        resolved."""
        self._check_resolved()
        table = _Html(self.html())
        if os.environ.get(BOOK_BUILD_ENV):  # in a plain kernel the displayed table suffices
            glue("claims", table, display=False)
            glue("claims_headline", _Html(self.html(headline=True)), display=False)
        if self.display:
            display = require("IPython.display", "Claims.show").display

            display(table)


class _Html:
    """An HTML fragment that Jupyter and MyST-NB display (no IPython import needed)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text
