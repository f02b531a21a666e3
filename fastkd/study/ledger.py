"""The run ledger: one JSON record per finished (or failed) run, each written atomically."""
from __future__ import annotations

import json
from pathlib import Path

from ..rundir import write_json


class Ledger:
    def __init__(self, root: Path):
        self.dir = Path(root) / "ledger"

    def path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def get(self, run_id: str) -> dict | None:
        p = self.path(run_id)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None  # cannot happen with atomic writes; treat as not recorded

    def put(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.path(record["id"]), record)

    def records(self) -> list[dict]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except json.JSONDecodeError:
                continue
        return out
