"""The README's Python examples run verbatim, in order, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_examples_for_each_part():
    text = "\n".join(BLOCKS)
    for name in ("twonn(", "layer_ids(", "explain(", "attribute(", "fit("):
        assert name in text, f"the README's examples no longer show {name}"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the third example trains the zoo's birds models on a cold cache
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert run.returncode == 0, f"README example {index + 1} failed:\n{run.stderr[-4000:]}"
