"""ROAD: remove and debias (Rong et al. 2022), deletion without the out-of-distribution pitfall.

Plain pixel deletion (:func:`interp_lib.baselines.deletion`) replaces pixels by a constant:
the hole's shape itself is new evidence (a class may be recognised from the outline of
what was removed) and the image leaves the training distribution, so a low deletion AUC
can reward a map for drawing an informative mask rather than for finding the evidence.
ROAD ("A Consistent and Efficient Evaluation Strategy for Attribution Methods",
Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022) removes a share of the pixels and
fills them by **noisy linear imputation**: each removed pixel becomes the weighted mean
of its 8 neighbours (weight 1/6 for the 4 direct neighbours, 1/12 for the diagonals; the
removed neighbours are unknowns too, so all removed pixels of an image are one sparse
linear system), plus Gaussian noise of standard deviation ``noise`` (0.01) that hides
the imputation's smoothness. Two orders:

- **MoRF** (most relevant first): remove the ``q`` % most salient pixels; a faithful map
  makes the score drop fast (lower is better);
- **LeRF** (least relevant first): remove the ``q`` % least salient; the score should
  stay (higher is better).

Conventions, all those of pytorch-grad-cam's ``pytorch_grad_cam/metrics/road.py`` (a copy
of the authors' ``imputations.py``), which ``tests/test_baselines_road.py`` matches:

- the same neighbour weights, border handling (a neighbour outside the image is left out
  and its weight taken off the diagonal), float64 sparse solve (``scipy.sparse.linalg.
  spsolve``) cast to the images' dtype, and noise drawn with ``randn`` in the same order
  (percentage, then image) and memory layout, so with the same seed the imputed images
  are the same;
- ``ties="threshold"`` (the default) removes, for MoRF, every pixel at or above the map's
  ``100 - q`` percentile (``numpy.percentile``, linear interpolation); tied values at the
  threshold are all removed, so a map with large flat regions (a ReLU-ed CAM that is 0 on
  half the image) may remove more than ``q`` %. ``ties="rank"`` removes exactly
  ``round(q / 100 * H * W)`` pixels, ties broken by pixel index in row-major order (as
  :func:`interp_lib.baselines.deletion`);
- LeRF removes the MoRF set of the negated map; pytorch-grad-cam ranks ``1 - map``, the
  same order except where float32 rounding of ``1 - map`` merges values closer than its
  resolution (we do not round);
- ``percentages`` is the share **removed** (Rong et al.'s x-axis). pytorch-grad-cam's
  ``ROADMostRelevantFirst(percentile=p)`` keeps the pixels below the ``p``-th percentile,
  i.e. removes ``100 - p`` %: our ``q`` is their ``100 - q``. Over the symmetric default
  ``(10, 20, ..., 90)`` the averages (``ROADMostRelevantFirstAverage`` and friends) agree
  without translation;
- the score is the softmax probability of the explained class (``score="probability"``,
  their ``ClassifierOutputSoftmaxTarget``) or its logit (``score="logit"``, their
  ``ClassifierOutputTarget``). pytorch-grad-cam returns the score *change*
  ``after - before``; :class:`~interp_lib.baselines.ROADResult` keeps the scores and the original score, and
  :attr:`~interp_lib.baselines.ROADResult.combined` equals their ``ROADCombined`` (``(LeRF - MoRF) / 2`` of the
  averages, where the original score cancels).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

from .._plumbing import evaluating, resolve_target
from .._validation import check_choice, check_images, check_int, check_real, make_generator
from ._utils import check_map, model_logits

__all__ = ["NEIGHBOUR_WEIGHTS", "ROADResult", "noisy_linear_imputation", "road"]

#: ``((row offset, column offset), weight)`` of the 8 neighbours in ROAD's imputation.
NEIGHBOUR_WEIGHTS: tuple[tuple[tuple[int, int], float], ...] = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)

ORDERS = ("morf", "lerf")
TIES = ("threshold", "rank")
SCORES = ("probability", "logit")


@dataclass
class ROADResult:
    """ROAD scores per image and removed share.

    Attributes
    ----------
    percentages : Tensor, shape (P,)
        Share of the pixels removed, in percent.
    morf : Tensor, shape (N, P), or None
        Score of the explained class after removing the most relevant pixels (lower is
        better); ``None`` if MoRF was not asked.
    lerf : Tensor, shape (N, P), or None
        Score after removing the least relevant pixels (higher is better).
    original : Tensor, shape (N,)
        Score on the unperturbed images.
    target : Tensor, shape (N,)
        The explained class.
    score : str
        ``"probability"`` or ``"logit"``.
    """

    percentages: torch.Tensor
    morf: torch.Tensor | None
    lerf: torch.Tensor | None
    original: torch.Tensor
    target: torch.Tensor
    score: str

    @property
    def morf_mean(self) -> torch.Tensor:
        """Mean MoRF score over the percentages, shape (N,) (lower is better)."""
        if self.morf is None:
            raise ValueError("MoRF was not computed; call road(..., orders=('morf', 'lerf')).")
        return self.morf.mean(1)

    @property
    def lerf_mean(self) -> torch.Tensor:
        """Mean LeRF score over the percentages, shape (N,) (higher is better)."""
        if self.lerf is None:
            raise ValueError("LeRF was not computed; call road(..., orders=('morf', 'lerf')).")
        return self.lerf.mean(1)

    @property
    def combined(self) -> torch.Tensor:
        """``(LeRF mean - MoRF mean) / 2``, shape (N,): pytorch-grad-cam's ``ROADCombined``
        (higher is better; the original score cancels). Their noise runs on from LeRF into
        MoRF where ours restarts from ``seed`` for each order, so the two agree to the
        noise's effect unless the draws are aligned (``tests/test_baselines_road.py``)."""
        return (self.lerf_mean - self.morf_mean) / 2


