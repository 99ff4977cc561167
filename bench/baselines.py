"""Time per image of every explanation method on the same model, side by side.

    .venv/bin/python bench/baselines.py [--size 64] [--batch 8] [--repeats 3] [--threads N]

Models (untrained weights: timing only): a plain CNN, ``small_cnn`` trunk (32, 64, 128)
+ global average pooling + linear, and a ProtoPNet on the same trunk (10 classes x 10
prototypes, D = 128). Every captum/CAM method runs on the CNN, the prototype methods on
the ProtoPNet. Peer measured in the same run: pytorch-grad-cam's ``GradCAM`` on the same
CNN and layer (package ``grad-cam``), against our ``grad_cam``. Also times the RISE
deletion and insertion curves for one map. Medians over ``--repeats`` runs after a
warm-up call. ``--threads`` calls ``torch.set_num_threads`` (default: torch's choice).

``--birds`` instead trains a plain CNN on the procedural birds, then a ProtoPNet on a
copy of its trained trunk (the paper's ProtoPNets start from a pretrained backbone), and
prints the comparison table (see ``birds_comparison``).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings

# Run as a script, bench/ is sys.path[0] and bench/profile.py would shadow the standard
# library's ``profile`` (which torch._dynamo imports through cProfile).
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from interp_lib.baselines import METHODS, attribute, deletion, get_method, insertion  # noqa: E402
from interp_lib.networks import small_cnn  # noqa: E402
from interp_lib.protopnet import ProtoPNet  # noqa: E402

LAYER = "features.conv3"


class PlainCNN(nn.Module):
    """The ProtoPNet backbone with global average pooling and a linear classifier."""

    def __init__(self, n_classes: int = 10, widths=(32, 64, 128)) -> None:
        super().__init__()
        self.features = small_cnn(widths=widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timing(size: int, batch: int, repeats: int) -> None:
    torch.manual_seed(0)
    cnn = PlainCNN().eval()
    proto = ProtoPNet(
        "small_cnn", n_classes=10, n_prototypes_per_class=10, prototype_dim=128, image_size=size
    ).eval()
    x = torch.rand(batch, 3, size, size)
    rows = []
    for method in METHODS:
        spec = get_method(method)
        model = proto if spec.needs_protopnet else cnn
        kw = {"layer": LAYER} if spec.needs_layer else {}
        s = _median_seconds(
            lambda m=model, k=method, kw=kw: attribute(m, x, method=k, **kw), repeats
        )
        rows.append((method, type(model).__name__, s / batch * 1e3))

    from pytorch_grad_cam import GradCAM

    peer_model = copy.deepcopy(cnn)
    for m in peer_model.modules():  # pytorch-grad-cam reads activations after in-place ReLUs
        if getattr(m, "inplace", False):
            m.inplace = False
    with GradCAM(model=peer_model, target_layers=[peer_model.features.conv3]) as gc:
        peer = _median_seconds(lambda: gc(x, targets=None), repeats) / batch * 1e3
    sal = attribute(cnn, x, method="saliency")
    dele = _median_seconds(lambda: deletion(cnn, x, sal), repeats) / batch * 1e3
    ins = _median_seconds(lambda: insertion(cnn, x, sal), repeats) / batch * 1e3

    print(
        f"threads={torch.get_num_threads()}  images {batch} x 3 x {size} x {size}  (median of {repeats})"
    )
    print(f"{'method':<22}{'model':<11}{'ms/image':>10}")
    for method, model, ms in rows:
        print(f"{method:<22}{model:<11}{ms:>10.2f}")
    ours = next(ms for m, _, ms in rows if m == "grad_cam")
    print(f"{'pytorch-grad-cam':<22}{'PlainCNN':<11}{peer:>10.2f}   ours/peer = {ours / peer:.2f}")
    steps = size  # default step = image width -> size steps
    print(
        f"{'deletion curve':<22}{'PlainCNN':<11}{dele:>10.2f}   ({steps + 1} forward passes per image)"
    )
    print(f"{'insertion curve':<22}{'PlainCNN':<11}{ins:>10.2f}")


def birds_comparison(
    n_per_class: int,
    size: int,
    epochs: int,
    n_eval: int,
    classes: int,
    difficulty: float,
    proto_epochs: int,
) -> None:
    """Train a ProtoPNet and a plain CNN (same small_cnn trunk) on the birds, compare."""
    from torch.utils.data import DataLoader

    from interp_lib.baselines import compare, summarize
    from interp_lib.datasets.birds import birds
    from interp_lib.protopnet import prototype_part_metrics
    from interp_lib.protopnet.stages import Schedule
    from interp_lib.protopnet.train import fit

    torch.manual_seed(0)
    kw = {"image_size": size, "classes": classes, "difficulty": difficulty}
    train = birds(n_per_class, seed=0, **kw)
    test = birds(max(1, n_eval // classes), seed=1, return_masks=True, **kw)
    mean = train.images.mean((0, 2, 3)).view(1, 3, 1, 1)
    std = train.images.std((0, 2, 3)).view(1, 3, 1, 1)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x - mean) / std

    train_n = torch.utils.data.TensorDataset(norm(train.images), train.labels)
    loader = DataLoader(train_n, batch_size=32, shuffle=True)
    push_loader = DataLoader(train_n, batch_size=64, shuffle=False)
    widths = (32, 64, 128)

    # The plain CNN first; ProtoPNet then starts from its trained trunk, as the paper's
    # ProtoPNets start from an ImageNet-pretrained backbone.
    t0 = time.perf_counter()
    cnn = PlainCNN(train.n_classes, widths)
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    for _ in range(epochs):
        cnn.train()
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(cnn(xb), yb).backward()
            opt.step()
    cnn.eval()
    t_cnn = time.perf_counter() - t0

    t0 = time.perf_counter()
    val = birds(max(1, n_eval // classes), seed=2, **kw)
    val_loader = DataLoader(
        torch.utils.data.TensorDataset(norm(val.images), val.labels), batch_size=64
    )
    proto = ProtoPNet(
        copy.deepcopy(cnn.features), n_classes=train.n_classes, n_prototypes_per_class=5,
        prototype_dim=64, image_size=size,
    )  # fmt: skip
    fit(proto, loader, val_loader=val_loader, push_loader=push_loader,
        schedule=Schedule.quick(proto_epochs), device="cpu", progress=False)  # fmt: skip
    proto.eval()
    t_proto = time.perf_counter() - t0

    xt, yt, mt = norm(test.images[:n_eval]), test.labels[:n_eval], test.masks[:n_eval]
    with torch.no_grad():
        acc = {name: float((m(norm(test.images)).argmax(1) == test.labels).float().mean())
               for name, m in (("protopnet", proto), ("cnn", cnn))}  # fmt: skip
    print(f"birds {size}px, difficulty {difficulty}, {train.n_classes} classes, "
          f"{len(train)} train images; cnn {epochs} epochs, then protopnet on its trunk "
          f"{proto_epochs} epochs")  # fmt: skip
    print(f"test accuracy ({len(test)} images): protopnet {acc['protopnet']:.3f} ({t_proto:.0f} s), "
          f"cnn {acc['cnn']:.3f} ({t_cnn:.0f} s)")  # fmt: skip
    data = [(xt[i : i + 16], yt[i : i + 16], mt[i : i + 16]) for i in range(0, len(xt), 16)]
    methods = ["random", "saliency", ("integrated_gradients", {"n_steps": 16}), "guided_backprop",
               "grad_cam", "guided_grad_cam", "occlusion", "prototype", "prototype_box"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare({"protopnet": proto, "cnn": cnn}, data, methods,
                        layers={"protopnet": LAYER, "cnn": LAYER}, progress=False)  # fmt: skip
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(summarize(result))
    parts = prototype_part_metrics(proto, xt, mt, yt)
    print("prototype part metrics (birds part masks):",
          {k: round(v.score, 3) for k, v in parts.items()})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--birds", action="store_true", help="run the trained comparison instead")
    ap.add_argument("--n-per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n-eval", type=int, default=64)
    ap.add_argument("--proto-epochs", type=int, default=8)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--difficulty", type=float, default=0.0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.birds:
        birds_comparison(
            args.n_per_class,
            args.size,
            args.epochs,
            args.n_eval,
            args.classes,
            args.difficulty,
            args.proto_epochs,
        )
    else:
        timing(args.size, args.batch, args.repeats)


if __name__ == "__main__":
    main()
