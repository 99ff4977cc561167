"""Input checks shared by the whole library.

Every public function that takes user data funnels it through here, so that bad input
fails early with a message that says what was expected, what was got and what to do.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

#: What array inputs accept: a numpy array, a torch tensor, or nested sequences of numbers.
ArrayLike: TypeAlias = npt.ArrayLike | torch.Tensor


def as_points(
    X: ArrayLike,
    *,
    name: str = "X",
    min_samples: int = 3,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert ``X`` to a finite floating-point tensor of shape ``(n_samples, n_features)``.

    float32 and float64 inputs keep their dtype (the neighbour search runs in the input's
    precision); integer and boolean inputs become float64; float16/bfloat16 become float32.

    Raises
    ------
    TypeError
        If ``X`` is not numeric.
    ValueError
        If ``X`` is not 2-D, has fewer than ``min_samples`` rows, no columns, or contains
        NaN or infinity.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:  # ragged sequences
            raise ValueError(
                f"{name} must be a 2-D array of shape (n_samples, n_features); could not "
                f"convert it to an array ({exc}). Pass a numpy array or a torch tensor."
            ) from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(
                f"{name} must hold real numbers, got an array of dtype {arr.dtype}. "
                "Convert it with np.asarray(X, dtype=float)."
            )
        if np.iscomplexobj(arr):
            raise TypeError(
                f"{name} must hold real numbers, got complex dtype {arr.dtype}. "
                "Pass the real and imaginary parts as separate features."
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(
            f"{name} must hold real numbers, got complex dtype {t.dtype}. "
            "Pass the real and imaginary parts as separate features."
        )
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    if t.ndim != 2:
        hint = (
            "Flatten each sample first, e.g. X.reshape(len(X), -1)."
            if t.ndim > 2
            else "Reshape a single feature with X.reshape(-1, 1)."
        )
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), got {t.ndim}-D "
            f"with shape {tuple(t.shape)}. {hint}"
        )
    n, f = t.shape
    if f == 0:
        raise ValueError(f"{name} has no features (shape {tuple(t.shape)}).")
    if n < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples, got {n}. "
            "Intrinsic-dimension estimates need several points per neighbourhood."
        )
    if device is not None:
        t = t.to(as_device(device))
    # a finite sum proves every entry finite (one pass, no copy); else check entry-wise
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise ValueError(
            f"{name} contains NaN or infinity in {bad} of its {n} rows. "
            "Remove or impute those rows first."
        )
    return t


def check_fraction(
    value: float, name: str, *, inclusive_low: bool = False, inclusive_high: bool = True
) -> float:
    """Check that ``value`` is a real number in ``(0, 1]``.

    Parameters
    ----------
    value : float
    name : str
        The argument's name, for the messages.
    inclusive_low, inclusive_high : bool
        Whether 0 and 1 are allowed: ``inclusive_low=True`` accepts ``[0, 1]`` (a share
        that may be empty), ``inclusive_high=False`` accepts ``(0, 1)`` (a confidence
        level).

    Raises
    ------
    TypeError
        If ``value`` is not a real number (``bool`` included).
    ValueError
        If it lies outside the interval; the message writes the interval.
    """
    interval = f"{'[' if inclusive_low else '('}0, 1{']' if inclusive_high else ')'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {type(value).__name__}.")
    value = float(value)
    low_ok = value >= 0.0 if inclusive_low else value > 0.0
    high_ok = value <= 1.0 if inclusive_high else value < 1.0
    if not (low_ok and high_ok):  # NaN fails both
        raise ValueError(f"{name} must lie in {interval}, got {value}.")
    return value


def check_real(
    value: float,
    name: str,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Check that ``value`` is a finite real number, ``> 0`` if ``positive``, and within
    ``[minimum, maximum]`` for the bounds given.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (``bool`` included).
    ValueError
        If it is NaN, infinite or out of its bounds; the message writes the bounds, e.g.
        ``"percentile must lie in [0, 100], got 120.0."``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    value = float(value)
    if minimum is not None and maximum is not None:
        need = f"lie in [{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        need = f"be a finite number >= {minimum:g}"
    elif maximum is not None:
        need = f"be a finite number <= {maximum:g}"
    else:
        need = "be a finite number > 0" if positive else "be a finite number"
    if (
        not math.isfinite(value)
        or (positive and value <= 0)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        if positive and (minimum is not None or maximum is not None):
            need += " and > 0"
        raise ValueError(f"{name} must {need}, got {value}.")
    return value


def check_float_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """Check that ``dtype`` is a real floating-point ``torch.dtype`` (an integer dtype
    would round continuous values)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a floating-point torch.dtype (e.g. torch.float32), got "
            f"{dtype!r}; integer dtypes would round every coordinate."
        )
    return dtype


