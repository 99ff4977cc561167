"""Input checks live in ``interp_lib/_validation.py`` (CONTRIBUTING.md), and its general
checks cover what the subpackages used to write again.

:func:`test_no_check_function_outside_validation` reads the source (the AST of every
module, as ``test_import_graph`` does) and fails on a function named ``check_*`` or
``_check_*`` anywhere else, unless :data:`DOMAIN_CHECKS` names it with the reason it
belongs beside its domain. A check of a plain value (a number, a fraction, a dtype, a
tensor's rank, a module, images) goes into ``_validation``.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import interp_lib
from interp_lib import _validation as v

ROOT = Path(interp_lib.__file__).parent

#: ``(module, function qualname)`` -> why the check lives beside its domain rather than
#: in ``_validation``. Entries whose module is gone (moved by a refactor) are ignored.
DOMAIN_CHECKS = {
    ("interp_lib._plumbing", "check_device"): "the device policy: compares with model_device",
    ("interp_lib._plumbing", "check_writable"): "probes the file system with the atomic save",
    ("interp_lib.baselines._utils", "check_map"): "a saliency map in the baselines' format",
    ("interp_lib.baselines.metrics", "_check_masks"): "masks against a saliency map's shape",
    ("interp_lib.claims", "Claims._check_resolved"): "the records' own state, not an argument",
    ("interp_lib.cli.config", "check_table"): "the command lines' config schema",
    ("interp_lib.id._ratios", "check_scale"): "id's length scales (SCALES)",
    ("interp_lib.id._ratios", "check_prior"): "Gride's Gamma prior (shape, rate)",
    ("interp_lib.id.gride", "_check_ranks"): "Gride's ranks n1 < n2",
    ("interp_lib.id.neighbors", "check_options"): "the neighbour search's options",
    ("interp_lib.id.neighbors", "check_precomputed"): "a distance matrix (diagonal, symmetry)",
    ("interp_lib.networks.backbones", "check_backbone_kwargs"): "needs the backbone table",
    ("interp_lib.profile.activations", "_check_float16"): "a result's range, not an argument",
    ("interp_lib.profile.activations", "ActivationCollector._check_batch"): "collector state",
    ("interp_lib.profile.activations", "ActivationCollector._check_same"): "collector state",
    ("interp_lib.protopnet._runtime", "_check_rebuildable"): "a loader under DDP",
    ("interp_lib.protopnet.prototype_metrics", "_check_presence"): "box_part_presence output",
    ("interp_lib.protopnet.prototype_metrics", "_check_classes"): "labels against prototypes",
    ("interp_lib.protopnet.checkpoint", "_check_plain"): "a checkpoint file's contents",
    ("interp_lib.protopnet.checkpoint", "_check_state_dict"): "a checkpoint file's contents",
    ("interp_lib.protopnet.checkpoint", "_check_budget"): "a checkpoint file's size",
    ("interp_lib.protopnet.checkpoint", "_check_config"): "a checkpoint file's contents",
    ("interp_lib.protopnet.checkpoint", "check_state_matches"): "a checkpoint against a model",
    ("interp_lib.protopnet.functional", "_check_pair"): "latents against prototypes",
    ("interp_lib.protopnet.model", "ProtoPNet.check_input"): "a public method of the model",
    ("interp_lib.protopnet.push", "check_ordered_loader"): "push's sample-index contract",
    ("interp_lib.protopnet.train", "_check_args"): "fit's schedule, loaders and stages",
    ("interp_lib.viz.protopnet_widgets", "_check_maps"): "the widget's nested maps",
}


def _check_functions(root: Path) -> set[tuple[str, str]]:
    """``(module, qualname)`` of every function named ``check_*`` / ``_check_*`` under
    ``root`` (methods and nested functions included), except in ``_validation.py``."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        if path.name == "_validation.py":
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)

        def visit(node: ast.AST, scope: tuple[str, ...], module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qualname = (*scope, child.name)
                    if not isinstance(child, ast.ClassDef) and child.name.lstrip("_").startswith(
                        "check_"
                    ):
                        found.add((module, ".".join(qualname)))
                    visit(child, qualname)
                else:
                    visit(child, scope)

        visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), ())
    return found


def test_no_check_function_outside_validation():
    unlisted = sorted(_check_functions(ROOT) - set(DOMAIN_CHECKS))
    assert not unlisted, (
        f"input checks outside interp_lib/_validation.py: {unlisted}. Use (or generalise) "
        "a check of _validation, or name a domain check in DOMAIN_CHECKS with its reason."
    )


def test_the_scan_sees_a_planted_check(tmp_path):
    pkg = tmp_path / "interp_lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "_validation.py").write_text("def check_ok(x):\n    return x\n")
    (pkg / "sub" / "a.py").write_text(
        "def _check_real(x):\n    return x\n\nclass A:\n    def check_input(self):\n        pass\n"
    )
    assert _check_functions(pkg) == {
        ("interp_lib.sub.a", "_check_real"),
        ("interp_lib.sub.a", "A.check_input"),
    }


