"""Every method's maps are those of the code before the registry refactor.

``tests/data/baselines_maps.pt`` was written by ``tests/data/make_baselines_maps.py`` with
the ``attribute`` of commit 2683d6c (an 81-line if/elif chain); the same cases through
today's registry must give the same maps (float64 models: identical up to summation order,
1e-12). One deliberate change: ``cam`` on a layer followed by an in-place ReLU now reads
the layer's own output (see ``test_cam_reads_the_layer_output_not_the_inplace_relu``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.slow  # every method on a float64 model: ~10-20 s on 2 cores


def _maker():
    spec = importlib.util.spec_from_file_location("make_maps", DATA / "make_baselines_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden_and_now():
    mk = _maker()
    golden = torch.load(DATA / "baselines_maps.pt", weights_only=True)
    net = mk.cnn().double().eval()
    net.load_state_dict(golden["cnn"])
    proto = mk.protopnet().double().eval()
    proto.load_state_dict(golden["protopnet"])
    return golden, mk.compute(net, proto, golden["x"], golden["target"])


#: The one case whose numbers changed on purpose (CAM of conv "3", which an in-place
#: ReLU overwrote after the old hook had kept a reference instead of a copy): compared by
#: ``test_cam_reads_the_layer_output_not_the_inplace_relu`` with what it should be now
#: (and its golden map with what it was), not by the identity test.
CHANGED = {"cam"}


def test_every_case_is_covered(golden_and_now) -> None:
    golden, now = golden_and_now
    assert now.keys() == golden["maps"].keys()
    from interp_lib.baselines import METHODS

    assert set(METHODS) <= set(now)


@pytest.mark.parametrize("case", sorted(set(_maker().LABELS) - CHANGED))
def test_maps_identical_to_before_the_refactor(golden_and_now, case: str) -> None:
    golden, now = golden_and_now
    torch.testing.assert_close(now[case], golden["maps"][case], rtol=0, atol=1e-12)


def test_the_changed_cases_are_cases_and_checked_below() -> None:
    """The cases left out above exist and are the ones the next test compares (not skipped)."""
    assert set(_maker().LABELS) >= CHANGED == {"cam"}


def test_cam_reads_the_layer_output_not_the_inplace_relu(golden_and_now) -> None:
    """CAM of the conv ``"3"`` is the same with in-place and plain ReLUs (it was not)."""
    from interp_lib.baselines import cam

    golden, now = golden_and_now
    mk = _maker()
    plain = mk.cnn().double().eval()
    plain.load_state_dict(golden["cnn"])
    for m in plain.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    x, t = golden["x"], golden["target"]
    torch.testing.assert_close(now["cam"], cam(plain, x, t, layer="3"), rtol=0, atol=1e-12)
    # The old map was the CAM of the ReLU's output (layer "4"), which it silently read.
    torch.testing.assert_close(golden["maps"]["cam"], cam(plain, x, t, layer="4"))
