"""Render the benchmark summaries into ONE table in the README.

Every benchmark script run with ``--json PATH`` writes a summary of this form::

    {"script": "bench/twonn.py", "date": "2026-11-30 00:10 UTC",
     "machine": "host (CPU model, 2 cores, Linux)", "threads": 1,
     "load_before": "3.1 2.9 2.5", "load_after": "3.4 3.0 2.6",
     "table": [{"what": "...", "setting": "...", "ours": "...",
                "peer": "...", "ratio": "..."}]}

``make bench`` writes them to ``bench/summaries/`` (tracked: the README's table can be
rebuilt from them) and then runs this script, which replaces the part of ``README.md``
between the marker comments ``<!-- bench:start -->`` and ``<!-- bench:end -->`` by one
markdown table (one row per entry of every summary: twonn, layer_profile, then the
others by name, or the files given) and, under it, the date, machine, threads and load
of each summary.

    python bench/report.py                                  # bench/summaries/*.json
    python bench/report.py bench/summaries/twonn.json --readme README.md
    python bench/report.py --print                          # to stdout only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
ORDER = ("twonn", "layer_profile")  # these summaries first, then the others by name
COLUMNS = ("what", "setting", "ours", "peer", "ratio")
HEADER = "| what | setting | ours | peer or reference | ratio (peer / ours) | source |"
ALIGN = "|---|---|---:|---:|---:|---|"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") if value is not None else ""


def render(summaries: list[dict]) -> str:
    """The markdown table (and its provenance lines) of the given summaries.

    Raises
    ------
    ValueError
        For a summary without ``script``, ``date``, ``machine`` or ``table``.
    """
    rows, notes = [HEADER, ALIGN], []
    for i, s in enumerate(summaries, 1):
        missing = [key for key in ("script", "date", "machine", "table") if key not in s]
        if missing:
            raise ValueError(
                f"benchmark summary {i} ({s.get('script', '?')}) lacks {missing}; write it "
                "with the bench script's --json option."
            )
        tag = f"[{i}]"
        for entry in s["table"]:
            cells = [_cell(entry.get(c)) for c in COLUMNS]
            rows.append("| " + " | ".join(cells) + f" | `{s['script']}` {tag} |")
        load = ""
        if s.get("load_before") or s.get("load_after"):
            load = f", load average {s.get('load_before', '?')} before, "
            load += f"{s.get('load_after', '?')} after"
        threads = f", {s['threads']} thread(s) per run" if s.get("threads") else ""
        note = s.get("note", "")
        notes.append(
            f"{tag} `{s['script']}`, {s['date']}, {s['machine']}{threads}{load}."
            + (f" {note}" if note else "")
        )
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with the part between :data:`START` and :data:`END` replaced by ``table``.

    Raises
    ------
    ValueError
        When the markers are missing or out of order.
    """
    a, b = text.find(START), text.find(END)
    if a < 0 or b < a:
        raise ValueError(
            f"the README needs the markers {START} and {END} (in this order) around the "
            "benchmark table; add them where the table goes."
        )
    return text[: a + len(START)] + "\n" + table + text[b:]


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("summaries", nargs="*", help="JSON summaries (default bench/summaries/*.json)")
    ap.add_argument("--readme", default=str(HERE.parent / "README.md"))
    ap.add_argument("--print", action="store_true", help="print the table, leave the README")
    args = ap.parse_args(argv)
    paths = args.summaries or sorted(
        (HERE / "summaries").glob("*.json"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.name),
    )
    if not paths:
        sys.exit("no summaries: run the bench scripts with --json bench/summaries/NAME.json")
    table = render(load(paths))
    if args.print:
        print(table)
        return
    readme = Path(args.readme)
    readme.write_text(replace_between_markers(readme.read_text(), table))
    print(f"{readme}: benchmark table from {len(paths)} summaries")


if __name__ == "__main__":
    main()