# ------------------------------------------------------------- the general checks


def test_check_fraction_bounds():
    assert v.check_fraction(1, "f") == 1.0
    with pytest.raises(ValueError, match=r"f must lie in \(0, 1\], got 0.0"):
        v.check_fraction(0.0, "f")
    assert v.check_fraction(0.0, "overlap", inclusive_low=True) == 0.0
    with pytest.raises(ValueError, match=r"overlap must lie in \[0, 1\], got 1.5"):
        v.check_fraction(1.5, "overlap", inclusive_low=True)
    assert v.check_fraction(0.95, "confidence", inclusive_high=False) == 0.95
    with pytest.raises(ValueError, match=r"confidence must lie in \(0, 1\), got 1.0"):
        v.check_fraction(1.0, "confidence", inclusive_high=False)
    with pytest.raises(ValueError, match="lie in"):
        v.check_fraction(math.nan, "f", inclusive_low=True)
    with pytest.raises(TypeError, match=r"must be a number in \[0, 1\], got str"):
        v.check_fraction("0.5", "f", inclusive_low=True)
    with pytest.raises(TypeError):
        v.check_fraction(True, "f")


def test_check_real_bounds():
    assert v.check_real(-2, "x") == -2.0
    assert v.check_real(0, "noise", minimum=0) == 0.0
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -0\.1"):
        v.check_real(-0.1, "noise", minimum=0)
    with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\], got 120.0"):
        v.check_real(120, "percentile", minimum=0, maximum=100)
    with pytest.raises(ValueError, match="must be a finite number <= 1"):
        v.check_real(2, "x", maximum=1)
    with pytest.raises(ValueError, match="> 0"):
        v.check_real(0, "box", positive=True)
    with pytest.raises(ValueError, match="finite"):
        v.check_real(math.inf, "x", minimum=0)
    with pytest.raises(TypeError, match="real number"):
        v.check_real(None, "x", minimum=0)


def test_check_choice_allow_none():
    assert v.check_choice(None, "noise_tunnel", ("smoothgrad",), allow_none=True) is None
    with pytest.raises(ValueError, match=r"one of \['smoothgrad'\] or None, got 'x'"):
        v.check_choice("x", "noise_tunnel", ("smoothgrad",), allow_none=True)
    with pytest.raises(ValueError, match=r"one of \['a'\], got None"):
        v.check_choice(None, "mode", ("a",))


def test_check_images_options():
    x = torch.zeros(2, 3, 4, 4)
    assert v.check_images(x) is x
    with pytest.raises(TypeError, match="floating point"):
        v.check_images(x.long())
    assert v.check_images(torch.zeros(0, 3, 4, 4)).shape[0] == 0
    with pytest.raises(ValueError, match="is empty"):
        v.check_images(torch.zeros(0, 3, 4, 4), nonempty=True)
    bad = x.clone()
    bad[1, 0, 0, 0] = math.nan
    assert v.check_images(bad) is bad
    with pytest.raises(ValueError, match="NaN or infinity in 1 of its 2 images"):
        v.check_images(bad, "images", finite=True)


def test_check_tensor_ndim_module_and_dtype():
    with pytest.raises(ValueError, match=r"part_masks must be a tensor of shape \(N, parts"):
        v.check_tensor_ndim(torch.zeros(2, 3), "part_masks", "(N, parts, H, W)")
    with pytest.raises(ValueError, match="got list"):
        v.check_tensor_ndim([1], "image", "(C, H, W)")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module, got dict"):
        v.check_module({})
    assert v.check_float_dtype(torch.float64) is torch.float64
    with pytest.raises(TypeError, match=r"floating-point torch\.dtype"):
        v.check_float_dtype(torch.int32)


def test_check_split_labels_and_fractions():
    assert v.check_split_labels([0.0, 1.0, 1.0]).dtype == torch.int64
    with pytest.raises(ValueError, match="whole numbers"):
        v.check_split_labels([0.5, 1.0])
    with pytest.raises(ValueError, match="empty"):
        v.check_split_labels([])
    assert v.check_split_fractions(torch.tensor([0.5, 0.5])) == [0.5, 0.5]
    with pytest.raises(ValueError, match="at least two positive numbers summing to 1"):
        v.check_split_fractions([1.0])
    with pytest.raises(TypeError, match="sequence of floats"):
        v.check_split_fractions("0.5")


def test_the_merged_checks_keep_their_callers_messages():
    """The callers of the merged checks still say which argument is wrong."""
    from interp_lib.datasets import luminance_gradient, sphere
    from interp_lib.studies import paired_interval

    with pytest.raises(ValueError, match="confidence must lie in"):
        paired_interval([1.0, 2.0], [1.0, 0.0], confidence=1.0)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        sphere(10, d=2, noise=-1.0)
    with pytest.raises(ValueError, match="the ambient dimension D must be at least 3"):
        sphere(10, d=2, D=2)
    with pytest.raises(ValueError, match="strength must be a finite number >= 0"):
        luminance_gradient(torch.zeros(1, 3, 8, 8), strength=-1.0)
