"""Write ``baselines_maps.pt``: every attribution method's maps on fixed models and images.

Run once from the repository root, before a refactor of :mod:`interp_lib.baselines`
(``.venv/bin/python tests/data/make_baselines_maps.py``); ``tests/test_baselines_golden.py``
then checks that the refactored code gives the same maps. The models' weights and the
images are stored in the file, so a change of initialisation elsewhere does not matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp_lib.baselines import METHODS, attribute, cam, grad_cam

HERE = Path(__file__).parent


def cnn() -> nn.Sequential:
    """In-place ReLUs on purpose (the hooking methods run on a copy)."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


#: (label, method, kwargs) computed on the CNN; the prototype methods run on the ProtoPNet.
CASES: list[tuple[str, str, dict]] = [
    (m, m, {"layer": "3"} if m in ("grad_cam", "guided_grad_cam", "cam") else {})
    for m in METHODS
    if not m.startswith("prototype")
] + [
    ("ig_steps8", "integrated_gradients", {"n_steps": 8}),
    ("saliency_nt", "saliency", {"noise_tunnel": "smoothgrad_sq", "nt_samples": 3}),
    ("grad_cam_nt", "grad_cam", {"layer": "3", "noise_tunnel": "vargrad", "nt_samples": 3}),
    (
        "grad_cam_norelu_bicubic",
        "grad_cam",
        {"layer": "3", "relu": False, "interpolate_mode": "bicubic"},
    ),
    ("occlusion_abs", "occlusion", {"reduce": "abs_sum"}),
    ("random_seed3", "random", {"seed": 3}),
    ("gradient_shap_seed5", "gradient_shap", {"seed": 5}),
]
PROTO_CASES = [("prototype", {}), ("prototype_box", {}), ("prototype_box", {"percentile": 80.0})]
#: Every key of :func:`compute`.
LABELS = [label for label, _, _ in CASES] + [
    "prototype", "prototype_box", "prototype_box_p80", "cam()", "grad_cam()",
    "attribute_predicted",
]  # fmt: skip


def compute(
    net: nn.Module, proto: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Every case's maps; the global RNGs are re-seeded before each (captum uses them)."""
    maps = {}
    for i, (label, method, kw) in enumerate(CASES):
        torch.manual_seed(i)
        np.random.seed(i)  # noqa: NPY002 (captum's GradientShap draws with the global RNG)
        maps[label] = attribute(net, x, target, method=method, **kw)
    for method, kw in PROTO_CASES:
        label = method + ("_p80" if kw else "")
        maps[label] = attribute(proto, x, target, method=method, **kw)
    maps["cam()"] = cam(net, x, target, layer="4", upsample=False)
    maps["grad_cam()"] = grad_cam(net, x, target, layer="3")
    maps["attribute_predicted"] = attribute(net, x, method="saliency")
    return maps


def protopnet() -> nn.Module:
    from interp_lib.protopnet import ProtoPNet

    kw = {"widths": (4,), "batch_norm": False}
    try:
        return ProtoPNet("small_cnn", n_classes=3, n_prototypes_per_class=2, prototype_dim=4,
                         image_size=12, backbone_kwargs=kw)  # fmt: skip
    except TypeError:  # names before the conventions glossary
        return ProtoPNet("small_cnn", n_classes=3, n_prototypes_per_class=2, prototype_dim=4,
                         image_size=12, backbone_kwargs=kw)  # fmt: skip


def build() -> dict:
    torch.manual_seed(0)
    net = cnn().double().eval()
    torch.manual_seed(0)
    proto = protopnet().double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    target = torch.tensor([1, 2])
    maps = compute(net, proto, x, target)
    return {
        "cnn": net.state_dict(),
        "protopnet": proto.state_dict(),
        "x": x,
        "target": target,
        "maps": maps,
    }


if __name__ == "__main__":
    torch.save(build(), HERE / "baselines_maps.pt")
    print("wrote", HERE / "baselines_maps.pt")
