"""Infidelity and sensitivity (Yeh et al. 2019) of explanation maps, through ``captum.metrics``.

- **Infidelity**: ``E_I[(I . phi - (f(x) - f(x - I)))^2]`` over random perturbations
  ``I``: how badly the map ``phi``, read as a linear model, predicts the change of the
  explained class's output when the input moves by ``I`` (lower is better).
  ``normalize=True`` (our default; captum's is ``False``) rescales the map by the
  least-squares factor ``beta`` first, Yeh et al.'s suggestion, so that maps on different
  scales (a CAM in [0, 1], integrated gradients in logit units) compare.
- **Sensitivity** (``sensitivity_max``): ``max_I ||phi(x + I) - phi(x)|| / ||phi(x)||``
  over ``n_perturb_samples`` uniform perturbations in an L-infinity ball of radius
  ``perturb_radius`` (lower is more stable).

Both call captum's own functions (captum is an optional dependency, ``pip install
"interp_lib[captum]"``), with perturbations drawn from the global torch RNG inside
``torch.random.fork_rng`` after ``torch.manual_seed(seed)``: seeded, and the caller's RNG
state is left untouched. ``tests/test_baselines_captum_metrics.py`` checks that the numbers
equal captum's call with the same perturbation function and seed.

One map per pixel ``(N, 1, H, W)`` against ``C``-channel images: the perturbation is one
value per pixel added to every channel, and the map is split evenly over the channels
(``phi / C`` in each), so that ``I . phi`` is ``sum_p I_p phi_p``, the first-order change
of a model whose pixel map sums the channel gradients. A full ``(N, C, H, W)``
attribution (``reduce`` not applied) is used as is, with independent noise per channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._plumbing import evaluating, require, resolve_target
from .._validation import check_images, check_int, check_real, check_seed
from ._utils import as_map, model_logits
from .attribution import attribute

__all__ = ["gaussian_perturbation", "infidelity", "sensitivity"]


def _captum_metrics(feature: str) -> Any:
    return require("captum.metrics", feature)


def gaussian_perturbation(
    std: float, channels_shared: bool
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Infidelity's perturbation: Gaussian noise ``I`` and the input ``x - I``.

    Parameters
    ----------
    std : float
        Standard deviation of the noise (captum's documented example: 0.003).
    channels_shared : bool
        One noise value per pixel, the same in every channel.

    Returns
    -------
    callable
        ``f(inputs (N, C, H, W)) -> (perturbation, inputs - perturbation)``, both
        ``(N, C, H, W)``, drawn from the global torch RNG.
    """

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (inputs.shape[0], 1, *inputs.shape[2:]) if channels_shared else inputs.shape
        noise = (torch.randn(shape, dtype=inputs.dtype) * std).to(inputs.device)
        noise = noise.expand_as(inputs)
        return noise, inputs - noise

    return perturb


