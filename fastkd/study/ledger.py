"""The run ledger: one JSON record per finished (or failed / skipped) run, each written atomically.

A record that cannot be read (truncated, not UTF-8, not a record) is never silently dropped:
``scan`` names it, and the study sets it aside (renamed ``.corrupt``) and redoes its run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..run.atomic import write_json

STATUSES = ("done", "failed", "skipped")


def check_record(rec, run_id: str) -> str | None:
    """Why ``rec`` is not a valid record of ``run_id`` (None when it is)."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    if rec.get("id") != run_id:
        return f"its id {rec.get('id')!r} does not match the file name"
    if rec.get("status") not in STATUSES:
        return f"status {rec.get('status')!r} is not one of {', '.join(STATUSES)}"
    if rec.get("kind") not in ("teacher", "student") or not isinstance(rec.get("labels"), dict):
        return "kind or labels missing"
    if rec["status"] == "done":
        m, a = rec.get("metrics"), rec.get("analysis")
        if not isinstance(m, dict) or not isinstance(m.get("test_accuracy"), (int, float)) or not isinstance(a, dict):
            return "a done record without metrics.test_accuracy and analysis"
        if not isinstance(rec.get("config"), dict):
            return "a done record without its config"
    return None


class Ledger:
    def __init__(self, root: Path):
        self.dir = Path(root) / "ledger"

    def path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def _read(self, p: Path) -> tuple[dict | None, str | None]:
        try:
            rec = json.loads(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            return None, "not UTF-8 text"
        except ValueError as exc:
            return None, f"not valid JSON ({exc})"
        except OSError as exc:
            return None, f"unreadable ({exc.strerror or exc})"
        why = check_record(rec, p.stem)
        return (None, why) if why else (rec, None)

    def get(self, run_id: str, *, set_aside: bool = True) -> dict | None:
        """The record of ``run_id``; a corrupt one is renamed ``.corrupt`` (so its run is redone)."""
        p = self.path(run_id)
        if not p.is_file():
            return None
        rec, why = self._read(p)
        if why and set_aside:
            self.set_aside(p)
        return rec

    def set_aside(self, p: Path) -> Path:
        dest = p.with_name(p.name + ".corrupt")
        n = 1
        while dest.exists():
            dest = p.with_name(f"{p.name}.corrupt{n}")
            n += 1
        os.replace(p, dest)
        return dest

    def put(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.path(record["id"]), record)

    def scan(self) -> tuple[list[dict], list[tuple[Path, str]]]:
        """(valid records, [(file, why) for each record that cannot be read]); changes nothing."""
        if not self.dir.is_dir():
            return [], []
        good, bad = [], []
        for p in sorted(self.dir.glob("*.json")):
            if p.name.startswith("."):
                continue
            rec, why = self._read(p)
            if why:
                bad.append((p, why))
            else:
                good.append(rec)
        return good, bad

    def records(self) -> list[dict]:
        return self.scan()[0]
