"""The model zoo's cache: hit, miss, corruption, code-change invalidation, atomic writes."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from interp_lib import zoo
from interp_lib.models import accuracy
from interp_lib.zoo._cache import CacheWarning, cache_dir, cached, entry_path, source_hash

#: A birds entry that trains in seconds (2 classes, 32 px, a 2-stage trunk).
TINY_BIRDS = dict(
    n_classes=2, n_per_class=6, val_per_class=2, test_per_class=3, image_size=32,
    widths=(4, 8), n_prototypes_per_class=2, prototype_dim=8, batch_size=4,
    warm_epochs=1, schedule={"epochs": 2, "warmup_epochs": 1, "push_start": 1},
)  # fmt: skip


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


@pytest.fixture
def recipe(tmp_path):
    """A tiny recipe: its 'library code' is one file; counts how often it trains."""
    src = tmp_path / "tiny_recipe.py"
    src.write_text("SCALE = 1\n")
    calls = []

    def run(scale=1.0, **kw):
        def build():
            calls.append(scale)
            g = torch.Generator().manual_seed(0)
            return {"weight": scale * torch.randn(4, 3, generator=g), "history": [0.5, 0.25]}

        return cached("tiny", {"scale": scale}, build, sources=[src], **kw)

    return run, calls, src


def test_miss_then_hit_gives_the_same_payload(cache, recipe):
    run, calls, _ = recipe
    first, hit1 = run()
    second, hit2 = run()
    assert (hit1, hit2) == (False, True)
    assert len(calls) == 1
    assert torch.equal(first["weight"], second["weight"])
    assert second["history"] == [0.5, 0.25]
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("tiny-") and files[0].suffix == ".pt"


def test_other_arguments_are_another_entry(cache, recipe):
    run, calls, _ = recipe
    run(scale=1.0)
    _, hit = run(scale=2.0)
    assert not hit and calls == [1.0, 2.0]
    assert len(list(cache.iterdir())) == 2
    assert run(scale=1.0)[1] and run(scale=2.0)[1]


def test_retrain_overwrites(cache, recipe):
    run, calls, _ = recipe
    run()
    _, hit = run(retrain=True)
    assert not hit and len(calls) == 2


def test_code_change_retrains(cache, recipe):
    run, calls, src = recipe
    run()
    before = source_hash([src])
    src.write_text("SCALE = 2  # the training code changed\n")
    assert source_hash([src]) != before
    _, hit = run()
    assert not hit and len(calls) == 2
    assert run()[1]  # and the new entry is then a hit


def test_documentation_edits_keep_the_entry(cache, recipe):
    """Docstrings, comments and layout are not code: editing them keeps the entry; a
    string that is not a docstring is code."""
    run, calls, src = recipe
    src.write_text('"""A recipe."""\n\n\ndef scale():\n    """One."""\n    return 1\n')
    run()
    src.write_text(
        '"""A recipe, documented."""\n# a comment\ndef scale( ):\n'
        '    """The scale: one."""\n\n    return 1  # why one\n'
    )
    assert run()[1] and len(calls) == 1
    src.write_text('"""A recipe."""\n\n\ndef scale():\n    x = "One."\n    return 1\n')
    assert not run()[1] and len(calls) == 2
    src.write_text("def scale(:\n")  # does not parse: its bytes are hashed
    assert not run()[1] and len(calls) == 3


def test_corrupt_entry_warns_and_retrains(cache, recipe):
    run, calls, _ = recipe
    run()
    path = next(cache.iterdir())
    path.write_bytes(path.read_bytes()[:100])  # truncated, e.g. a killed copy
    with pytest.warns(CacheWarning, match="could not be read"):
        payload, hit = run()
    assert not hit and len(calls) == 2
    assert payload["weight"].shape == (4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run()[1]  # repaired


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (str(Path(os.environ["INTERP_LIB_CACHE"]) / "pwned"),))


def test_foreign_pickle_is_never_unpickled(cache, recipe):
    run, calls, _ = recipe
    run()
    path = next(cache.iterdir())
    with path.open("wb") as fh:
        pickle.dump({"format": 1, "payload": _Evil()}, fh, protocol=2)
    with pytest.warns(CacheWarning):
        _, hit = run()
    assert not hit and len(calls) == 2
    assert not (cache.parent / "pwned").exists()


def test_entry_of_other_arguments_under_the_key_is_rejected(cache, recipe):
    run, calls, src = recipe
    run(scale=1.0)
    run(scale=2.0)
    one = entry_path("tiny", {"scale": 1.0}, [src])
    two = entry_path("tiny", {"scale": 2.0}, [src])
    one.write_bytes(two.read_bytes())
    with pytest.warns(CacheWarning, match="other arguments"):
        _, hit = run(scale=1.0)
    assert not hit and calls[-1] == 1.0


def test_failed_build_writes_nothing(cache):
    def build():
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        cached("broken", {}, build, sources=["interp_lib.zoo._cache"])
    assert not cache.exists() or not any(cache.iterdir())


def test_no_temporary_files_left(cache, recipe):
    run, _, _ = recipe
    run()
    run(scale=3.0)
    assert all(not p.name.startswith(".") for p in cache.iterdir())


def test_cache_dir_from_environment_or_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_LIB_CACHE", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "zoo"
    assert zoo.cache_dir() == cache_dir()
    monkeypatch.delenv("INTERP_LIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert cache_dir() == tmp_path / "xdg" / "interp_lib" / "zoo"


def test_unknown_source_and_unjsonable_arguments_fail_clearly(cache):
    with pytest.raises(ValueError, match="importable module"):
        cached("x", {}, dict, sources=["interp_lib.no_such_module"])
    with pytest.raises(TypeError, match="JSON-able"):
        cached("x", {"a": object()}, dict, sources=["interp_lib.zoo._cache"])


@pytest.mark.slow
def test_digits_cnn_trains_once_then_loads(cache):
    kw = dict(widths=(4,), hidden=(8,), n_train=60, epochs=1, progress=False)
    first = zoo.digits_cnn(**kw)
    second = zoo.digits_cnn(**kw)
    assert not first.from_cache and second.from_cache
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert second.test_accuracy == first.test_accuracy
    assert second.history.loss == first.history.loss
    assert len(first.train) == 60 and len(first.test) == 450


@pytest.mark.slow
def test_birds_classifier_keeps_the_best_validation_epoch_and_its_twin(cache):
    from interp_lib.zoo.bird_classifiers import _bird_net, birds_classifier

    kw = dict(n_per_class=8, n_val=4, n_test=4, image_size=32, epochs=2, progress=False)
    first = birds_classifier("vgg4", **kw)
    second = birds_classifier("vgg4", **kw)
    assert not first.from_cache and second.from_cache
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    val = first.history.test_accuracy  # the validation accuracy of each epoch
    assert first.best_epoch == 1 + val.index(max(val))
    assert len(first.train) == 40 and len(first.validation) == 20 and len(first.test) == 20
    twin, again = _bird_net("vgg4", 5, 32, 0), _bird_net("vgg4", 5, 32, 0)  # seeded inits
    pairs = zip(twin.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    pairs = zip(twin.state_dict().values(), first.model.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)  # training moved the weights
    with pytest.raises(ValueError, match="arch"):
        birds_classifier("vgg16", **kw)


@pytest.mark.slow
def test_protopnet_birds_round_trip(cache):
    first = zoo.protopnet_birds(**TINY_BIRDS, progress=True)  # the bar ticks once per phase
    second = zoo.protopnet_birds(**TINY_BIRDS, progress=False)
    assert not first.from_cache and second.from_cache
    x = second.test.transform(second.test.images)
    torch.testing.assert_close(first.protopnet(x), second.protopnet(x))
    torch.testing.assert_close(first.cnn(x), second.cnn(x))
    assert torch.equal(first.push.sample_index, second.push.sample_index)
    assert second.push.image_size == (32, 32)
    # by default the trunk's last pool is dropped: one pool of two, a 16 x 16 grid
    assert second.protopnet.prototype_receptive_field.jump == 2
    assert second.push.similarity_map.shape[-2:] == (16, 16)
    assert second.recipe["crop"] is False and second.recipe["channels_last"] is True
    assert second.protopnet_test_accuracy == first.protopnet_test_accuracy
    assert len(second.protopnet_history.records) == len(first.protopnet_history.records)
    assert len(second.cnn_history.loss) == 1 + 2  # warm start + as many epochs as ProtoPNet
    # the CNN is kept at its best validation epoch after the branch, as fit keeps the ProtoPNet
    val = (second.val.transform(second.val.images), second.val.labels)
    assert accuracy(second.cnn, val) == max(second.cnn_history.test_accuracy[1:])
    assert second.train.masks.shape == (12, 7, 32, 32)
    assert torch.equal(first.train.masks, second.train.masks)
    placement = second.prototype_placement()
    assert 0.0 <= placement["on_bird_fraction"] <= 1.0


@pytest.mark.slow
def test_protopnet_birds_with_the_last_pool_is_another_entry_on_the_coarser_grid(cache):
    coarse = zoo.protopnet_birds(**TINY_BIRDS, pool_last=True, progress=False)
    fine = zoo.protopnet_birds(**TINY_BIRDS, progress=False)
    assert not coarse.from_cache and not fine.from_cache  # pool_last is part of the key
    assert coarse.protopnet.prototype_receptive_field.jump == 4  # two pools of two
    assert coarse.push.similarity_map.shape[-2:] == (8, 8)
    assert zoo.protopnet_birds(**TINY_BIRDS, pool_last=True, progress=False).from_cache
    with pytest.raises(TypeError, match="pool_last must be True or False"):
        zoo.protopnet_birds(**TINY_BIRDS, pool_last="no")


@pytest.mark.slow
def test_protopnet_birds_cropped_is_another_entry_with_the_birds_filling_the_images(cache):
    plain = zoo.protopnet_birds(**TINY_BIRDS, progress=False)
    cropped = zoo.protopnet_birds(**TINY_BIRDS, crop=True, progress=False)
    assert not plain.from_cache and not cropped.from_cache
    assert cropped.recipe["crop"] is True
    share = [float(r.train.masks.any(1).float().mean()) for r in (plain, cropped)]
    assert share[1] > 2 * share[0]


@pytest.mark.slow
def test_protopnet_birds_thread_count_is_part_of_the_key(cache):
    """Another thread count trains another model (other float sums), so it is another
    entry; the caller's thread setting is restored."""
    before = torch.get_num_threads()
    one = zoo.protopnet_birds(**TINY_BIRDS, progress=False)  # default: 1 thread
    two = zoo.protopnet_birds(**TINY_BIRDS, threads=2, progress=False)
    assert not one.from_cache and not two.from_cache
    assert one.recipe["threads"] == 1 and two.recipe["threads"] == 2
    assert zoo.protopnet_birds(**TINY_BIRDS, threads=1, progress=False).from_cache
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        zoo.protopnet_birds(**TINY_BIRDS, threads=0)