def _valid_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def as_device(device: Any, name: str = "device") -> torch.device | None:
    """``device`` as a ``torch.device`` that exists on this machine (``None`` stays ``None``).

    Raises
    ------
    TypeError
        If ``device`` is not a str, ``torch.device`` or ``None``.
    ValueError
        If it names no device, a device this machine does not have (``"cuda"`` without
        a GPU, ``"mps"`` off a Mac), or the ``meta`` device (tensors without data); the
        message lists the valid devices.
    """
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"{name} must be a str or torch.device, got {type(device).__name__}; valid "
            f"devices here: {_valid_devices()}."
        )
    valid = _valid_devices()
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{name}={device!r} is not a device; valid devices here: {valid}."
        ) from None
    ok = dev.type == "cpu" or (
        dev.type == "cuda"
        and torch.cuda.is_available()
        and (dev.index or 0) < torch.cuda.device_count()
    )
    ok = ok or (dev.type == "mps" and "mps" in valid)
    if not ok:
        raise ValueError(
            f"{name}={str(device)!r} is not available on this machine; valid devices here: {valid}."
        )
    return dev


def check_int(value: int, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}.")
    return int(value)


def check_bool(value: bool, name: str) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def check_choice(
    value: str | None, name: str, choices: tuple[str, ...], *, allow_none: bool = False
) -> str | None:
    """Check that ``value`` is one of ``choices`` (or ``None`` with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        also = " or None" if allow_none else ""
        raise ValueError(f"{name} must be one of {list(choices)}{also}, got {value!r}.")
    return value


def check_module(model: object, name: str = "model") -> torch.nn.Module:
    """Raise ``TypeError`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{name} must be a torch.nn.Module, got {type(model).__name__}. "
            "Pass the network itself (e.g. torchvision.models.resnet18()), not its "
            "state_dict or a function that builds it."
        )
    return model


def check_images(
    inputs: Any, name: str = "inputs", *, nonempty: bool = False, finite: bool = False
) -> torch.Tensor:
    """Check that ``inputs`` is a floating tensor of shape ``(N, C, H, W)``.

    Parameters
    ----------
    inputs : Tensor, shape (N, C, H, W)
    name : str
        The argument's name, for the messages.
    nonempty : bool, default False
        Also require ``N, C, H, W >= 1``.
    finite : bool, default False
        Also refuse NaN and infinity (reads every value: one host sync on a GPU).

    Raises
    ------
    TypeError
        Not a tensor, or not floating point.
    ValueError
        Not 4-D; with the options, an empty batch or image, or NaN/infinity in an image.
    """
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, C, H, W), got "
            f"{type(inputs).__name__}. Convert it with torch.as_tensor(...)."
        )
    if inputs.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, C, H, W), got {inputs.ndim}-D shape "
            f"{tuple(inputs.shape)}. Add a batch axis with x.unsqueeze(0) for one image."
        )
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {inputs.dtype}.")
    if nonempty and 0 in inputs.shape:
        raise ValueError(
            f"{name} is empty (shape {tuple(inputs.shape)}); pass at least one image with "
            "at least one channel and one pixel."
        )
    if finite and not bool(torch.isfinite(inputs).all()):
        bad = int((~torch.isfinite(inputs)).flatten(1).any(1).sum())
        raise ValueError(
            f"{name} contains NaN or infinity in {bad} of its {inputs.shape[0]} images; "
            "results on such inputs are meaningless. Clean or drop those images first."
        )
    return inputs


def check_tensor_ndim(value: Any, name: str, shape: str) -> torch.Tensor:
    """``value`` if it is a tensor with as many axes as ``shape`` names, else ``ValueError``.

    ``shape`` is written as in the message, e.g. ``"(N, C, H, W)"`` or ``"(C, H, W)"``.
    """
    ndim = len(shape.strip("()").split(","))
    if not isinstance(value, torch.Tensor) or value.ndim != ndim:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of shape {shape}, got {got}.")
    return value


def as_tensor(value: Any, name: str, expected: str) -> torch.Tensor:
    """``value`` as a tensor: a tensor is returned as is, an array-like goes through numpy.

    Parameters
    ----------
    value : Tensor or array-like
    name : str
        The argument's name, for the message.
    expected : str
        What the argument should be, e.g. ``"a tensor of shape (N, 1, H, W)"``.

    Raises
    ------
    TypeError
        ``"{name} must be {expected}, got {type}."`` when ``value`` cannot become a tensor.
    """
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.") from exc


def as_real_tensor(value: Any, name: str, *, must: str, ragged: str) -> torch.Tensor:
    """``value`` as a detached tensor of real numbers (a tensor as is, else via numpy).

    Parameters
    ----------
    value : Tensor or array-like
    name : str
        The argument's name, for the messages.
    must : str
        The type requirement, completing "``{name} {must}, got dtype ...``", e.g.
        ``"must be integers"``.
    ragged : str
        What a convertible value looks like, completing "``{name} must be {ragged}``",
        e.g. ``"a 1-D sequence of integers"``.

    Raises
    ------
    ValueError
        If ``value`` cannot become an array (ragged sequences).
    TypeError
        If it holds booleans, complex or non-numeric values.
    """
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be {ragged} ({exc}).") from exc
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"{name} {must}, got an array of dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} {must}, got dtype {t.dtype}.")
    return t


def check_labels(
    y: Any, n_classes: int, *, n_images: int | None = None, name: str = "labels"
) -> torch.Tensor:
    """Check class labels and return them as a long tensor ``(B,)`` on their device.

    Parameters
    ----------
    y : Tensor or array-like, shape (B,)
        Integer class indices.
    n_classes : int
        Valid labels are ``0 .. n_classes - 1`` (the model's classes).
    n_images : int, optional
        Number of images in the batch; ``y`` must have one label per image.

    Raises
    ------
    ValueError
        If ``y`` is not 1-D integer with one label per image, or a label is out of range
        (this reads the labels' minimum and maximum: one host sync on a GPU).
    """
    y = torch.as_tensor(y)
    if (
        y.ndim != 1
        or (n_images is not None and y.shape[0] != n_images)
        or y.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    ):
        per = f" for {n_images} images" if n_images is not None else ""
        raise ValueError(
            f"{name} must be a 1-D integer tensor with one label per image, got shape "
            f"{tuple(y.shape)} and dtype {y.dtype}{per}."
        )
    if y.numel():
        lo, hi = torch.aminmax(y)
        lo, hi = int(lo), int(hi)
        if lo < 0 or hi >= n_classes:
            raise ValueError(
                f"{name} must lie in [0, {n_classes}) (the model's classes), got labels "
                f"from {lo} to {hi}. Do the loader's classes match the model's?"
            )
    return y.long()


def check_split_labels(labels: Any) -> torch.Tensor:
    """Class labels of a data set to split: a non-empty 1-D int64 CPU tensor; whole-number
    floats are accepted (a label column read from a table)."""
    t = as_real_tensor(
        labels, "labels", must="must be integers", ragged="a 1-D sequence of integers"
    ).cpu()
    if t.ndim != 1:
        raise ValueError(
            f"labels must be 1-D with one class per sample, got shape {tuple(t.shape)}."
        )
    if t.numel() == 0:
        raise ValueError("labels is empty: there are no samples to split.")
    if t.is_floating_point() and not bool((torch.isfinite(t) & (t == t.round())).all()):
        raise ValueError(
            "labels must be whole numbers (class indices); got non-integer or non-finite "
            "values. Map the classes to integers first."
        )
    return t.long()


def check_split_fractions(fractions: Any) -> list[float]:
    """Shares of a split: at least two positive, finite numbers summing to 1 (within
    1e-6), as a list of floats."""
    if isinstance(fractions, torch.Tensor | np.ndarray) and fractions.ndim == 1:
        fractions = fractions.tolist()
    if isinstance(fractions, str | bytes) or not isinstance(fractions, Sequence):
        raise TypeError(
            f"fractions must be a sequence of floats such as (0.8, 0.2), got "
            f"{type(fractions).__name__}."
        )
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, numbers.Real):
            raise TypeError(f"fractions must hold real numbers, got {list(fractions)!r}.")
    fr = [float(f) for f in fractions]
    if (
        len(fr) < 2
        or any(not (0 < f <= 1) or not math.isfinite(f) for f in fr)
        or abs(sum(fr) - 1.0) > 1e-6
    ):
        raise ValueError(
            f"fractions must hold at least two positive numbers summing to 1, got {fr}."
        )
    return fr


def check_seed(seed: Any, name: str = "seed") -> int:
    """Check that ``seed`` is an integer seed in ``[-2**63, 2**64)`` (what
    ``torch.manual_seed`` takes) and return it as an ``int``.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer: a float such as ``1.5`` (which ``int()`` would
        silently truncate to another seed's run), a ``bool``, a string.
    ValueError
        If it lies outside ``[-2**63, 2**64)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer, got {type(seed).__name__} {seed!r}; pass a whole "
            "number such as 0 (a float is not rounded for you: 1.5 is not seed 1)."
        )
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"{name} must lie in [-2**63, 2**64), got {seed}.")
    return int(seed)


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU ``torch.Generator`` from a seed (``None`` draws a fresh random seed)."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(
            f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}."
        )
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(check_seed(seed))
    return g


def check_neighbors(neighbors: Any, n_points: int, k: int, needed_by: str) -> torch.Tensor:
    """Check a precomputed neighbours object; the first ``k`` columns of its distances.

    Parameters
    ----------
    neighbors : interp_lib.id.Neighbors
        From :func:`interp_lib.id.nearest_neighbors`: ``distances`` and ``indices`` (N, k').
    n_points : int
        ``N``, the number of points the estimator was given.
    k : int
        Neighbours per point the estimator reads.
    needed_by : str
        The estimator's name, for the message.

    Returns
    -------
    torch.Tensor, shape (N, k), float64, on the device of ``neighbors``

    Raises
    ------
    TypeError
        Not a neighbours object.
    ValueError
        Neighbours of another number of points, or fewer than ``k`` per point.
    """
    dist = getattr(neighbors, "distances", None)
    if not isinstance(dist, torch.Tensor) or not isinstance(
        getattr(neighbors, "indices", None), torch.Tensor
    ):
        raise TypeError(
            "neighbors must be the interp_lib.id.Neighbors of nearest_neighbors(X, k), got "
            f"{type(neighbors).__name__}."
        )
    if dist.ndim != 2 or dist.shape[0] != n_points:
        raise ValueError(
            f"neighbors holds the lists of {dist.shape[0] if dist.ndim else 0} points, but "
            f"{needed_by} was given {n_points}; compute them on the same points, "
            "nearest_neighbors(X, k)."
        )
    if dist.shape[1] < k:
        raise ValueError(
            f"{needed_by} needs {k} neighbours per point, but neighbors holds {dist.shape[1]}; "
            f"compute them with nearest_neighbors(X, k={k}) (or more)."
        )
    return dist[:, :k]
