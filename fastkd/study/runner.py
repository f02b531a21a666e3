"""Run a study: every planned run not yet in the ledger, then the report.

Killing the study at any point and starting the same command again finishes the grid: finished
runs are skipped (their ledger record exists), a run cut mid-training resumes from its last
checkpoint, and a record is only ever written whole. A run is matched to its record by its
identity (what it computes, fastkd.run.identity), so the study folder may be spelled any way,
moved or copied. A done record is never overwritten by a worse one. A failed run (e.g. NaN
loss) is recorded as failed with its error and does not stop the grid; students of a failed
teacher are recorded as skipped. Only fastkd's own errors count as failures: a bug crashes.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import yaml

from ..config import ConfigError
from ..data.fingerprint import data_fingerprint
from ..errors import RunDirError
from ..pipelines import backend_reads
from ..report import write_report
from ..run.atomic import write_atomic
from ..run.identity import digest, explain_difference, run_identity
from ..run.lock import FolderLock
from .ledger import Ledger
from .ray_executor import run_on_ray
from .runs import execute_run, ledger_record, needs_running, record_result, teacher_done, torch_threads
from .spec import RunSpec, StudyConfig, plan

log = logging.getLogger("fastkd.study")


def plan_identities(runs: list[RunSpec]) -> dict[str, dict]:
    """Each planned run's identity, computed the way its trainer will (teachers before students)."""
    fingerprints: dict = {}
    out: dict[str, dict] = {}
    for run in runs:
        d = run.config.data
        key = json.dumps([d.name, d.backend, str(Path(d.path).expanduser().resolve()) if d.path else None,
                          d.download, d.cache_dir])
        if key not in fingerprints:
            fingerprints[key] = data_fingerprint(d, backend_reads(d.backend))
        teacher = digest(out[run.teacher_id]) if run.teacher_id else None
        out[run.id] = run_identity(run.config, run.kind, data=fingerprints[key], teacher=teacher)
    return out


def _check_finished_runs_unchanged(runs, identities, ledger: Ledger, out: Path) -> None:
    """A finished run whose settings changed would mix two studies in one report: refuse."""
    changed = []
    for run in runs:
        rec = ledger.get(run.id)
        if rec and rec["status"] == "done" and rec.get("identity") not in (None, digest(identities[run.id])):
            changed.append(f"{run.id} ({explain_difference(rec.get('identity_fields', {}), identities[run.id], 3)})")
    if changed:
        raise RunDirError(f"{out} holds finished runs computed with other settings: {'; '.join(changed[:4])}"
                          f"{' ...' if len(changed) > 4 else ''}. Only runs that failed or did not run yet may change; "
                          "choose another --out for a different study")


def run_study(sc: StudyConfig, out, *, retry_failed: bool = False, progress: bool = True, report: bool = True,
              executor: str = "sequential", ray_options: dict | None = None,
              threads_per_run: int | None = None) -> list[dict]:
    """Run every planned run not yet recorded, then write the report. ``executor="ray"`` spreads
    the runs over a Ray cluster (``fastkd.study.ray_executor``); the default runs them one after
    another in this process (all processes, under ``accelerate launch``). ``threads_per_run``:
    torch's CPU threads in each run (default: torch's, the machine's core count). On the CPU it
    fixes the arithmetic: weight gradients sum in an order that depends on the thread count, so
    the two executors give the same results when their runs use the same count."""
    from accelerate import PartialState
    if threads_per_run is not None and threads_per_run < 1:
        raise ConfigError(f"--threads-per-run: must be >= 1, got {threads_per_run}")
    out = Path(out)
    state = PartialState()
    main = state.is_main_process
    runs = plan(sc, out)
    identities = plan_identities(runs)
    ledger = Ledger(out)
    lock = FolderLock(out, what="study folder")
    if main:
        lock.acquire()
    try:
        if main:
            for p, why in ledger.scan()[1]:
                dest = ledger.set_aside(p)
                log.warning("warning: ledger record %s is unreadable (%s); set aside as %s, its run is redone",
                            p, why, dest.name)
            _check_finished_runs_unchanged(runs, identities, ledger, out)
            write_atomic(out / "study.yaml", yaml.safe_dump(asdict(sc), sort_keys=False), what="study spec")
        state.wait_for_everyone()
        if executor == "ray":
            run_on_ray(runs, identities, sc, out, ledger, retry_failed=retry_failed, threads_per_run=threads_per_run,
                       **(ray_options or {}))
        elif executor == "sequential":
            with torch_threads(threads_per_run):
                for n, run in enumerate(runs, 1):
                    _run_one(run, identities[run.id], n, len(runs), sc, out, ledger, retry_failed, progress, state)
        else:
            raise ValueError(f"executor must be sequential or ray, got {executor!r}")
        planned = {r.id for r in runs}
        records = [r for r in ledger.records() if r["id"] in planned]
        if report and main:
            paths = write_report(records, out / "report", reference_augment=sc.reference_augment)
            # the results table is the point of the run: shown even without progress output
            log.info("%s", paths["summary_text"])
            log.info("\nwritten:\n  %s", "\n  ".join(str(p) for k, p in paths.items() if k != "summary_text"))
        return records
    finally:
        lock.release()


def _run_one(run: RunSpec, identity: dict, n: int, total: int, sc: StudyConfig, out: Path, ledger: Ledger,
             retry_failed: bool, progress: bool, state) -> None:
    main = state.is_main_process
    if not needs_running(run, identity, ledger, retry_failed=retry_failed, set_aside=main):
        return
    if not teacher_done(run, ledger):
        if main:
            ledger.put(ledger_record(run, identity, "skipped", error=f"teacher {run.teacher_id} did not finish"))
        state.wait_for_everyone()
        return
    if main and progress:
        log.info("[%d/%d] %s", n, total, run.id)
    device = "cpu" if run.config.device == "cpu" else state.device  # the metrics run where the run trained
    result = execute_run(run.config.to_dict(), str(out / "runs" / run.id), run.kind, knn_k=sc.knn_k,
                         cd_variants=sc.cd_variants, device=device, progress=progress, main=main)
    if main:
        record_result(run, identity, result, ledger, state.num_processes)
    state.wait_for_everyone()