@pytest.mark.slow
def test_protopnet_birds_variants_share_one_cnn_entry(cache):
    """Another last-layer rule or prototype start trains the ProtoPNet only: the data
    and the CNN come from their own entry, keyed by what they depend on."""
    base = zoo.protopnet_birds(**TINY_BIRDS, progress=False)
    assert base.recipe["last_layer"] == "convex_nonpositive"
    assert base.recipe["prototype_init"] == "cnn"
    assert base.train_seconds["cnn_from_cache"] == 0.0
    assert base.schedule.last_layer_solver == "convex_nonpositive"
    off = (1 - base.protopnet.class_identity.t()).bool()
    assert (base.protopnet.last_layer.weight[off] <= 0).all()
    for kw in ({"last_layer": "convex"}, {"last_layer": "adam"}, {"prototype_init": "random"}):
        other = zoo.protopnet_birds(**TINY_BIRDS, **kw, progress=False)
        assert not other.from_cache and other.train_seconds["cnn_from_cache"] == 1.0
        for a, b in zip(base.cnn.state_dict().values(), other.cnn.state_dict().values(),
                        strict=True):  # fmt: skip
            assert torch.equal(a, b)
        assert torch.equal(base.test.images, other.test.images)
        assert other.cnn_test_accuracy == base.cnn_test_accuracy
    adam = zoo.protopnet_birds(**TINY_BIRDS, last_layer="adam", progress=False)
    assert adam.from_cache and adam.schedule.last_layer_solver == "adam_push"
    steps = [r for r in adam.protopnet_history.records if r.stage.value == "last_layer"]
    assert steps and all(r.train["iterations"] == 20 * 3 for r in steps)  # 12 images / 4
    with pytest.raises(ValueError, match="last_layer"):
        zoo.protopnet_birds(**TINY_BIRDS, last_layer="sgd")
    with pytest.raises(ValueError, match="prototype_init"):
        zoo.protopnet_birds(**TINY_BIRDS, prototype_init="zeros")
    with pytest.raises(ValueError, match="pass last_layer instead"):
        zoo.protopnet_birds(
            **{**TINY_BIRDS, "schedule": {**TINY_BIRDS["schedule"], "last_layer_solver": "adam"}},
            progress=False,
        )


