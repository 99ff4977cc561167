"""The zoo's disk cache on a toy recipe: checksums, corrupt and unusable entries,
unwritable folders, file modes (issue 21, items 9, 12 and 16)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from interp_lib.zoo import _cache
from interp_lib.zoo._cache import CacheWarning, cached, entry_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(_cache.ENV, str(tmp_path / "c"))
    src = tmp_path / "recipe.py"
    src.write_text("x = 1\n")
    return tmp_path, [src]


class Recipe:
    """A toy recipe: a linear model's state dict, a history and an accuracy."""

    def __init__(self, sources):
        self.sources = sources
        self.builds = 0

    def build(self):
        self.builds += 1
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 2)
        return {"state_dict": net.state_dict(), "history": {"loss": [1.0, 0.5]},
                "test_accuracy": 0.75}  # fmt: skip

    @staticmethod
    def load(payload, from_cache):
        net = torch.nn.Linear(3, 2)
        net.load_state_dict(payload["state_dict"])
        unknown = set(payload["history"]) - {"loss"}  # the recipe's known fields only
        if unknown:
            raise TypeError(f"unknown history fields {sorted(unknown)}")
        return net, float(payload["test_accuracy"]), from_cache

    def __call__(self, **kw):
        return cached("toy", {"a": 1}, self.build, sources=self.sources, load=self.load, **kw)

    @property
    def path(self):
        return entry_path("toy", {"a": 1}, self.sources)


def _rewrite(path, change):
    """Rewrite the entry's payload with ``change`` applied and a *valid* checksum."""
    entry = torch.load(path, weights_only=True)
    import io

    payload = torch.load(io.BytesIO(entry["payload"].numpy().tobytes()), weights_only=True)
    change(payload)
    torch.save(_cache._entry("toy", entry["params"], payload), path)


def test_a_hit_returns_the_same_model(cache):
    recipe = Recipe(cache[1])
    (net, acc, hit), from_cache = recipe()
    assert not hit and not from_cache and recipe.builds == 1
    (net2, acc2, hit2), from_cache2 = recipe()
    assert hit2 and from_cache2 and recipe.builds == 1 and acc2 == acc == 0.75
    assert torch.equal(net.weight, net2.weight)


def test_a_flipped_bit_in_a_tensor_is_refused_warned_and_rebuilt(cache):
    recipe = Recipe(cache[1])
    recipe()
    data = bytearray(recipe.path.read_bytes())
    torch.manual_seed(0)
    weight = torch.nn.Linear(3, 2).weight.detach().numpy().tobytes()
    at = data.index(weight) + 5
    data[at] ^= 1 << 3  # before: served as a hit with another weight
    recipe.path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="SHA-256"):
        (_, _, hit), _ = recipe()
    assert not hit and recipe.builds == 2
    assert recipe()[1]  # rebuilt and rewritten: a hit again


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.pop("state_dict"), "KeyError"),
        (lambda p: p.__setitem__("state_dict", {"weight": torch.zeros(5, 5)}), "RuntimeError"),
        (lambda p: p["history"].__setitem__("extra", [1.0]), "extra"),
        (lambda p: p.__setitem__("test_accuracy", "high"), "ValueError"),
    ],
    ids=["missing_state_dict", "wrong_shapes", "extra_history_key", "non_numeric_accuracy"],
)
def test_an_unusable_payload_is_warned_about_and_retrained(cache, change, match):
    recipe = Recipe(cache[1])
    recipe()
    _rewrite(recipe.path, change)
    with pytest.warns(CacheWarning, match=match):
        (_, acc, hit), from_cache = recipe()
    assert not hit and not from_cache and acc == 0.75 and recipe.builds == 2
    assert recipe()[1]


def test_a_cache_folder_that_is_a_file_returns_the_model(cache):
    tmp, sources = cache
    (tmp / "c").write_text("not a folder")
    recipe = Recipe(sources)
    with pytest.warns(CacheWarning, match="not cached"):
        (net, acc, _), hit = recipe()
    assert isinstance(net, torch.nn.Linear) and acc == 0.75 and not hit


def test_an_entry_path_that_is_a_folder_returns_the_model(cache):
    recipe = Recipe(cache[1])
    recipe.path.mkdir(parents=True)
    with pytest.warns(CacheWarning, match="folder"):
        (_, acc, _), hit = recipe()
    assert acc == 0.75 and not hit and recipe.path.is_dir()


def test_a_read_only_cache_folder_returns_the_model(cache, monkeypatch):
    recipe = Recipe(cache[1])
    recipe.path.parent.mkdir(parents=True)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # chmod 0o555 does not stop root: simulate the refusal of a new file in the folder
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.warns(CacheWarning, match="not writable"):
        (_, acc, _), hit = recipe()
    assert acc == 0.75 and not hit and not recipe.path.exists()


def test_a_save_that_fails_after_training_returns_the_model(cache, monkeypatch):
    recipe = Recipe(cache[1])

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cache, "atomic_save", full_disk)
    with pytest.warns(CacheWarning, match="No space"):
        (_, acc, _), hit = recipe()
    assert acc == 0.75 and not hit


def test_entries_follow_the_umask_and_keep_their_mode(cache):
    recipe = Recipe(cache[1])
    old = os.umask(0o002)
    try:
        recipe()
        assert recipe.path.stat().st_mode & 0o777 == 0o664  # 0o600 before
        recipe.path.chmod(0o644)
        recipe(retrain=True)
        assert recipe.path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_without_a_load_hook_the_payload_is_returned(cache):
    recipe = Recipe(cache[1])
    payload, hit = cached("toy", {"a": 1}, recipe.build, sources=recipe.sources)
    assert not hit and payload["test_accuracy"] == 0.75
    payload, hit = cached("toy", {"a": 1}, recipe.build, sources=recipe.sources)
    assert hit and set(payload) == {"state_dict", "history", "test_accuracy"}


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.pop("state_dict"), "KeyError"),
        (
            lambda p: p["state_dict"].__setitem__(next(iter(p["state_dict"])), torch.zeros(3)),
            "size",
        ),
        (lambda p: p["history"].__setitem__("extra", [1.0]), "extra"),
        (lambda p: p.__setitem__("test_accuracy", "high"), "ValueError"),
    ],
    ids=["missing_state_dict", "wrong_shapes", "extra_history_key", "non_numeric_accuracy"],
)
def test_digits_cnn_retrains_an_unusable_entry(tmp_path, monkeypatch, change, match):
    """Issue 21, item 12, on a real recipe: KeyError / RuntimeError / TypeError before."""
    from interp_lib.zoo import digits_cnn

    monkeypatch.setenv(_cache.ENV, str(tmp_path))
    kw = {"widths": (2,), "hidden": (4,), "n_train": 10, "epochs": 1, "progress": False}
    first = digits_cnn(**kw)
    (path,) = (tmp_path / "zoo").iterdir()
    entry = torch.load(path, weights_only=True)
    import io

    payload = torch.load(io.BytesIO(entry["payload"].numpy().tobytes()), weights_only=True)
    change(payload)
    torch.save(_cache._entry(entry["recipe"], entry["params"], payload), path)
    with pytest.warns(CacheWarning, match=match):
        again = digits_cnn(**kw)
    assert not again.from_cache and again.test_accuracy == first.test_accuracy
    assert digits_cnn(**kw).from_cache
