"""zoo.BirdsRecipe: the birds recipe as a frozen, checked dataclass that is the cache key."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from interp_lib import zoo
from interp_lib.zoo import BirdsRecipe
from interp_lib.zoo import birds as zoo_birds
from interp_lib.zoo._cache import _canonical

# The cache key of the default recipe as protopnet_birds() wrote it before the recipe was
# a dataclass: the entries trained then keep their key.
DEFAULT_KEY = (
    '{"batch_size": 32, "channels_last": true, "cnn_lr": 0.002, "crop": false, '
    '"degrees": 15.0, "difficulty": 0.5, "image_size": 80, "last_layer": '
    '"convex_nonpositive", "n_classes": 10, "n_per_class": 150, "n_prototypes_per_class": '
    '5, "pool_last": false, "prototype_dim": 64, "prototype_init": "cnn", "schedule": '
    '{"epochs": 10, "joint_lr_features": 0.002, "lr_step_size": 8, "push_every": 2, '
    '"push_start": 0, "warmup_epochs": 1}, "seed": 0, "shear": 10.0, "shift": 5.0, '
    '"test_per_class": 50, "threads": 1, "val_per_class": 20, "warm_epochs": 18, '
    '"widths": [16, 32, 64]}'
)


#: Values of the fields the birds and shortcut recipes share, each refused by both.
SHARED_BAD_FIELDS = [
    ({"n_classes": 1}, ValueError, "n_classes must be at least 2"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"pool_last": "no"}, TypeError, "pool_last must be True or False"),
    ({"difficulty": float("nan")}, ValueError, "difficulty must be a finite number"),
    ({"cnn_lr": 0.0}, ValueError, "cnn_lr must be a finite number > 0"),
    ({"widths": ()}, ValueError, "widths must name at least one stage"),
    ({"widths": 16}, TypeError, "widths must be a sequence"),
    ({"widths": (16, 0)}, ValueError, "each of widths must be at least 1"),
    ({"threads": 0}, ValueError, "threads must be at least 1"),
]


class _Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch):
    """protopnet_birds up to the cache: the key it would use, nothing trained."""
    keys = []

    def entry(p, progress, retrain, **kwargs):
        keys.append(p)
        raise _Captured

    monkeypatch.setattr(zoo_birds, "entry", entry)

    def call(*args, **kwargs):
        with pytest.raises(_Captured):
            zoo.protopnet_birds(*args, **kwargs)
        return keys[-1]

    return call


def test_the_default_key_is_unchanged(captured):
    assert _canonical(BirdsRecipe().asdict()) == DEFAULT_KEY
    assert _canonical(captured()) == DEFAULT_KEY
    assert _canonical(dataclasses.asdict(BirdsRecipe())) == DEFAULT_KEY


def test_arguments_recipe_and_changes_give_the_same_key(captured):
    recipe = BirdsRecipe(n_classes=3, seed=7, last_layer="adam", widths=[4, 8], difficulty=1)
    by_recipe = captured(recipe=recipe)
    by_args = captured(3, 7, last_layer="adam", widths=(4, 8), difficulty=1.0)
    by_change = captured(seed=7, recipe=BirdsRecipe(n_classes=3, widths=(4, 8)),
                         last_layer="adam", difficulty=1)  # fmt: skip
    assert by_recipe == by_args == by_change == recipe.asdict()
    assert by_recipe["difficulty"] == 1.0 and isinstance(by_recipe["difficulty"], float)
    assert by_recipe["widths"] == [4, 8] and recipe.widths == (4, 8)
    assert "progress" not in by_recipe and "retrain" not in by_recipe
    with pytest.raises(TypeError, match=r"\['epochs'\] are not fields of BirdsRecipe"):
        zoo.protopnet_birds(epochs=3)
    with pytest.raises(TypeError, match="must be a BirdsRecipe"):
        zoo.protopnet_birds(recipe={"seed": 1})


def test_the_recipe_is_frozen_and_checked():
    recipe = BirdsRecipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.seed = 1
    with pytest.raises(TypeError, match="read-only"):
        recipe.schedule["epochs"] = 3
    with pytest.raises(TypeError, match="read-only"):
        recipe.schedule.update(epochs=3)
    assert copy.deepcopy(recipe) == recipe
    assert BirdsRecipe(threads=None).threads == torch.get_num_threads()
    assert BirdsRecipe(schedule={}).asdict()["schedule"] == {}
    assert recipe == BirdsRecipe() and recipe != recipe.replace(seed=1)
    for bad, error, match in [
        *SHARED_BAD_FIELDS,
        ({"image_size": 16}, ValueError, "image_size must be at least 32"),
        ({"schedule": [("epochs", 2)]}, TypeError, "schedule must be a mapping"),
        ({"last_layer": "sgd"}, ValueError, "last_layer"),
        ({"prototype_init": "zeros"}, ValueError, "prototype_init"),
    ]:
        with pytest.raises(error, match=match):
            BirdsRecipe(**bad)
        with pytest.raises(error, match=match):
            recipe.replace(**bad)


def test_the_shortcut_recipe_checks_the_shared_fields_as_the_birds_recipe():
    """Both recipes check their common fields with one function (the shortcut recipe used
    to take ``widths=()``) and give their cache key as the same plain dict."""
    from interp_lib.zoo.shortcut import SHORTCUT_SCHEDULE, ShortcutRecipe

    for bad, error, match in SHARED_BAD_FIELDS:
        with pytest.raises(error, match=match):
            ShortcutRecipe(**bad)
    key = ShortcutRecipe(widths=[4, 8], degrees=10).asdict()
    assert key["widths"] == [4, 8] and key["schedule"] == SHORTCUT_SCHEDULE
    assert key["degrees"] == 10.0 and type(key["degrees"]) is float
    assert ShortcutRecipe(widths=[4, 8]).widths == (4, 8)