def _attributions(saliency: Any, inputs: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The attributions captum gets ``(N, C, H, W)`` and whether the noise is shared."""
    if isinstance(saliency, torch.Tensor) and saliency.shape == inputs.shape:
        if not bool(torch.isfinite(saliency).all()):
            raise ValueError("saliency contains NaN or infinity.")
        return saliency.detach().to(inputs.dtype), inputs.shape[1] == 1
    m = as_map(saliency)
    n, c, h, w = inputs.shape
    if m.shape[0] != n or tuple(m.shape[2:]) != (h, w):
        raise ValueError(
            f"saliency has shape {tuple(m.shape)}; expected a map ({n}, 1, {h}, {w}) or "
            f"attributions {tuple(inputs.shape)} matching the images."
        )
    return (m.detach().to(inputs.dtype) / c).expand_as(inputs).contiguous(), True


def infidelity(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any = None,
    *,
    noise_std: float = 0.003,
    n_perturb_samples: int = 10,
    normalize: bool = True,
    perturb_func: Callable | None = None,
    seed: int = 0,
    max_examples_per_batch: int | None = None,
) -> torch.Tensor:
    """Infidelity of explanation maps (captum's ``infidelity``; lower is better).

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, K)``; the explained output is the logit of
        ``target`` (run in eval mode, its mode restored).
    inputs : Tensor, shape (N, C, H, W)
    saliency : Tensor, shape (N, 1, H, W), (N, H, W) or (N, C, H, W)
        The maps (split over channels, see the module docstring) or full attributions.
    target : int, sequence, Tensor (N,), or None
        ``None``: the predicted class.
    noise_std : float
        Standard deviation of the default Gaussian perturbation (:func:`~interp_lib.baselines.captum_metrics.gaussian_perturbation`).
    n_perturb_samples : int
        Perturbations per image.
    normalize : bool
        Rescale the map by the optimal ``beta`` first (Yeh et al.); captum's default is
        ``False``.
    perturb_func : callable, optional
        captum's ``perturb_func`` (``inputs -> (perturbation, perturbed inputs)``);
        replaces the Gaussian default.
    seed : int
        Seeds the perturbations (global RNG inside ``fork_rng``).
    max_examples_per_batch : int, optional
        captum's batching of the perturbed copies.

    Returns
    -------
    Tensor, shape (N,)
    """
    metrics = _captum_metrics("interp_lib.baselines.infidelity")
    check_images(inputs, nonempty=True, finite=True)
    noise_std = check_real(noise_std, "noise_std", positive=True)
    n_perturb_samples = check_int(n_perturb_samples, "n_perturb_samples")
    seed = check_seed(seed)
    attrs, shared = _attributions(saliency, inputs)
    perturb = perturb_func or gaussian_perturbation(noise_std, shared)
    with evaluating(model), torch.no_grad():
        t = resolve_target(model, inputs, target, logits=model_logits(model, inputs))
    with evaluating(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = metrics.infidelity(
            model, perturb, inputs.detach(), attrs, target=t,
            n_perturb_samples=n_perturb_samples, normalize=normalize,
            max_examples_per_batch=max_examples_per_batch,
        )  # fmt: skip
    return out.detach()


def sensitivity(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    method: str,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str | float = "fro",
    seed: int = 0,
    max_examples_per_batch: int | None = None,
    **attribute_kwargs: Any,
) -> torch.Tensor:
    """Max-sensitivity of an explanation method (captum's ``sensitivity_max``).

    The explanation is :func:`interp_lib.baselines.attribute` with ``method`` and
    ``attribute_kwargs`` (a map ``(N, 1, H, W)``); the explained class is fixed to
    ``target`` (default: the prediction on the unperturbed images) for every perturbed
    copy.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor, shape (N, C, H, W)
    target : int, sequence, Tensor (N,), or None
    method : str
        One of ``interp_lib.baselines.METHODS``.
    perturb_radius : float
        Radius of the L-infinity ball of captum's uniform perturbation (0.02).
    n_perturb_samples : int
    norm_ord : str or float
        Norm of the explanation difference (``"fro"``, captum's default).
    seed : int
        Seeds the perturbations (global RNG inside ``fork_rng``).
    max_examples_per_batch : int, optional
    **attribute_kwargs
        Passed to :func:`interp_lib.baselines.attribute` (``layer``, ``baselines``...).

    Returns
    -------
    Tensor, shape (N,)
        ``max_I ||phi(x + I) - phi(x)|| / ||phi(x)||`` (lower is more stable).
    """
    metrics = _captum_metrics("interp_lib.baselines.sensitivity")
    check_images(inputs, nonempty=True, finite=True)
    perturb_radius = check_real(perturb_radius, "perturb_radius", positive=True)
    n_perturb_samples = check_int(n_perturb_samples, "n_perturb_samples")
    seed = check_seed(seed)
    with evaluating(model), torch.no_grad():
        t = resolve_target(model, inputs, target, logits=model_logits(model, inputs))

    def explain(x: torch.Tensor | tuple, target: torch.Tensor) -> torch.Tensor | tuple:
        # captum passes its inputs as a tuple and expects a tuple back (as its own
        # attribution methods answer a tuple with a tuple)
        if isinstance(x, tuple):
            (x,) = x
            return (attribute(model, x, target, method=method, **attribute_kwargs),)
        return attribute(model, x, target, method=method, **attribute_kwargs)

    with evaluating(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = metrics.sensitivity_max(
            explain, inputs.detach(), perturb_radius=perturb_radius,
            n_perturb_samples=n_perturb_samples, norm_ord=norm_ord,
            max_examples_per_batch=max_examples_per_batch, target=t,
        )  # fmt: skip
    return out.detach()
