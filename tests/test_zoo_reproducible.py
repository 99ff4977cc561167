"""A zoo entry is the same whatever only displays, refuses seeds it would silently change,
and reads its cached payload through a hook that retrains what it cannot read (issue 21,
issue 27 item 1)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_zoo import TINY_BIRDS

from interp_lib import zoo
from interp_lib._validation import check_seed, make_generator
from interp_lib.zoo import _cache
from interp_lib.zoo._cache import CacheWarning


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(_cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


def test_check_seed_takes_integers_only():
    assert check_seed(3) == 3 and check_seed(np.int64(7)) == 7
    assert type(check_seed(np.int64(7))) is int
    for bad in (1.5, 1.0, np.float64(2.0), True, "0", None):
        with pytest.raises(TypeError, match="seed must be an integer"):
            check_seed(bad)
    with pytest.raises(ValueError, match=r"\[-2\*\*63, 2\*\*64\)"):
        check_seed(2**64)
    with pytest.raises(TypeError, match=r"my_seed must be an integer, got float 1\.5"):
        check_seed(1.5, "my_seed")
    with pytest.raises(ValueError, match=r"\[-2\*\*63, 2\*\*64\)"):
        make_generator(-(2**63) - 1)  # make_generator checks through it


ENTRIES = {
    "digits_cnn": lambda **kw: zoo.digits_cnn(**kw),
    "objects_cnn": lambda **kw: zoo.objects_cnn(**kw),
    "birds_classifier": lambda **kw: zoo.birds_classifier("vgg4", **kw),
    "protopnet_birds": lambda **kw: zoo.protopnet_birds(**kw),
}


@pytest.mark.parametrize("name", sorted(ENTRIES))
@pytest.mark.parametrize("seed", [1.5, 1.0, True, "0"])
def test_every_zoo_entry_refuses_a_seed_that_is_not_an_integer(cache, monkeypatch, name, seed):
    """``seed=1.5`` used to become seed 1's entry silently (``int(seed)``)."""

    def no_training(*args, **kwargs):
        raise AssertionError("the seed must be refused before the cache is consulted")

    for module in ("classifiers", "_birds_protopnet"):  # birds_classifier: classifiers
        monkeypatch.setattr(f"interp_lib.zoo.{module}.cached", no_training)
    with pytest.raises(TypeError, match="seed must be an integer"):
        ENTRIES[name](seed=seed, progress=False)


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _records(history):
    return [{k: v for k, v in r.to_state().items() if k != "seconds"} for r in history]


def _assert_same_models(a, b) -> None:
    _same_state(a.protopnet.state_dict(), b.protopnet.state_dict())
    _same_state(a.cnn.state_dict(), b.cnn.state_dict())
    assert _records(a.protopnet_history) == _records(b.protopnet_history)
    assert a.protopnet_test_accuracy == b.protopnet_test_accuracy
    assert torch.equal(a.push.sample_index, b.push.sample_index)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
def test_protopnet_birds_progress_leaves_the_entry_bit_identical_and_unreadable_entries_retrain(
    cache,
):
    """Progress on (first build) and off (a retrain under the same key) give the same
    weights bit for bit; an entry whose payload the recipe cannot read (valid checksum, a
    key missing) is warned about and retrained, no longer a ``KeyError``."""
    shown = zoo.protopnet_birds(**TINY_BIRDS, progress=True)
    quiet = zoo.protopnet_birds(**TINY_BIRDS, progress=False, retrain=True)
    assert not shown.from_cache and not quiet.from_cache
    _assert_same_models(shown, quiet)
    assert zoo.protopnet_birds(**TINY_BIRDS, progress=True).from_cache  # one key for both

    (path,) = cache.glob("protopnet_birds-*.pt")
    entry = torch.load(path, weights_only=True)
    payload = torch.load(io.BytesIO(entry["payload"].numpy().tobytes()), weights_only=True)
    del payload["protopnet_history"]
    torch.save(_cache._entry("protopnet_birds", entry["params"], payload), path)
    with pytest.warns(CacheWarning, match="could not be read or used"):
        again = zoo.protopnet_birds(**TINY_BIRDS, progress=False)
    assert not again.from_cache
    _assert_same_models(shown, again)
    assert zoo.protopnet_birds(**TINY_BIRDS, progress=False).from_cache


@pytest.mark.slow
def test_birds_classifier_pins_and_keys_its_thread_count(cache):
    """Trained under one torch thread by default whatever the caller's setting (restored
    afterwards); another count is another entry."""
    kw = dict(n_per_class=4, n_val=2, n_test=2, n_classes=2, image_size=32, epochs=1,
              progress=False)  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        original = torch.nn.functional.cross_entropy

        def spy(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return original(*args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch.nn.functional, "cross_entropy", spy)
            one = zoo.birds_classifier("vgg4", **kw)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        assert one.recipe["threads"] == 1 and not one.from_cache
        two = zoo.birds_classifier("vgg4", threads=2, **kw)
        assert two.recipe["threads"] == 2 and not two.from_cache
        assert zoo.birds_classifier("vgg4", threads=1, **kw).from_cache
        assert zoo.birds_classifier("vgg4", threads=None, **kw).recipe["threads"] == 2
        with pytest.raises(ValueError, match="threads"):
            zoo.birds_classifier("vgg4", threads=0, **kw)
    finally:
        torch.set_num_threads(before)
