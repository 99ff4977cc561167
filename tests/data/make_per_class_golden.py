"""Writes per_class_golden.json: the per-class numbers of the two implementations before
they were merged into ``studies.class_profiles``. Run from tests/ at commit 167605f
(``python data/make_per_class_golden.py /tmp/folder``); kept to show how the file was made.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from test_profile_cli import CLASSES, tiny_net
from test_studies_per_class import TENSOR_RUNS, tensor_data

from interp_lib.profile import cli
from interp_lib.studies import class_profiles

out = {}
net, x, y = tensor_data()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for name, kw in TENSOR_RUNS.items():
        prof = class_profiles(net, x, y, **kw)
        out[name] = {
            k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in vars(prof).items()
        }
root = Path(sys.argv[1])  # the ImageFolder of test_profile_cli's fixture
rng = np.random.default_rng(0)
for c, name in enumerate(CLASSES):
    (root / name).mkdir(parents=True)
    for i in range(14 + c):
        pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
torch.manual_seed(1)
torch.save(tiny_net().state_dict(), root.parent / "tiny.pt")
for est in ("twonn", "mle", "pca"):
    summary = cli.run(
        ["test_profile_cli:tiny_net", str(root), "--out", str(root.parent / f"run_{est}"),
         "--weights", str(root.parent / "tiny.pt"), "--image-size", "16", "--n-per-class", "12",
         "--n-resamples", "3", "--batch-size", "5", "--estimator", est, "--no-figure",
         "--seed", "4"]
    )  # fmt: skip
    summary.pop("config")
    out["cli_" + est] = summary
(Path(__file__).parent / "per_class_golden.json").write_text(json.dumps(out, indent=0))
