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

A summary's ``table`` is a list of rows, or (``bench/protopnet_birds.py --variants``) a
``{variant: {"summary": {...}}}`` dict, rendered as one row per variant from its means,
standard deviations and t-interval. The summaries in :data:`BOOK_ONLY` have another
format, read by their chapter; they are left out of the README.

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
ORDER = (  # these first, then the others by name
    "twonn",
    "knn_faiss",
    "knn_faiss_epyc",
    "layer_profile",
    "layer_profile_passive",
)
#: Summaries that only their book chapter reads (no README rows), and why.
BOOK_ONLY = {
    "id_generalisation": "the chapter id_generalisation reads its per-network rows",
    "notebooks": "each chapter states its own row at its top (interp_lib.book.run_time)",
}
COLUMNS = ("what", "setting", "ours", "peer", "ratio")
HEADER = "| what | setting | ours | peer or reference | ratio (peer / ours) | source |"
ALIGN = "|---|---|---:|---:|---:|---|"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") if value is not None else ""


def _variant_rows(s: dict) -> list[dict]:
    """README rows of a variants summary (``bench/protopnet_birds.py --variants``): per
    variant, ProtoPNet against its same-trunk CNN over the seeds."""
    default = s.get("zoo_default", {})
    default = f"{default.get('last_layer')}/{default.get('prototype_init')}"
    rows = []
    for name, entry in s["table"].items():
        m = entry["summary"]
        rows.append(
            {
                "what": f"ProtoPNet vs its same-trunk CNN, procedural birds: {name}"
                + (" (zoo default)" if name == default else ""),
                "setting": f"{m['n_seeds']} seeds, {s.get('threads', '?')} thread(s) per run",
                "ours": f"ProtoPNet {m['protopnet']:.3f} ± {m['protopnet_std']:.3f}; own-class "
                f"evidence {m['evidence']:.2f}; on bird {m['on_bird']:.2f} "
                f"(chance {m['chance']:.2f})",
                "peer": f"CNN {m['cnn']:.3f} ± {m['cnn_std']:.3f}",
                "ratio": f"gap {100 * m['diff']:+.1f} points, 95 % t-interval "
                f"[{100 * m['diff_low']:+.1f}, {100 * m['diff_high']:+.1f}]",
            }
        )
    return rows


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
        entries = _variant_rows(s) if isinstance(s["table"], dict) else s["table"]
        for entry in entries:
            cells = [_cell(entry.get(c)) for c in COLUMNS]
            rows.append("| " + " | ".join(cells) + f" | `{s['script']}` {tag} |")
        load = f", load average {s['load']}" if s.get("load") else ""
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


def default_paths(folder: Path = HERE / "summaries") -> list[Path]:
    """The README's summaries in ``folder``, in table order (:data:`ORDER` first, then by
    name), without those of :data:`BOOK_ONLY`."""
    return sorted(
        (p for p in folder.glob("*.json") if p.stem not in BOOK_ONLY),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.name),
    )


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("summaries", nargs="*", help="JSON summaries (default bench/summaries/*.json)")
    ap.add_argument("--readme", default=str(HERE.parent / "README.md"))
    ap.add_argument("--print", action="store_true", help="print the table, leave the README")
    args = ap.parse_args(argv)
    paths = args.summaries or default_paths()
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