def test_variants_summary_table(tmp_path):
    from interp_lib.zoo.birds import load_variants_summary, variants_table

    def summ(diff, evidence):
        return {"n_seeds": 5, "diff": diff, "diff_low": diff - 0.01, "diff_high": diff + 0.01,
                "protopnet": 0.95, "cnn": 0.95 - diff, "evidence": evidence,
                "off_above_0.1": 0.5, "off_above_0.3": 0.2, "off_positive": 0.0,
                "on_bird": 0.7, "chance": 0.1}  # fmt: skip

    data = {
        "table": {
            "convex_nonpositive/cnn": {"summary": summ(-0.02, 1.0), "rows": []},
            "convex/random": {"summary": summ(-0.01, 0.7), "rows": []},
        },
        "choice": {"variant": "convex_nonpositive/cnn", "rule": "convex_nonpositive"},
    }
    path = tmp_path / "v.json"
    import json

    path.write_text(json.dumps(data))
    table = variants_table(load_variants_summary(path))
    assert table["default"].tolist() == [True, False]
    assert table["last layer"].tolist() == ["convex_nonpositive", "convex"]
    assert table["prototypes start"].tolist() == ["cnn", "random"]
    assert table.loc[0, "gap"] == pytest.approx(-2.0) and table.loc[1, "own-class evidence"] == 70
    assert variants_table(load_variants_summary(path), percent=False).loc[0, "gap"] == -0.02
    with pytest.raises(FileNotFoundError, match=r"protopnet_birds\.py"):
        load_variants_summary(tmp_path / "missing.json")
