"""The last-layer stage of ProtoPNet as the convex problem it is, solved to convergence.

After a push the trunk, add-on layers and prototypes are frozen, so the similarity of
every training image to every prototype is a fixed matrix ``S`` (N, P) and training the
last layer ``W`` (K, P) is multinomial logistic regression with an L1 penalty:

.. math::

    F(W) = \\frac1N \\sum_i \\mathrm{CE}(W s_i, y_i)
           + \\lambda_1 \\sum_{k,j} M_{kj} |W_{kj}| + \\frac{\\lambda_2}{2} \\|W\\|_F^2

with ``M`` the off-class mask (the paper's ``L1``; all ones for ``class_specific=False``).
The paper's code runs 20 epochs of Adam at lr 1e-4 on it, which on a small data set
barely moves ``W`` from its initial value. Here the problem is solved to a certified
minimum:

* **Solver**: L-BFGS-B (:func:`scipy.optimize.minimize`) on the split variables
  ``W_kj = U_kj - V_kj``, ``U, V >= 0`` for the penalised entries (then ``|W_kj| = U_kj +
  V_kj`` at the optimum and the problem is smooth with bound constraints); free entries
  stay free. Objective and gradient are computed with torch on the data's device.
* **Stopping rule**: the infinity norm of the minimum-norm subgradient of ``F``
  (:func:`optimality_residual`; zero exactly at the minimum) is at most ``tol``, checked
  on ``W`` after the solver stops; L-BFGS-B itself stops when its projected gradient is
  below ``tol / 10`` or after ``max_iter`` iterations in all, and is restarted from where
  it stopped (fresh curvature memory, at most 5 runs) while the residual is above
  ``tol``. ``converged`` in the result says whether ``tol`` was reached.
* **Why a ridge term** ``lambda_2`` (default 1e-3, about scikit-learn's default ``C = 1``
  for ~1000 images): when the similarities separate the training classes, which is
  common right after a push, ``CE + L1`` has no minimiser (own-class weights grow
  without bound); the ridge makes the minimum exist and be unique. ``l2=0`` is allowed.

Three last-layer rules
----------------------
:func:`fit_last_layer` runs one of them on the same similarity matrix ``S``:

* ``"convex"``: the minimum of ``F`` above. Nothing stops an off-class weight from
  becoming *positive* at the minimum: when prototypes of several classes share a part,
  the cross-entropy gains from letting class ``k`` also be voted for by class ``k'``'s
  prototypes, and ``lambda_1 = 1e-4`` is far too weak to stop it.
* ``"convex_nonpositive"``: the minimum of ``F`` under ``W_kj <= 0`` for every penalised
  (off-class) entry. The paper asks the last-layer stage for sparsity on the off-class
  connections (``w(k, j) ~ 0``) so that the model relies less on negative reasoning, and
  it starts them at ``-0.5``; its code never lets a positive off-class weight arise by
  design, it just runs too few steps for one to grow. A bound keeps the problem convex
  (a box constraint on the split variable ``U``, which L-BFGS-B already handles), keeps
  the paper's L1 unchanged, keeps the negative evidence that the paper's start point
  encodes, and forbids only what "a class is explained by its own prototypes" rules out:
  positive points from other classes' prototypes. (An L1 strong enough to zero all
  off-class weights would also do it, but its threshold, ``max |dCE/dW|`` at the zeroed
  solution, depends on the data, and it removes the negative evidence too.)
* ``"adam"``: the released code's stage, ``passes`` epochs of Adam (lr 1e-4, no weight
  decay) on mini-batches of CE + L1 from the current weights (``+1`` own, ``-0.5``
  off-class at the first push), here on the fixed similarities of the push images
  (:func:`adam_last_layer`).

The functions here are pure math on tensors; :func:`interp_lib.protopnet.fit` computes
``S`` (eval mode, un-augmented push images) and writes the solution into the model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Most L-BFGS-B runs of one solve (each restarts from where the previous one stopped).
_RESTARTS = 5

#: The last-layer rules of :func:`fit_last_layer`.
LAST_LAYER_RULES = ("convex", "convex_nonpositive", "adam")

__all__ = [
    "LAST_LAYER_RULES",
    "LastLayerSolution",
    "adam_last_layer",
    "fit_last_layer",
    "last_layer_objective",
    "optimality_residual",
    "solve_last_layer",
]


@dataclass(frozen=True)
class LastLayerSolution:
    """Result of :func:`solve_last_layer`.

    Attributes
    ----------
    weight : Tensor, shape (K, P)
        The minimiser (dtype and device of ``weight0``).
    ce, l1, objective : float
        Mean cross-entropy, ``sum |M * W|`` and ``F(W)`` at the solution.
    accuracy : float
        Training accuracy of ``argmax(S W^T)``.
    residual : float
        Infinity norm of the minimum-norm subgradient of ``F`` (0 at the minimum).
    iterations : int
        L-BFGS-B iterations.
    converged : bool
        ``residual <= tol``.
    """

    weight: torch.Tensor
    ce: float
    l1: float
    objective: float
    accuracy: float
    residual: float
    iterations: int
    converged: bool


def _check(similarities, labels, weight, l1_mask):
    if similarities.ndim != 2:
        raise ValueError(f"similarities must have shape (N, P), got {tuple(similarities.shape)}.")
    n, p = similarities.shape
    if n == 0:
        raise ValueError("similarities has no rows: the last layer needs at least one image.")
    if weight.ndim != 2 or weight.shape[1] != p:
        raise ValueError(f"weight must have shape (K, {p}), got {tuple(weight.shape)}.")
    k = weight.shape[0]
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"labels must be {n} integer class indices, got {tuple(labels.shape)}.")
    if bool(((labels < 0) | (labels >= k)).any()):
        raise ValueError(f"labels must lie in [0, {k}), got {labels.min()}..{labels.max()}.")
    if l1_mask.shape != weight.shape:
        raise ValueError(
            f"l1_mask must have shape {tuple(weight.shape)}, got {tuple(l1_mask.shape)}."
        )
    if not bool(torch.isfinite(similarities).all()):
        raise ValueError("similarities contain NaN or infinity.")


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover (a dependency of scikit-learn)
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _smooth(w, s, y, l2):
    """Mean CE + l2/2 |W|^2, its gradient (K, P), and the CE and accuracy."""
    logits = s @ w.t()
    ce = F.cross_entropy(logits, y)
    prob = torch.softmax(logits, dim=1)
    prob[torch.arange(len(y), device=y.device), y] -= 1
    grad = prob.t() @ s / len(y) + l2 * w
    acc = (logits.argmax(1) == y).double().mean()
    return ce + 0.5 * l2 * (w * w).sum(), grad, ce, acc


def last_layer_objective(
    weight: torch.Tensor,
    similarities: torch.Tensor,
    labels: torch.Tensor,
    l1_mask: torch.Tensor,
    *,
    l1: float = 1e-4,
    l2: float = 1e-3,
) -> torch.Tensor:
    """``F(W)``: mean CE + ``l1 * sum |M * W|`` + ``l2 / 2 * |W|^2`` (a scalar tensor).

    Shapes: ``weight`` (K, P), ``similarities`` (N, P), ``labels`` (N,), ``l1_mask`` (K, P).
    Differentiable in ``weight``.
    """
    ce = F.cross_entropy(similarities @ weight.t(), labels)
    return ce + l1 * (weight * l1_mask).abs().sum() + 0.5 * l2 * (weight * weight).sum()


def optimality_residual(
    weight: torch.Tensor,
    similarities: torch.Tensor,
    labels: torch.Tensor,
    l1_mask: torch.Tensor,
    *,
    l1: float = 1e-4,
    l2: float = 1e-3,
    nonpositive: torch.Tensor | None = None,
) -> torch.Tensor:
    """The minimum-norm subgradient of ``F`` at ``weight``, shape (K, P).

    With ``g`` the gradient of the smooth part: ``g`` on unpenalised entries,
    ``g + l1 sign(W)`` on penalised non-zero entries, and ``sign(g) max(|g| - l1, 0)`` on
    penalised zero entries. ``W`` minimises ``F`` exactly when this is zero.

    ``nonpositive`` (K, P) bool, a subset of ``l1_mask``: entries constrained to
    ``W <= 0`` (the ``"convex_nonpositive"`` rule). At such an entry equal to 0 the normal
    cone of the constraint adds ``[0, inf)``, so the residual is ``max(g - l1, 0)``; a
    positive entry (infeasible) gives ``inf``.
    """
    s = similarities.to(weight.dtype)
    _, g, _, _ = _smooth(weight, s, labels.long(), l2)
    m = l1_mask.to(torch.bool)
    at_zero = torch.sign(g) * (g.abs() - l1).clamp_min(0)
    off = torch.where(weight != 0, g + l1 * torch.sign(weight), at_zero)
    out = torch.where(m, off, g)
    if nonpositive is not None:
        c = nonpositive.to(torch.bool)
        capped = torch.where(weight == 0, (g - l1).clamp_min(0), off)
        capped = torch.where(weight > 0, torch.full_like(g, float("inf")), capped)
        out = torch.where(c, capped, out)
    return out


def solve_last_layer(
    similarities: torch.Tensor,
    labels: torch.Tensor,
    weight0: torch.Tensor,
    l1_mask: torch.Tensor,
    *,
    l1: float = 1e-4,
    l2: float = 1e-3,
    tol: float = 1e-6,
    max_iter: int = 5000,
    nonpositive: torch.Tensor | None = None,
) -> LastLayerSolution:
    """Minimise ``F(W)`` (module docstring) from ``weight0`` with L-BFGS-B.

    Parameters
    ----------
    similarities : Tensor, shape (N, P)
        Max-pooled similarity of each image to each prototype (eval mode, no
        augmentation).
    labels : Tensor, shape (N,), integer
    weight0 : Tensor, shape (K, P)
        Starting point (the current last layer). The solution has its dtype and device.
    l1_mask : Tensor, shape (K, P)
        1 where the L1 penalty applies (``1 - class_identity.T`` for the paper's
        class-specific L1; all ones for ``class_specific=False``).
    l1, l2 : float
        Weights of the L1 and ridge terms (``l1 = 1e-4`` is the paper's).
    tol : float
        Target infinity norm of the minimum-norm subgradient.
    max_iter : int
        Most L-BFGS-B iterations.
    nonpositive : Tensor, shape (K, P), optional
        ``True`` where ``W`` is constrained to ``<= 0`` (the ``"convex_nonpositive"``
        rule: ``l1_mask`` for the off-class entries); must lie inside ``l1_mask``. A
        positive start value there is clipped to 0.

    Returns
    -------
    LastLayerSolution
        ``converged`` says whether ``residual <= tol`` was reached.
    """
    from scipy.optimize import minimize

    _check(similarities, labels, weight0, l1_mask)
    if l1 < 0 or l2 < 0 or tol <= 0:
        raise ValueError(f"need l1 >= 0, l2 >= 0 and tol > 0, got {l1}, {l2}, {tol}.")
    dev = similarities.device
    dt = torch.float32 if dev.type == "mps" else torch.float64
    s = similarities.detach().to(dt)
    y = labels.detach().to(dev).long()
    m = l1_mask.detach().to(dev).bool()
    if nonpositive is None:
        c = torch.zeros_like(m)
    else:
        if nonpositive.shape != weight0.shape:
            raise ValueError(
                f"nonpositive must have shape {tuple(weight0.shape)}, got "
                f"{tuple(nonpositive.shape)}."
            )
        c = nonpositive.detach().to(dev).bool()
        if bool((c & ~m).any()):
            raise ValueError(
                "nonpositive must be a subset of l1_mask (the constraint W <= 0 is only "
                "supported on penalised entries)."
            )
    k, p = weight0.shape
    pen = m.reshape(-1)
    n_free, n_pen = int((~pen).sum()), int(pen.sum())
    w0 = weight0.detach().to(dev, dt).reshape(-1)
    # x = [free entries, U (penalised, >= 0), V (penalised, >= 0)]
    capped = c.reshape(-1)[pen].cpu()  # penalised entries with W <= 0: U fixed at 0
    u0 = torch.where(capped.to(dev), torch.zeros_like(w0[pen]), w0[pen].clamp_min(0))
    x0 = torch.cat([w0[~pen], u0, (-w0[pen]).clamp_min(0)]).cpu().numpy()
    bounds = (
        [(None, None)] * n_free
        + [(0.0, 0.0) if bool(b) else (0.0, None) for b in capped]
        + [(0.0, None)] * n_pen
    )

    def unpack(x: np.ndarray) -> torch.Tensor:
        xt = torch.from_numpy(x).to(dev, dt)
        w = torch.empty(k * p, dtype=dt, device=dev)
        w[~pen] = xt[:n_free]
        w[pen] = xt[n_free : n_free + n_pen] - xt[n_free + n_pen :]
        return w.reshape(k, p)

    def fun(x: np.ndarray):
        w = unpack(x)
        f, g, _, _ = _smooth(w, s, y, l2)
        uv = torch.from_numpy(x[n_free:]).to(dev, dt)
        g = g.reshape(-1)
        gx = torch.cat([g[~pen], g[pen] + l1, -g[pen] + l1])
        return float(f + l1 * uv.sum()), gx.cpu().numpy()

    # L-BFGS-B can stop early on a failed line search (its curvature memory is stale on
    # these ill-conditioned problems): restart it from where it stopped, fresh memory
    x, iterations = x0, 0
    for _ in range(_RESTARTS):
        options = {"maxiter": max_iter - iterations, "maxfun": 2 * max_iter, "gtol": tol / 10,
                   "ftol": 0.0, "maxcor": 20}  # fmt: skip
        with _one_blas_thread():  # L-BFGS-B's small BLAS calls only lose time to threads
            res = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
        x, iterations = res.x, iterations + int(res.nit)
        w = unpack(x)
        residual = float(optimality_residual(w, s, y, m, l1=l1, l2=l2, nonpositive=c).abs().max())
        if residual <= tol or iterations >= max_iter or res.nit == 0:
            break
    f, _, ce, acc = _smooth(w, s, y, l2)
    l1_val = (w * m).abs().sum()
    return LastLayerSolution(
        weight=w.to(weight0.dtype).to(weight0.device),
        ce=float(ce),
        l1=float(l1_val),
        objective=float(f + l1 * l1_val),
        accuracy=float(acc),
        residual=residual,
        iterations=iterations,
        converged=residual <= tol,
    )


def adam_last_layer(
    similarities: torch.Tensor,
    labels: torch.Tensor,
    weight0: torch.Tensor,
    l1_mask: torch.Tensor,
    *,
    l1: float = 1e-4,
    lr: float = 1e-4,
    passes: int = 20,
    batch_size: int = 80,
    seed: int | torch.Generator | None = 0,
) -> LastLayerSolution:
    """The released code's last-layer stage on fixed similarities: Adam on mini-batches.

    ``passes`` epochs over the rows of ``similarities`` in a random order (drawn from
    ``seed``), ``batch_size`` rows a step, each step minimising the batch's mean
    cross-entropy ``+ l1 * sum |M * W|`` (``train_and_test.py``: ``last_only`` then
    ``train``; cluster and separation costs do not depend on ``W``), Adam with ``lr``
    and no weight decay (``main.py``: ``last_layer_optimizer_lr = 1e-4``), from
    ``weight0``. No ridge term (the original has none). Shapes as in
    :func:`solve_last_layer`.

    Returns
    -------
    LastLayerSolution
        ``objective`` is ``F`` with ``l2 = 0`` on all rows; ``residual`` its minimum-norm
        subgradient (how far from the convex optimum the passes stop); ``iterations`` the
        Adam steps; ``converged`` is ``True`` (the passes ran; there is no tolerance).
    """
    from .._validation import check_int, make_generator

    _check(similarities, labels, weight0, l1_mask)
    passes = check_int(passes, "passes", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if l1 < 0 or lr <= 0:
        raise ValueError(f"need l1 >= 0 and lr > 0, got {l1}, {lr}.")
    g = make_generator(seed)
    dev = similarities.device
    s = similarities.detach().float()
    y = labels.detach().to(dev).long()
    m = l1_mask.detach().to(dev).float()
    w = weight0.detach().to(dev).float().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    n, steps = len(y), 0
    for _ in range(passes):
        order = torch.randperm(n, generator=g).to(dev)
        for start in range(0, n, batch_size):
            b = order[start : start + batch_size]
            loss = F.cross_entropy(s[b] @ w.t(), y[b]) + l1 * (w * m).abs().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    w = w.detach()
    s64, w64 = s.double(), w.double()
    f, _, ce, acc = _smooth(w64, s64, y, 0.0)
    l1_val = (w64 * m.double()).abs().sum()
    residual = float(optimality_residual(w64, s64, y, m, l1=l1, l2=0.0).abs().max())
    return LastLayerSolution(
        weight=w.to(weight0.dtype).to(weight0.device),
        ce=float(ce),
        l1=float(l1_val),
        objective=float(f + l1 * l1_val),
        accuracy=float(acc),
        residual=residual,
        iterations=steps,
        converged=True,
    )


def fit_last_layer(
    similarities: torch.Tensor,
    labels: torch.Tensor,
    weight0: torch.Tensor,
    l1_mask: torch.Tensor,
    *,
    rule: str = "convex",
    l1: float = 1e-4,
    l2: float = 1e-3,
    lr: float = 1e-4,
    passes: int = 20,
    batch_size: int = 80,
    seed: int | torch.Generator | None = 0,
    tol: float = 1e-6,
) -> LastLayerSolution:
    """The last layer by one of the rules of the module docstring (``LAST_LAYER_RULES``).

    ``"convex"``: :func:`solve_last_layer` (``l1``, ``l2``, ``tol``);
    ``"convex_nonpositive"``: the same with the off-class entries (``l1_mask``)
    constrained to ``<= 0``; ``"adam"``: :func:`adam_last_layer` (``l1``, ``lr``,
    ``passes``, ``batch_size``, ``seed``; no ridge).
    """
    from .._validation import check_choice

    check_choice(rule, "rule", LAST_LAYER_RULES)
    if rule == "adam":
        return adam_last_layer(similarities, labels, weight0, l1_mask, l1=l1, lr=lr,
                               passes=passes, batch_size=batch_size, seed=seed)  # fmt: skip
    nonpositive = l1_mask.bool() if rule == "convex_nonpositive" else None
    return solve_last_layer(similarities, labels, weight0, l1_mask, l1=l1, l2=l2, tol=tol,
                            nonpositive=nonpositive)  # fmt: skip
