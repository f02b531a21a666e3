"""A study's report folder: the tables as CSV and JSON, the plots, and summary.md reading them."""
from __future__ import annotations

import json
from pathlib import Path

from ..run.atomic import write_atomic
from .plots import write_plots
from .summary import study_context, summary_text
from .tables import CSV_COLUMNS, build_tables, csv_text


def write_report(records: list[dict], out_dir, *, reference_augment: str = "none", unreadable=()) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(records, reference_augment)
    paths = {}
    for name, rows in tables.items():
        write_atomic(out / f"{name}.csv", csv_text(rows, CSV_COLUMNS.get(name)), what="report table")
        paths[f"{name}.csv"] = out / f"{name}.csv"
    write_atomic(out / "tables.json", json.dumps(tables, indent=2, default=str) + "\n", what="report tables")
    paths["tables.json"] = out / "tables.json"
    plots = write_plots(records, tables, out)
    paths |= {name: p for name, (p, _) in plots.items()}
    text = summary_text(tables, study_context(records), reference_augment, unreadable,
                        {name: what for name, (_, what) in plots.items()})
    write_atomic(out / "summary.md", text, what="report summary")
    paths["summary.md"] = out / "summary.md"
    paths["summary_text"] = text
    return paths
