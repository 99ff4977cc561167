"""Write every executable chapter as a Jupyter notebook under ``notebooks/``.

The chapters are MyST text notebooks (``book/*.md``); Colab, Binder and plain Jupyter
want ``.ipynb`` that need none of the book's build tools. ``make notebooks`` regenerates
them (no outputs, plus a first cell that installs ``interp_lib`` when it is missing, as
on Colab), and a test checks that the committed notebooks match their sources and run in
a kernel without MyST-NB.

In the notebooks, the book's MyST markup becomes plain Markdown: citations become
"Author et al. (year)", ``{glue:text}`` references name the printed value (the chapters'
``interp_lib.book.glue`` prints it outside a book build), ``{doc}``/``{func}`` become text,
and dropdown admonitions (exercise solutions) become ``<details>`` toggles.

    python book/_notebooks.py [OUT_DIR]
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

import nbformat
import yaml
from myst_nb.core.read import read_myst_markdown_notebook

ROOT = Path(__file__).resolve().parent.parent


@cache
def repository() -> tuple[str, str]:
    """The book's repository URL and branch, read from ``_config.yml`` (their one home)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"].get("branch", "main")


def setup_cell() -> str:
    url, branch = repository()
    return f"""\
# Colab or a fresh environment: install interp_lib (and the book's extras) if missing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("interp_lib") is None:  # until a release is on PyPI
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "interp_lib[viz,captum] @ git+{url}@{branch}"], check=True)
if "google.colab" in sys.modules:  # Colab draws ipywidgets 8 with its custom widget manager
    from google.colab import output

    output.enable_custom_widget_manager()"""


@cache
def bibliography() -> dict[str, tuple[str, str]]:
    """``{key: (authors for a citation, year)}`` from the book's BibTeX file."""
    text = (ROOT / "book" / "references.bib").read_text()
    out = {}
    for entry in re.split(r"\n(?=@)", text):
        key = re.match(r"@\w+\{([^,]+),", entry.strip())
        if not key:
            continue
        author = re.search(r"author\s*=\s*\{(.+?)\}\s*,?\s*\n", entry)
        year = re.search(r"year\s*=\s*\{?(\d{4})", entry)
        names = (
            [a.split(",")[0].strip(" {}") for a in author.group(1).split(" and ")]
            if author
            else ["?"]
        )
        who = (
            names[0]
            if len(names) == 1
            else (f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al.")
        )
        out[key.group(1).strip()] = (who, year.group(1) if year else "n.d.")
    return out


def _cite(kind: str, keys: str) -> str:
    refs = [bibliography().get(k.strip(), (k.strip(), "")) for k in keys.split(",")]
    if kind == "t":
        return "; ".join(f"{who} ({year})" for who, year in refs)
    return "(" + "; ".join(f"{who}, {year}" for who, year in refs) + ")"


_ADMONITION = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?:admonition|dropdown|toggle)\}[ \t]*(?P<title>[^\n]*)\n"
    r"(?P<opts>(?::[\w-]+:[^\n]*\n)*)(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.M | re.S,
)


def _details(m: re.Match) -> str:
    title = m["title"].strip() or "Show"
    if m["fence"].startswith("`") and "dropdown" not in m["opts"] and "{admonition}" in m[0]:
        return f"**{title}**\n\n{m['body'].strip()}\n"
    return f"<details>\n<summary>{title}</summary>\n\n{m['body'].strip()}\n\n</details>\n"


def plain_markdown(text: str) -> str:
    """MyST roles and directives of a chapter's Markdown cell as plain Markdown."""
    text = _ADMONITION.sub(_details, text)
    text = re.sub(r"\{cite:([tp])\}`([^`]+)`", lambda m: _cite(m[1], m[2]), text)
    text = re.sub(
        r"\{glue:text\}`([^`:]+)(?::[^`]*)?`", r"`\1` (a value printed by a code cell)", text
    )
    text = re.sub(r"\{glue\}`([^`]+)`", r"`\1` (a value printed by a code cell)", text)
    text = re.sub(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", r"the chapter *\1*", text)
    text = re.sub(r"\{(?:func|class|meth|mod|attr|obj)\}`~?([^`]+)`", r"`\1`", text)
    return text


def is_notebook(path: Path) -> bool:
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def to_notebook(path: Path) -> nbformat.NotebookNode:
    nb = read_myst_markdown_notebook(path.read_text())
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source)
    nb.cells.insert(0, nbformat.v4.new_code_cell(setup_cell(), metadata={"tags": ["colab-setup"]}))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{path.stem}-{i}"  # stable ids: regenerating changes nothing
    return nb


def main(out: str = "notebooks") -> None:
    out_dir = ROOT / out
    out_dir.mkdir(exist_ok=True)
    for path in sorted((ROOT / "book").glob("*.md")):
        if is_notebook(path):
            nbformat.write(to_notebook(path), out_dir / f"{path.stem}.ipynb")
            print(f"wrote {out}/{path.stem}.ipynb")


if __name__ == "__main__":
    main(*sys.argv[1:])
