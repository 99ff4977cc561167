"""Fuzzing the input validation of ProtoPNet's forward, push, explain and prune.

Every call either returns a well-formed result or raises a ``ValueError`` / ``TypeError``
from interp_lib's own code (never an error from deep inside torch).
"""

from __future__ import annotations

import copy
import os
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import interp_lib
from interp_lib.protopnet import ProtoPNet, explain, push
from interp_lib.protopnet.prune import prune

pytestmark = pytest.mark.fuzz

LIB = str(Path(interp_lib.__file__).parent)
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]

_BASE: dict[str, ProtoPNet] = {}


def base_model() -> ProtoPNet:
    """3 classes x 2 prototypes, a 2-stage small CNN (reduction 4), 16-px images."""
    if "m" not in _BASE:
        torch.manual_seed(0)
        _BASE["m"] = ProtoPNet(
            "small_cnn",
            n_classes=3,
            n_prototypes_per_class=2,
            prototype_dim=6,
            image_size=16,
            backbone_kwargs={"widths": (4, 8)},
        ).eval()
    return copy.deepcopy(_BASE["m"])


def assert_ours(exc: BaseException) -> None:
    """The error is a ValueError/TypeError raised in interp_lib's own code."""
    event(f"{type(exc).__name__}: {str(exc)[:40]}")
    assert isinstance(exc, ValueError | TypeError), repr(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames and frames[-1].filename.startswith(LIB), (
        f"{type(exc).__name__} raised outside interp_lib at {frames[-1].filename}: {exc}"
    )


@st.composite
def images(draw, max_n: int = 3):
    """Image batches: half of them well-formed ``(n, 3, 16, 16)`` float32, the others of
    random batch size, channels, size and dtype, or not a tensor at all."""
    n = draw(st.integers(0, max_n))
    if draw(st.booleans()):
        return torch.rand(n, 3, 16, 16)
    kind = draw(st.sampled_from(["tensor"] * 8 + ["numpy", "list", "3d", "5d"]))
    c = draw(st.sampled_from([3, 3, 3, 1, 4]))
    h = draw(st.sampled_from([16, 16, 12, 8, 5, 3, 1, 20]))
    w = draw(st.sampled_from([16, 16, 12, 8, 5, 3, 1, 20]))
    dtype = draw(st.sampled_from(DTYPES[:1] * 6 + DTYPES[1:]))
    x = (torch.rand(n, c, h, w) * 2).to(dtype)
    if kind == "numpy":
        return x.float().numpy()
    if kind == "list":
        return x.float().tolist()
    if kind == "3d":
        return x.reshape(-1, h, w)
    if kind == "5d":
        return x[None]
    return x


def check_forward_output(model, x, out) -> None:
    assert isinstance(x, torch.Tensor) and x.ndim == 4
    assert out.shape == (x.shape[0], model.n_classes)


@FUZZ
@given(x=images())
def test_forward_gives_logits_or_our_error(x):
    model = base_model()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        assert_ours(exc)
    else:
        event("result")
        check_forward_output(model, x, out)


@FUZZ
@given(
    x=images(),
    top_k=st.one_of(st.integers(1, 12), st.integers(-2, 12), st.just(2.5), st.just("3")),
    target=st.one_of(st.none(), st.integers(-1, 4), st.just([0, 1]), st.just(1.5), st.just("a")),
    percentile=st.one_of(st.floats(-10, 110), st.just(float("nan"))),
)
def test_explain_gives_sheets_or_our_error(x, top_k, target, percentile):
    model = base_model()
    try:
        sheets = explain(model, x, top_k=top_k, target=target, percentile=percentile)
    except Exception as exc:
        assert_ours(exc)
    else:
        event("result")
        n = x.shape[0] if x.ndim == 4 else 1
        assert len(sheets) == n
        assert all(1 <= len(s.evidence) <= model.n_prototypes for s in sheets)
        assert isinstance(top_k, int) and top_k >= 1


@st.composite
def labelled_batches(draw):
    """A list of ``(x, y)`` batches with fuzzed labels (dtype, range, shape)."""
    batches = []
    clean = draw(st.booleans())  # half of the loaders are well-formed
    for _ in range(draw(st.integers(0 if not clean else 1, 3))):
        x = torch.rand(draw(st.integers(1, 6)), 3, 16, 16) if clean else draw(images(max_n=4))
        n = len(x) if hasattr(x, "__len__") else 0
        label_kind = (
            "ok"
            if clean
            else draw(st.sampled_from(["ok"] * 6 + ["float", "range", "shape", "none"]))
        )
        y = torch.arange(n) % 3
        if label_kind == "float":
            y = y.float()
        elif label_kind == "range":
            y = y + draw(st.sampled_from([-5, 3, 100]))
        elif label_kind == "shape":
            y = torch.zeros(n + 1, dtype=torch.long)
        batches.append(x if label_kind == "none" else (x, y))
    return batches


@FUZZ
@given(batches=labelled_batches(), percentile=st.floats(0, 100))
def test_push_projects_or_raises_our_error(batches, percentile):
    model = base_model()
    before = model.prototypes.detach().clone()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = push(model, batches, progress=False, percentile=percentile)
    except Exception as exc:
        assert_ours(exc)
        assert torch.equal(model.prototypes, before)  # untouched on error
    else:
        event("result")
        assert result.sample_index.shape == (model.n_prototypes,)
        assert (result.distance >= 0).all()


@FUZZ
@given(
    batches=labelled_batches(),
    k=st.one_of(st.integers(1, 4), st.integers(-1, 8)),
    threshold=st.one_of(st.integers(0, 2), st.integers(-1, 8)),
)
def test_prune_prunes_or_raises_our_error(batches, k, threshold):
    model = base_model()
    before = model.n_prototypes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = prune(model, batches, k=k, threshold=threshold, progress=False)
    except Exception as exc:
        assert_ours(exc)
        assert model.n_prototypes == before
    else:
        event("result")
        assert model.n_prototypes == len(result.kept) == before - len(result.removed)


def test_numpy_and_list_inputs_fail_with_a_type_error():
    model = base_model()
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        model(np.zeros((1, 3, 16, 16), dtype=np.float32))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        explain(model, [[0.0]])


# ----------------------------------------------------------- crafted checkpoints
def _craft(path, payload) -> None:
    """Write ``payload`` as a checkpoint with a valid checksum (what an attacker can do)."""
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save(payload, buf)
    data = bytearray(buf.getvalue())
    torch.save({"format": "interp_lib.protopnet.checkpoint/2",
                "sha256": hashlib.sha256(data).hexdigest(),
                "payload": torch.frombuffer(data, dtype=torch.uint8)}, path)  # fmt: skip


TENSOR_DAMAGE = ["none", "expand", "overlap", "sparse", "dtype", "shape", "transposed", "offset"]
CONFIG_JUNK = st.one_of(
    st.none(), st.text(max_size=4), st.booleans(), st.integers(-3, 10**7),
    st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(-2, 70000), max_size=40),
    st.dictionaries(st.sampled_from(["widths", "num_classes", "x"]), st.integers(-1, 10**6), max_size=2),
)  # fmt: skip
KWARGS = st.dictionaries(
    st.sampled_from(
        [
            "widths",
            "batch_norm",
            "pool_last",
            "in_channels",
            "convs_per_stage",
            "num_classes",
            "weights",
            "growth_rate",
            "norm_layer",
        ]
    ),
    CONFIG_JUNK,
    max_size=3,
)


