"""One run of a study, whichever executor drives it: whether it still needs running, running it
(training, then its metrics), and the ledger record of its result."""
from __future__ import annotations

import errno
import logging
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

from ..config import from_dict
from ..errors import DataError, FastkdError
from ..metrics.analysis import analyze_run
from ..run import runinfo
from ..run.identity import digest
from ..run.runrecord import RunMetrics
from ..train.engine import train
from .ledger import Ledger
from .spec import RunSpec

log = logging.getLogger("fastkd.study")


def ledger_record(run: RunSpec, identity: dict, status: str, **fields) -> dict:
    return {"id": run.id, "kind": run.kind, "status": status, "labels": run.labels, "teacher_id": run.teacher_id,
            "identity": digest(identity), "identity_fields": identity, "config": run.config.to_dict(), **fields}


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` (None: left as it is) while inside."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def needs_running(run: RunSpec, identity: dict, ledger: Ledger, *, retry_failed: bool, set_aside: bool = True) -> bool:
    """False for a run already recorded done, or recorded failed with the same settings for a
    reason of its own (a NaN loss: the same again), unless retrying. A failure of the machine
    (a full disk, a killed worker) is retried by a plain rerun, and a skipped student looks again
    at its teacher. A done record is never touched again."""
    rec = ledger.get(run.id, set_aside=set_aside)
    if rec is None:
        return True
    if rec["status"] == "done":
        return False
    if rec["status"] == "skipped" or rec.get("environmental"):
        return True
    same = rec.get("identity") in (None, digest(identity))
    return not same or retry_failed


# errors of the machine, not of the run: the same run may well finish when tried again
ENVIRONMENTAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM}


def is_environmental(exc: BaseException | None) -> bool:
    """Whether an exception (or one it was raised from) is a failure of the machine."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENTAL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def teacher_done(run: RunSpec, ledger: Ledger) -> bool:
    if not run.teacher_id:
        return True
    rec = ledger.get(run.teacher_id, set_aside=False)
    return bool(rec and rec["status"] == "done")


def execute_run(config: dict, run_dir: str, kind: str, *, knn_k: int, cd_variants: list, device, progress: bool,
                main: bool = True) -> dict:
    """Train (or finish, or find finished) one run and compute its metrics. Returns
    {"status": "done", "metrics", "analysis", "seconds"} or {"status": "failed", "error",
    "traceback"} for fastkd's own errors; any other exception (a bug) propagates."""
    cfg = from_dict(config)
    run_dir = Path(run_dir)
    start = time.perf_counter()
    try:
        # overwrite: the study owns its runs/ folder, and finished runs never get here; so a run dir
        # holding other settings is a failed or unfinished run whose settings were fixed in place
        metrics = train(cfg, run_dir, kind=kind, progress=progress, overwrite=True)
        analysis = None
        if main:
            try:
                analysis = analyze_run(run_dir, device=device, knn_k=knn_k, cd_variants=tuple(cd_variants))
            except DataError as exc:  # unreadable saved outputs: finish the run again, once
                log.warning("  %s; finishing the run again", exc)
                _set_aside_outputs(run_dir)
                metrics = train(cfg, run_dir, kind=kind, progress=progress)
                analysis = analyze_run(run_dir, device=device, knn_k=knn_k, cd_variants=tuple(cd_variants))
    except (FastkdError, FloatingPointError) as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5),
                "environmental": is_environmental(exc)}
    return {"status": "done", "metrics": RunMetrics.from_dict(metrics).to_dict(history=False), "analysis": analysis,
            "seconds": time.perf_counter() - start}


def record_result(run: RunSpec, identity: dict, result: dict, ledger: Ledger, num_processes: int = 1) -> dict:
    """The driver's part: one atomic ledger record per finished or failed run."""
    if result["status"] == "done":
        rec = ledger_record(run, identity, "done", metrics=result["metrics"], analysis=result["analysis"],
                      seconds=result["seconds"], environment=result.get("environment") or runinfo.environment(num_processes))
    else:
        environmental = bool(result.get("environmental"))
        rec = ledger_record(run, identity, "failed", error=result["error"], traceback=result.get("traceback", ""),
                      environmental=environmental)
        log.warning("  %s failed: %s%s", run.id, result["error"],
                    " (a failure of the machine: the next run of the same command tries it again)" if environmental else "")
    ledger.put(rec)
    return rec


def _set_aside_outputs(run_dir: Path) -> None:
    """A finished run whose saved outputs are unreadable: move them and metrics.json aside, so
    the run finishes again (from its last checkpoint when it has one)."""
    for name in ("test_outputs.npz", "train_outputs.npz", "metrics.json"):
        p = run_dir / name
        if p.exists():
            os.replace(p, p.with_name(p.name + ".corrupt"))
