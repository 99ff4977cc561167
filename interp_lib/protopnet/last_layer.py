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

__all__ = ["LastLayerSolution", "last_layer_objective", "optimality_residual", "solve_last_layer"]


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
) -> torch.Tensor:
    """The minimum-norm subgradient of ``F`` at ``weight``, shape (K, P).

    With ``g`` the gradient of the smooth part: ``g`` on unpenalised entries,
    ``g + l1 sign(W)`` on penalised non-zero entries, and ``sign(g) max(|g| - l1, 0)`` on
    penalised zero entries. ``W`` minimises ``F`` exactly when this is zero.
    """
    s = similarities.to(weight.dtype)
    _, g, _, _ = _smooth(weight, s, labels.long(), l2)
    m = l1_mask.to(torch.bool)
    at_zero = torch.sign(g) * (g.abs() - l1).clamp_min(0)
    off = torch.where(weight != 0, g + l1 * torch.sign(weight), at_zero)
    return torch.where(m, off, g)


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
    k, p = weight0.shape
    pen = m.reshape(-1)
    n_free, n_pen = int((~pen).sum()), int(pen.sum())
    w0 = weight0.detach().to(dev, dt).reshape(-1)
    # x = [free entries, U (penalised, >= 0), V (penalised, >= 0)]
    x0 = torch.cat([w0[~pen], w0[pen].clamp_min(0), (-w0[pen]).clamp_min(0)]).cpu().numpy()
    bounds = [(None, None)] * n_free + [(0.0, None)] * (2 * n_pen)

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
        residual = float(optimality_residual(w, s, y, m, l1=l1, l2=l2).abs().max())
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