def _damage(t: torch.Tensor, how: str) -> torch.Tensor:
    if how == "expand":
        return torch.zeros((), dtype=t.dtype).expand(t.shape)
    if how == "overlap" and t.numel() > 1:
        return torch.zeros(sum(t.shape), dtype=t.dtype).as_strided(t.shape, [1] * t.ndim)
    if how == "sparse" and t.ndim >= 1:
        return t.to_sparse()
    if how == "dtype":
        return t.double()
    if how == "shape":
        return t.reshape(-1)[:-1] if t.numel() > 1 else t.reshape(1, -1)
    if how == "transposed" and t.ndim >= 2:  # dense, not contiguous: a valid tensor
        return t.transpose(0, 1).contiguous().transpose(0, 1)
    if how == "offset" and t.numel():  # a view inside a larger storage: valid
        return torch.cat([torch.zeros(3, dtype=t.dtype), t.reshape(-1)])[3:].view(t.shape)
    return t


@FUZZ
@given(
    key=st.integers(0, 100),
    how=st.sampled_from(TENSOR_DAMAGE),
    config_key=st.one_of(
        st.none(),
        st.sampled_from(
            [
                "backbone",
                "backbone_kwargs",
                "n_classes",
                "prototype_dim",
                "n_prototypes_per_class",
                "eps",
                "image_size",
                "backbone_weights",
                "incorrect_class_connection",
                "similarity",
                "evil",
            ]
        ),
    ),
    value=st.one_of(CONFIG_JUNK, KWARGS, st.sampled_from(["resnet18", "vgg11", "small_cnn"])),
    shared=st.one_of(st.just(0), st.just(0), st.integers(1, 80)),
)
def test_crafted_checkpoints_load_exactly_or_raise_our_error(key, how, config_key, value, shared):
    import tempfile

    from interp_lib.protopnet.checkpoint import load_checkpoint

    model = base_model()
    state = model.state_dict()
    name = sorted(state)[key % len(state)]
    state[name] = _damage(state[name], how)
    config = model.config
    if config_key is not None:
        config[config_key] = value
    payload = {"config": config, "state_dict": state}
    if shared:  # one 64 KiB storage referenced many times
        payload["extra"] = [torch.zeros(1 << 14)] * shared
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pt"
        _craft(path, payload)
        size = path.stat().st_size
        try:
            loaded = load_checkpoint(path)
        except Exception as exc:
            assert_ours(exc)
            return
    event("loaded")
    # the oracles: a load returns exactly the stored weights, as dense tensors that their
    # storage backs, within the budget of twice the file's size
    for k, v in loaded.state_dict().items():
        assert v.dtype == state[k].dtype and torch.equal(v, state[k]), k
    assert 0 not in [
        st for n, st in zip(state[name].shape, state[name].stride(), strict=True) if n > 1
    ]
    assert state[name].layout == torch.strided
    assert shared * (1 << 16) <= 2 * size
    assert config_key not in ("backbone_weights", "evil")