def _as_removed_mask(removed: Any, shape: torch.Size) -> torch.Tensor:
    if not isinstance(removed, torch.Tensor):
        raise TypeError(
            f"removed must be a boolean tensor (N, H, W), got {type(removed).__name__}."
        )
    if removed.ndim == 4 and removed.shape[1] == 1:
        removed = removed[:, 0]
    n, _, h, w = shape
    if removed.ndim != 3 or tuple(removed.shape) != (n, h, w):
        raise ValueError(
            f"removed must have shape (N, H, W) = ({n}, {h}, {w}) matching the images, got "
            f"{tuple(removed.shape)}."
        )
    return removed.bool()


def _impute_one(image: np.ndarray, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ROAD's linear system for one image ``(C, H, W)``; returns the flat indices of
    the removed pixels ``(M,)`` and their values ``(M, C)`` (float64)."""
    c, h, w = image.shape
    flat = image.reshape(c, -1).astype(np.float64)
    gone = removed.reshape(-1)
    idx = np.flatnonzero(gone)
    m = len(idx)
    if m == 0:
        return idx, np.zeros((0, c))
    if m == h * w:
        raise ValueError(
            "every pixel of an image is removed, so there is nothing to impute from (the "
            "system is singular). This happens with ties='threshold' on a constant map; "
            "use ties='rank' or a map with distinct values."
        )
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(m)
    row, col = idx // w, idx % w
    rows, cols, vals = [], [], []
    b = np.zeros((m, c))
    diag = np.ones(m)
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS:
        r2, c2 = row + dr, col + dc
        inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        diag[~inside] -= weight
        eq = np.flatnonzero(inside)
        nb = r2[inside] * w + c2[inside]
        known = ~gone[nb]
        b[eq[known]] -= weight * flat[:, nb[known]].T
        rows.append(eq[~known])
        cols.append(var[nb[~known]])
        vals.append(np.full(int((~known).sum()), weight))
    rows.append(np.arange(m))
    cols.append(np.arange(m))
    vals.append(-diag)
    a = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)
    ).tocsc()
    sol = np.asarray(spsolve(a, b)).reshape(m, c)
    return idx, sol


def noisy_linear_imputation(
    images: torch.Tensor,
    removed: torch.Tensor,
    *,
    noise: float = 0.01,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """ROAD's noisy linear imputation of the removed pixels.

    Each removed pixel is set to the weighted mean of its in-image neighbours
    (:data:`~interp_lib.baselines.remove_debias.NEIGHBOUR_WEIGHTS`), removed neighbours included as unknowns (one sparse
    system per image, solved in float64), plus ``noise`` times a standard normal draw.

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)
        Images in the model's input space.
    removed : Tensor of bool, shape (N, H, W) or (N, 1, H, W)
        Pixels to impute (the same in every channel).
    noise : float
        Standard deviation of the added Gaussian noise (0.01 as ROAD; 0 for none).
    seed : int, torch.Generator or None
        Seeds the noise (a generator is used as is and advanced: draws go image by image,
        in the memory layout of scipy's solution, as pytorch-grad-cam's ``randn_like``).

    Returns
    -------
    Tensor, shape (N, C, H, W)
        The images with the removed pixels imputed (the others unchanged), on the
        images' device and dtype.

    Raises
    ------
    ValueError
        A mask that does not match the images, or an image whose every pixel is removed.
    """
    check_images(images, "images", nonempty=True, finite=True)
    removed = _as_removed_mask(removed, images.shape)
    noise = check_real(noise, "noise", minimum=0.0)
    g = make_generator(seed)
    n, c, h, w = images.shape
    host = images.detach().cpu()
    gone = removed.cpu().numpy()
    out = host.clone().reshape(n, c, h * w)
    for i in range(n):
        idx, sol = _impute_one(host[i].numpy(), gone[i])
        if len(idx) == 0:
            continue
        # torch.tensor keeps the layout of scipy's (Fortran-ordered) solution, and
        # pytorch-grad-cam draws its noise with randn_like(res.t()), which follows that
        # layout: empty_like + normal_ on the same view draws the same numbers
        res = torch.tensor(sol, dtype=torch.float32).to(images.dtype)  # (M, C)
        vals = res.t()
        draw = torch.empty_like(vals).normal_(generator=g)
        out[i][:, torch.from_numpy(idx)] = vals + noise * draw
    return out.reshape(n, c, h, w).to(images.device)


def _removed_masks(saliency: torch.Tensor, q: float, order: str, ties: str) -> torch.Tensor:
    """Which pixels ``order`` removes at ``q`` percent: bool ``(N, H, W)``."""
    n, _, h, w = saliency.shape
    s = saliency.reshape(n, h * w)
    if order == "lerf":
        s = -s
    if ties == "rank":
        k = round(q / 100 * h * w)
        ranked = s.argsort(dim=1, descending=True, stable=True)[:, :k]
        gone = torch.zeros(n, h * w, dtype=torch.bool)
        gone.scatter_(1, ranked.cpu(), True)
        return gone.view(n, h, w)
    host = s.detach().cpu().numpy()
    gone = np.stack([row >= np.percentile(row, 100 - q) for row in host])
    return torch.from_numpy(gone).view(n, h, w)


@torch.no_grad()
def road(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any = None,
    *,
    percentages: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    orders: Sequence[str] = ORDERS,
    ties: str = "threshold",
    noise: float = 0.01,
    seed: int | None = 0,
    score: str = "probability",
    batch_size: int = 64,
) -> ROADResult:
    """ROAD: the explained class's score after removing and imputing a share of the pixels.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, K)`` (run in eval mode, its mode restored).
    inputs : Tensor, shape (N, C, H, W)
        Images in the model's input space (imputation happens there, as in ROAD).
    saliency : Tensor, shape (N, 1, H, W) or (N, H, W)
        Attribution maps at input resolution; higher means more important.
    target : int, sequence, Tensor (N,), or None
        Class whose score is tracked; ``None``: the predicted class.
    percentages : sequence of float
        Shares of the pixels removed, each in ``(0, 100)``.
    orders : sequence of {"morf", "lerf"}
        Which curves to compute.
    ties : {"threshold", "rank"}
        ``"threshold"``: remove every pixel at or above the percentile (pytorch-grad-cam);
        ``"rank"``: exactly ``round(q / 100 * H * W)`` pixels, ties by pixel index.
    noise : float
        Standard deviation of the imputation noise (ROAD's 0.01).
    seed : int or None
        Seed of the noise; each order restarts from it (``None``: a fresh random seed).
    score : {"probability", "logit"}
        What is tracked: the softmax probability or the logit of the class.
    batch_size : int
        Imputed images per forward pass.

    Returns
    -------
    ROADResult
        ``morf`` and ``lerf`` ``(N, P)``, ``original`` ``(N,)``, ``combined`` ``(N,)``.

    Raises
    ------
    ValueError
        Maps that do not match the images, NaN in a map, a percentage outside
        ``(0, 100)``, an unknown order, ties or score, or (``ties="threshold"``) a
        constant map whose threshold removes every pixel.
    """
    check_images(inputs, nonempty=True, finite=True)
    saliency = check_map(saliency, inputs.shape).detach()
    check_choice(ties, "ties", TIES)
    check_choice(score, "score", SCORES)
    batch_size = check_int(batch_size, "batch_size")
    orders = tuple(orders)
    if not orders:
        raise ValueError("orders is empty; pass ('morf',), ('lerf',) or both.")
    for o in orders:
        check_choice(o, "orders", ORDERS)
    qs = [check_real(q, "percentages", minimum=0.0) for q in percentages]
    if not qs or any(not 0 < q < 100 for q in qs):
        raise ValueError(
            f"percentages must be non-empty, each in (0, 100), got {list(percentages)}."
        )
    if model.training:
        warnings.warn(
            "the model is in training mode: ROAD runs it in eval mode and restores its mode.",
            stacklevel=3,
        )

    def scores_of(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = []
        for lo in range(0, x.shape[0], batch_size):
            logits = model_logits(model, x[lo : lo + batch_size]).float()
            if score == "probability":
                logits = logits.softmax(1)
            out.append(logits.gather(1, t[lo : lo + batch_size, None]).squeeze(1))
        return torch.cat(out)

    n = inputs.shape[0]
    with evaluating(model):
        t = resolve_target(model, inputs, target, logits=model_logits(model, inputs))
        original = scores_of(inputs, t)
        curves: dict[str, torch.Tensor | None] = {"morf": None, "lerf": None}
        for o in orders:
            g = make_generator(seed)
            imputed = torch.cat(
                [
                    noisy_linear_imputation(
                        inputs, _removed_masks(saliency, q, o, ties), noise=noise, seed=g
                    )
                    for q in qs
                ]
            )  # (P * N, C, H, W), percentage-major
            tt = t.repeat(len(qs))
            curves[o] = scores_of(imputed, tt).view(len(qs), n).t().contiguous()
    return ROADResult(
        percentages=torch.tensor(qs, dtype=torch.float64),
        morf=curves["morf"],
        lerf=curves["lerf"],
        original=original,
        target=t,
        score=score,
    )
