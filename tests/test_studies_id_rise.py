"""interp_lib.studies.id_rise, interp_lib.datasets.filters and interp_lib.zoo.id_rise_nets:
known answers (a similarity leaves every scale's ID as it is; a linear map keeps a flat
set flat; a linear map that stretches small variations raises the ID at a coarse scale)
and a tiny end-to-end run."""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from interp_lib.datasets.filters import gaussian_kernel, low_pass
from interp_lib.studies import class_profiles
from interp_lib.studies.id_rise import (
    CONTROLS,
    IdRiseStudy,
    id_rise_study,
    layer_rise,
    without_module,
)
from interp_lib.zoo.id_rise_nets import first_stage_net, id_rise_net

pytestmark = pytest.mark.usefixtures("one_thread")


def _profiles(model, images, labels, layers=("input", "conv1"), max_rank=16):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropped.*")
        return class_profiles(model.eval(), images, labels, list(layers), n_resamples=0,
                              pca=False, max_rank=max_rank)  # fmt: skip


def _one_by_one(weight: torch.Tensor, bias: bool = True) -> nn.Sequential:
    c_out, c_in = weight.shape
    conv = nn.Conv2d(c_in, c_out, 1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
    return nn.Sequential(OrderedDict(conv1=conv, relu1=nn.ReLU()))


# -- low_pass -------------------------------------------------------------------------


def test_low_pass_keeps_constants_and_kills_the_checkerboard():
    const = torch.full((2, 3, 16, 16), 0.7)
    assert torch.allclose(low_pass(const, 1.0), const, atol=1e-6)
    i = torch.arange(16)
    board = ((i[:, None] + i[None, :]) % 2).float()[None, None] * 2 - 1  # +-1, period 2
    out = low_pass(board, 1.0)
    assert out.shape == board.shape
    inner = out[..., 4:-4, 4:-4].abs().max()
    # the kernel's own response at the Nyquist frequency (its truncation adds a little
    # over the continuous exp(-pi^2 sigma^2 / 2) = 0.0072)
    k = gaussian_kernel(1.0)
    nyquist = float((k * torch.tensor([(-1.0) ** j for j in range(k.numel())])).sum()) ** 2
    assert inner == pytest.approx(abs(nyquist), abs=1e-5)
    assert abs(nyquist) < 0.02
    assert math.isclose(float(gaussian_kernel(2.0).sum()), 1.0, abs_tol=1e-6)


def test_low_pass_checks_its_arguments():
    with pytest.raises(ValueError, match="too large"):
        low_pass(torch.zeros(1, 1, 4, 4), 2.0)
    with pytest.raises(ValueError):
        low_pass(torch.zeros(1, 1, 8, 8), 0.0)
    with pytest.raises(ValueError):
        low_pass(torch.zeros(8, 8), 1.0)


# -- without_module -------------------------------------------------------------------


def test_without_module_replaces_one_module_in_a_copy():
    net = first_stage_net(3, image_size=8, seed=0).eval()
    x = torch.randn(4, 3, 8, 8)
    lin = without_module(net, "relu1")
    assert isinstance(lin.relu1, nn.Identity) and isinstance(net.relu1, nn.ReLU)
    expected = net[4:](net.pool1(net.bn1(net.conv1(x))))
    assert torch.allclose(lin(x), expected, atol=1e-6)
    nested = nn.Sequential(OrderedDict(features=net))
    assert isinstance(without_module(nested, "features.relu2").features.relu2, nn.Identity)
    with pytest.raises(ValueError, match="no submodule"):
        without_module(net, "relu9")


# -- known answers: what a linear first layer can and cannot do ----------------------


def _low_dim_images(n_per_class=60, classes=2, d=4, channels=3, side=6, seed=0):
    """Images on a ``d``-dimensional flat set: random mixtures of ``d`` fixed patterns."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(d, channels * side * side, generator=g)
    coef = torch.rand(n_per_class * classes, d, generator=g)
    images = (coef @ patterns).view(-1, channels, side, side)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return images, labels


def test_a_similarity_leaves_the_id_of_every_scale_unchanged():
    """Distances all scale by one factor: every ratio, hence every estimate, is kept."""
    images, labels = _low_dim_images(d=5)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    model = nn.Sequential(OrderedDict(conv1=_one_by_one(2.5 * q)[0]))
    prof = _profiles(model, images, labels)
    for scale in ("twonn", *prof.gride_ranks):
        rise = layer_rise(prof, "conv1", scale)
        assert rise.abs().max() < 1e-3 * prof.twonn.abs().max(), scale


def test_a_linear_layer_keeps_a_flat_set_flat():
    """A d-dimensional flat set stays d-dimensional through a random linear convolution
    (the paper's repository: random linear maps leave the ID of a low-dimensional set
    unchanged)."""
    images, labels = _low_dim_images(n_per_class=150, d=3)
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(conv1=nn.Conv2d(3, 16, 3, padding=1)))
    prof = _profiles(model, images, labels)
    assert prof.twonn[:, 0].mean().item() == pytest.approx(3, abs=0.6)
    assert prof.twonn[:, 1].mean().item() == pytest.approx(3, abs=0.6)
    assert layer_rise(prof, "conv1").abs().max() < 0.5


def test_a_linear_layer_that_stretches_small_variations_raises_the_coarse_id():
    """Large 2-d structure plus tiny 8-d noise: at a coarse scale the input looks 2-d.
    A linear layer that multiplies the noise by 100 makes it visible there: the Gride ID
    at n2 = 32 rises, with no nonlinearity at all; scaling everything by 100 does not."""
    g = torch.Generator().manual_seed(0)
    n = 300
    coords = torch.rand(n, 2, generator=g)
    noise = 0.002 * torch.randn(n, 8, generator=g)
    images = torch.cat([coords, noise], 1)[:, :, None, None]  # (N, 10, 1, 1)
    labels = torch.zeros(n, dtype=torch.long)
    stretch = torch.diag(torch.tensor([1.0, 1.0] + [100.0] * 8))
    prof = _profiles(nn.Sequential(OrderedDict(conv1=_one_by_one(stretch)[0])), images,
                     labels, max_rank=32)  # fmt: skip
    assert prof.at_rank(32)[0, 0] < 3.0  # the input, at a coarse scale: about 2
    assert layer_rise(prof, "conv1", 32).item() > 3.0
    same = _profiles(nn.Sequential(OrderedDict(conv1=_one_by_one(100 * torch.eye(10))[0])),
                     images, labels, max_rank=32)  # fmt: skip
    assert abs(layer_rise(same, "conv1", 32).item()) < 1e-2


def test_layer_rise_checks_its_layers():
    images, labels = _low_dim_images()
    model = nn.Sequential(OrderedDict(conv1=nn.Conv2d(3, 4, 1)))
    prof = _profiles(model, images, labels, max_rank=8)
    with pytest.raises(ValueError, match="not a layer"):
        layer_rise(prof, "pool1")
    with pytest.raises(ValueError, match="rank"):
        layer_rise(prof, "conv1", 64)


# -- the zoo recipe and the study, tiny -------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_LIB_CACHE", str(tmp_path / "cache"))


def test_id_rise_net_variants(cache):
    kw = dict(seed=0, n_per_class=8, n_test=4, epochs=1)
    true = id_rise_net("true", **kw)
    assert not true.from_cache and true.variant == "true"
    assert torch.equal(true.trained_labels, true.train.labels)
    again = id_rise_net("true", **kw)
    assert again.from_cache
    for a, b in zip(true.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    shuffled = id_rise_net("shuffled", **kw)
    assert sorted(shuffled.trained_labels.tolist()) == sorted(true.train.labels.tolist())
    assert not torch.equal(shuffled.trained_labels, true.train.labels)
    blurred = id_rise_net("low_pass", **kw)
    assert torch.allclose(blurred.train.images, low_pass(true.train.images, 1.0))
    # the untrained twin is first_stage_net(seed)
    twin = first_stage_net(5, image_size=32, seed=0)
    assert not torch.equal(twin.conv1.weight, true.model.conv1.weight)
    with pytest.raises(ValueError):
        id_rise_net("other", **kw)


@pytest.mark.slow  # trains two seeds of the networks
def test_id_rise_study_tiny(cache):
    study = id_rise_study(seeds=(0, 1), n_per_class=12, max_rank=4, epochs=1)
    assert isinstance(study, IdRiseStudy)
    assert study.ranks == (2, 4)
    for control in CONTROLS:
        r = study.rise(control)
        assert r.shape == (2, 5) and torch.isfinite(r).all()
    # the pairing: control minus baseline is the mean of the paired differences
    d = study.versus_baseline("untrained", 4)
    expected = (study.rise("untrained", 4) - study.rise("baseline", 4)).mean()
    assert d.mean == pytest.approx(float(expected))
    assert study.versus_baseline("baseline").mean == 0.0
    # no_pool and linear read other layers of the same trained profiles
    t = study.profiles["trained"][0]
    assert torch.allclose(study.rise("no_pool")[0], layer_rise(t, "relu1"))
    assert torch.allclose(study.rise("linear")[0], layer_rise(t, "bn1"))
    # relative: the rise divided by the input's ID
    rel = study.rise("baseline", relative=True)[0]
    assert torch.allclose(rel, layer_rise(t, "pool1") / t.twonn[:, 0].double())
    # blurred_input: the trained network, other (blurred) images, so another input ID
    b = study.profiles["blurred_input"][0]
    assert not torch.allclose(b.twonn[:, 0], t.twonn[:, 0])
    assert torch.allclose(b.twonn[:, 0], study.profiles["low_pass"][0].twonn[:, 0])
    # the settings whose controls read pool1 only are profiled at the input and pool1
    assert study.profiles["no_relu"][0].layers == ("input", "pool1")
    assert study.profiles["untrained"][0].layers == ("input", "bn1", "relu1", "pool1")
    # without relu1 the trained network's pool1 changes, its input does not
    nr = study.profiles["no_relu"][0]
    assert torch.equal(nr.twonn[:, 0], t.twonn[:, 0])
    assert not torch.allclose(nr.twonn[:, 1], t.twonn[:, 3])
    table = study.table()
    assert list(table.index) == list(CONTROLS)
    assert study.interval("baseline", over="seeds").n == 2
    assert study.curves("trained").shape == (4, 2)
    with pytest.raises(ValueError, match="control"):
        study.rise("nothing")
