"""Sanity check by model-parameter randomisation (Adebayo et al. 2018).

An explanation that explains the *model* must change when the model's weights are
destroyed. :func:`interp_lib.baselines.model_randomisation` re-initialises the layers one after the other,
from the last layer down to the input ("cascading", top-down), or one at a time
("independent"), recomputes the explanation after each step and measures how similar it
still is to the explanation of the trained model:

- Spearman rank correlation of the (absolute) maps, as Adebayo et al. and Quantus' ``MPRT``;
- SSIM (Wang et al. 2004) of the maps scaled to ``[0, 1]`` by their maximum, with
  scikit-image's defaults (7 x 7 uniform window, sample covariance, ``K1 = 0.01``,
  ``K2 = 0.03``);
- Pearson correlation.

A method whose maps stay similar after the weights are randomised (an edge detector) is
not explaining the model. The similarity functions are small functions on tensors,
tested against SciPy and scikit-image; Quantus' ``MPRT`` gives the same Spearman
correlations on the same randomised models (``tests/test_baselines_quantus.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._plumbing import model_device, require, resolve_target
from .._validation import check_choice, check_images, check_int, make_generator
from ..networks import resettable_layers
from ..profile.layers import resolve_layer
from ..protopnet.model import is_protopnet
from ._utils import as_map, model_logits, warn_if_training
from .attribution import attribute

__all__ = [
    "SIMILARITIES",
    "RandomisationResult",
    "average_ranks",
    "model_randomisation",
    "pearson",
    "randomisable_layers",
    "spearman",
    "ssim",
]

#: Similarity measures of :func:`interp_lib.baselines.model_randomisation`.
SIMILARITIES = ("spearman", "ssim", "pearson")
ORDERS = ("cascading", "independent")
PROTOTYPES = "prototypes"  # ProtoPNet's prototype vectors, a parameter of the model itself


# --------------------------------------------------------------------- similarities


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks ``1..F`` of each row of ``x`` ``(N, F)``, ties given their average rank.

    The same as ``scipy.stats.rankdata(x, axis=1)`` (method ``"average"``).
    """
    n, f = x.shape
    values, order = x.sort(dim=1, stable=True)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    group = starts.long().cumsum(1) - 1  # tie group of each sorted position
    pos = torch.arange(1, f + 1, device=x.device, dtype=torch.float64).expand(n, f)
    total = torch.zeros(n, f, device=x.device, dtype=torch.float64).scatter_add_(1, group, pos)
    count = torch.zeros_like(total).scatter_add_(1, group, torch.ones_like(pos))
    ranks = torch.empty_like(total)
    ranks.scatter_(1, order, (total / count.clamp(min=1)).gather(1, group))
    return ranks


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps ``(N, ...)``, shape ``(N,)``, in float64.

    NaN when a map is constant (its correlation is undefined, as in SciPy).
    """
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    out = (a * b).sum(1) / den
    return torch.where(den > 0, out, torch.full_like(out, float("nan")))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps ``(N, ...)``, shape ``(N,)``.

    The Pearson correlation of the average ranks (``scipy.stats.spearmanr``).
    """
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    return pearson(average_ranks(a), average_ranks(b))


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean structural similarity of each pair of maps ``(N, 1, H, W)``, shape ``(N,)``.

    scikit-image's ``structural_similarity`` with its defaults (uniform ``win_size``
    window, sample covariance), averaged over the windows that fit inside the map.

    Parameters
    ----------
    a, b : Tensor, shape (N, 1, H, W) or (N, H, W)
    data_range : float
        The range of the values (1 for maps scaled to ``[0, 1]``).
    win_size : int
        Odd window side, at most ``min(H, W)``.
    """
    a, b = as_map(a, "a").double(), as_map(b, "b").double()
    if a.shape != b.shape:
        raise ValueError(
            f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    win_size = check_int(win_size, "win_size")
    if win_size % 2 == 0 or win_size > min(a.shape[-2:]):
        raise ValueError(
            f"win_size must be odd and at most the map's side {min(a.shape[-2:])}, got {win_size}."
        )
    n_px = win_size**2
    cov_norm = n_px / (n_px - 1)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, win_size, stride=1)

    ux, uy = mean(a), mean(b)
    vx = cov_norm * (mean(a * a) - ux * ux)
    vy = cov_norm * (mean(b * b) - uy * uy)
    vxy = cov_norm * (mean(a * b) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _scaled(maps: torch.Tensor, absolute: bool) -> torch.Tensor:
    """Maps in ``[0, 1]`` (absolute value, divided by the maximum) or ``[-1, 1]``."""
    maps = maps.double().abs() if absolute else maps.double()
    top = maps.abs().flatten(1).amax(1).clamp(min=torch.finfo(torch.float64).tiny)
    return maps / top.view(-1, 1, 1, 1)


_MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
    "spearman": lambda a, b, absolute: spearman(_scaled(a, absolute), _scaled(b, absolute)),
    "pearson": lambda a, b, absolute: pearson(_scaled(a, absolute), _scaled(b, absolute)),
    "ssim": lambda a, b, absolute: ssim(
        _scaled(a, absolute), _scaled(b, absolute), data_range=1.0 if absolute else 2.0
    ),
}


# -------------------------------------------------------------------- randomisation


def randomisable_layers(model: nn.Module) -> list[str]:
    """The layers that :func:`interp_lib.baselines.model_randomisation` re-initialises, top-down.

    :func:`interp_lib.networks.resettable_layers` (every submodule with a
    ``reset_parameters`` method and parameters of its own, last registered first); for a
    ProtoPNet, ``"prototypes"`` (its prototype vectors)
    comes right after its last layer. The order is Quantus' ``top_down``.
    """
    names = resettable_layers(model)
    if is_protopnet(model):
        at = names.index("last_layer") + 1 if "last_layer" in names else 0
        names.insert(at, PROTOTYPES)
    return names


def _reinitialise_default(name: str, module: nn.Module) -> None:
    if name == PROTOTYPES:
        with torch.no_grad():
            module.prototypes.uniform_()  # ProtoPNet's own initialisation: U[0, 1)
    else:
        module.reset_parameters()


@dataclass
class RandomisationResult:
    """How much an explanation changes as a model's layers are randomised.

    Attributes
    ----------
    method : str
        The explanation method.
    order : {"cascading", "independent"}
        Cascading: step ``k`` has layers ``0..k`` randomised; independent: layer ``k``
        alone.
    layers : list of str
        The randomised layers, in order (top-down).
    similarity : dict str -> Tensor (L, N)
        For each measure, the similarity of every image's map after each step with its
        map under the trained model (1 = unchanged).
    maps : Tensor, shape (L + 1, N, 1, H, W)
        The trained model's maps, then the maps after each step.
    """

    method: str
    order: str
    layers: list[str]
    similarity: dict[str, torch.Tensor]
    maps: torch.Tensor = field(repr=False)

    def mean(self, measure: str = "spearman") -> torch.Tensor:
        """Mean similarity over images after each step, shape ``(L,)`` (NaNs ignored)."""
        check_choice(measure, "measure", tuple(self.similarity))
        return self.similarity[measure].nanmean(1)

    def records(self) -> list[dict[str, Any]]:
        """Tidy rows ``method, step, layer, image, measure, value``."""
        rows = []
        for measure, values in self.similarity.items():
            for step, layer in enumerate(self.layers):
                for image, v in enumerate(values[step].tolist()):
                    rows.append(
                        {"method": self.method, "step": step, "layer": layer, "image": image,
                         "measure": measure, "value": v}
                    )  # fmt: skip
        return rows

    def to_pandas(self) -> Any:
        """:meth:`records` as a ``pandas.DataFrame`` (``pip install "interp_lib[viz]"``)."""
        pd = require("pandas", "RandomisationResult.to_pandas")
        return pd.DataFrame.from_records(self.records())


def _randomised(
    model: nn.Module,
    layers: Sequence[str],
    order: str,
    seeds: Sequence[int],
    reinitialise: Callable[[str, nn.Module], None],
) -> Iterator[nn.Module]:
    """Copies of ``model`` with one more layer (or one layer) re-initialised per step."""
    work = copy.deepcopy(model)
    device = model_device(model)
    devices = [device] if device.type == "cuda" else []
    for name, s in zip(layers, seeds, strict=True):
        if order == "independent":
            work = copy.deepcopy(model)
        module = work if name == PROTOTYPES else work.get_submodule(name)
        with torch.random.fork_rng(devices=devices):  # the caller's RNG is left alone
            torch.manual_seed(s)
            reinitialise(name, module)
        yield work


def model_randomisation(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    method: str,
    layers: Sequence[str | nn.Module] | None = None,
    order: str = "cascading",
    measures: Sequence[str] = ("spearman", "ssim"),
    absolute: bool = True,
    seed: int | torch.Generator | None = 0,
    reinitialise: Callable[[str, nn.Module], None] | None = None,
    **kwargs: Any,
) -> RandomisationResult:
    """Model-parameter randomisation test of an explanation method (Adebayo et al. 2018).

    Parameters
    ----------
    model : nn.Module
        The trained classifier, in eval mode (never modified: copies are randomised).
    inputs : Tensor, shape (N, C, H, W)
        Images.
    target : int, sequence of N ints, Tensor (N,), or None
        The class explained, the same for every randomised model; ``None``: the trained
        model's prediction.
    method : str
        One of :data:`interp_lib.baselines.METHODS`; ``kwargs`` go to
        :func:`~interp_lib.baselines.attribute` (e.g. ``layer=`` for Grad-CAM).
    layers : sequence of str or nn.Module, optional
        The layers to randomise, in this order; default :func:`interp_lib.baselines.sanity.randomisable_layers`
        (top-down: the last layer first, then the trunk down to the input).
    order : {"cascading", "independent"}
        Randomise progressively (each step adds a layer), or each layer alone.
    measures : sequence of {"spearman", "ssim", "pearson"}
        Similarities between each map and the trained model's map.
    absolute : bool
        Compare absolute maps (Adebayo et al.; Quantus' default), scaled to ``[0, 1]`` by
        their maximum; ``False`` keeps the sign (scaled to ``[-1, 1]``).
    seed : int, torch.Generator or None
        Randomness of the new weights: layer ``k`` is re-initialised under
        ``torch.manual_seed(s_k)`` with ``s_k`` drawn from this seed (the global RNG is
        restored afterwards).
    reinitialise : callable ``(name, module) -> None``, optional
        How a layer is re-initialised; default its ``reset_parameters()`` (PyTorch's
        initialisation) and, for a ProtoPNet's ``"prototypes"``, a new uniform draw.

    Returns
    -------
    RandomisationResult
        ``similarity[measure]`` of shape ``(L, N)``; ``mean(measure)`` per step.

    Raises
    ------
    ValueError
        Unknown method, measure, order or layer, or bad inputs (as :func:`interp_lib.baselines.attribute`).
    """
    check_images(inputs, nonempty=True, finite=True)
    check_choice(order, "order", ORDERS)
    measures = list(measures)
    for m in measures:
        check_choice(m, "measure", SIMILARITIES)
    if not measures:
        raise ValueError(f"measures is empty; choose from {list(SIMILARITIES)}.")
    if layers is None:
        names = randomisable_layers(model)
    else:
        names = [
            PROTOTYPES if (name == PROTOTYPES and is_protopnet(model))
            else resolve_layer(model, name, pseudo=False)
            for name in layers
        ]  # fmt: skip
    if not names:
        raise ValueError("no layer to randomise: the model has no layer with parameters.")
    warn_if_training(model)
    t = resolve_target(model, inputs, target, logits=model_logits(model, inputs))
    g = make_generator(seed)
    seeds = torch.randint(0, 2**62, (len(names),), generator=g).tolist()
    maps = [attribute(model, inputs, t, method=method, **kwargs)]
    for randomised in _randomised(
        model, names, order, seeds, reinitialise or _reinitialise_default
    ):
        maps.append(attribute(randomised, inputs, t, method=method, **kwargs))
    stacked = torch.stack(maps)
    similarity = {
        m: torch.stack([_MEASURES[m](stacked[0], later, absolute) for later in stacked[1:]])
        for m in measures
    }
    return RandomisationResult(method, order, names, similarity, stacked)
