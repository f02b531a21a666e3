"""Run a study: every planned run not yet in the ledger, then the report.

Killing the study at any point and starting the same command again finishes the grid: finished
runs are skipped (their ledger record exists), a run cut mid-training resumes from its last
checkpoint, and a record is only ever written whole. A failed run (e.g. NaN loss) is recorded as
failed with its error and does not stop the grid; students of a failed teacher are recorded as
skipped.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import yaml

from .. import runinfo
from ..engine import TrainingError, train
from ..metrics.analysis import analyze_run
from ..rundir import write_atomic
from .ledger import Ledger
from .spec import StudyConfig, plan


def _record(run, status: str, **fields) -> dict:
    return {"id": run.id, "kind": run.kind, "status": status, "labels": run.labels, "teacher_id": run.teacher_id,
            "config_hash": run.config.digest(), "config": run.config.to_dict(), **fields}


def run_study(sc: StudyConfig, out, *, retry_failed: bool = False, progress: bool = True, report: bool = True) -> list[dict]:
    from accelerate import PartialState
    out = Path(out)
    state = PartialState()
    main = state.is_main_process
    runs = plan(sc, out)
    ledger = Ledger(out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _check_same_study(out, sc)
        write_atomic(out / "study.yaml", yaml.safe_dump(asdict(sc), sort_keys=False))
    state.wait_for_everyone()
    for n, run in enumerate(runs, 1):
        rec = ledger.get(run.id)
        if rec and rec.get("config_hash") == run.config.digest() and (rec["status"] == "done" or
                                                                     (rec["status"] != "done" and not retry_failed)):
            continue
        if run.teacher_id:
            trec = ledger.get(run.teacher_id)
            if not trec or trec["status"] != "done":
                if main:
                    ledger.put(_record(run, "skipped", error=f"teacher {run.teacher_id} did not finish"))
                state.wait_for_everyone()
                continue
        if main and progress:
            print(f"[{n}/{len(runs)}] {run.id}", flush=True)
        start = time.perf_counter()
        try:
            metrics = train(run.config, out / "runs" / run.id, kind=run.kind, progress=progress)
        except (TrainingError, FloatingPointError, RuntimeError, ValueError) as exc:
            if main:
                ledger.put(_record(run, "failed", error=f"{type(exc).__name__}: {exc}",
                                   traceback=traceback.format_exc(limit=5)))
                print(f"  failed: {exc}", flush=True)
            state.wait_for_everyone()
            continue
        if main:
            analysis = analyze_run(out / "runs" / run.id, knn_k=sc.knn_k, cd_variants=tuple(sc.cd_variants))
            metrics = {k: v for k, v in metrics.items() if k != "history"}
            ledger.put(_record(run, "done", metrics=metrics, analysis=analysis, seconds=time.perf_counter() - start,
                               environment=runinfo.environment(state.num_processes)))
        state.wait_for_everyone()
    records = ledger.records()
    planned = {r.id for r in runs}
    records = [r for r in records if r["id"] in planned]
    if report and main:
        from ..report import write_report
        paths = write_report(records, out / "report", reference_augment=sc.reference_augment)
        # the results table is the point of the run: printed even without progress output
        print(paths["summary_text"])
        print("\nwritten:", *[str(p) for k, p in paths.items() if k != "summary_text"], sep="\n  ")
    return records


def _check_same_study(out: Path, sc: StudyConfig) -> None:
    """A folder holds one study: refuse to mix a different grid into an existing ledger."""
    saved = out / "study.yaml"
    if saved.is_file():
        from ..config import diff
        from ..rundir import RunDirError
        old = yaml.safe_load(saved.read_text()) or {}
        changes = diff(old, json.loads(json.dumps(asdict(sc))))
        # growing the grid (more seeds, augments, students) is allowed: finished runs are reused
        allowed = ("seeds", "augments", "students", "teachers", "distill", "scratch", "cd_variants", "knn_k", "name")
        blocking = [c for c in changes if not c.split(":")[0].split(".")[0] in allowed]
        if blocking:
            raise RunDirError(f"{out} holds a different study ({'; '.join(blocking[:5])}); choose another --out")
