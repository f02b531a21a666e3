"""A study's runs as Ray tasks: every device and machine of a Ray cluster works on one grid.

The driver (the process running ``fastkd study --executor ray``) owns all bookkeeping: it plans,
decides what still needs running, writes every ledger record (atomically, as the sequential
executor does) and the report. Each run is an ordinary fastkd run in its own folder, trained by
a task in a Ray worker process with ``num_cpus`` / ``num_gpus`` resources (``--gpus-per-run
0.25`` packs four small runs on a GPU). A student is submitted as soon as its own teacher is
recorded done. A worker killed mid-run is retried by Ray and the run resumes from its last
checkpoint; a killed driver is replaced by the same command: recorded runs are skipped, cut runs
resume, and a run whose folder is still held by an orphaned worker of the killed driver is waited
for, not trained twice. Run folders must be on a file system every worker sees: checked at start.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import torch

from ..errors import ConfigError, MissingDependency, RunDirError, RunLockedError, pip_hint
from ..run import runinfo
from .ledger import Ledger
from .runs import execute_run, ledger_record, needs_running, record_result
from .spec import RunSpec, StudyConfig

log = logging.getLogger("fastkd.study")
LOCK_WAIT_S = 1800  # how long a task waits for a run folder held by another (orphaned) worker


def _ray():
    try:
        import ray
        return ray
    except ImportError:
        raise MissingDependency(f"--executor ray needs Ray: {pip_hint('ray')}") from None


def task_device(config_device: str, gpus_per_run: float) -> str:
    """Where a run's task trains. Ray sets CUDA_VISIBLE_DEVICES only for tasks that ask for GPUs: a
    zero-GPU task still sees every GPU, and would train on cuda:0 beside the counted runs there."""
    if gpus_per_run == 0:
        if config_device == "cuda":
            raise ConfigError("device=cuda: the study's runs ask for no GPU (--gpus-per-run 0); give them GPUs "
                              "(e.g. --gpus-per-run 1) or let them run on the CPU (device=auto or cpu)")
        return "cpu"
    return "cpu" if config_device == "cpu" else "cuda"


def resolve_gpus_per_run(requested: float | None, cluster_gpus: float) -> float:
    """``--gpus-per-run``: as given, or by default one GPU a run on a cluster that has GPUs, else none."""
    if requested is None:
        return 1.0 if cluster_gpus >= 1 else 0.0
    if requested < 0:
        raise ConfigError(f"--gpus-per-run: {requested} is negative; use 0 (CPU runs) or a share of a GPU")
    return requested


def task_options(*, gpus_per_run: float, cpus_per_run: float, threads: int, max_retries: int) -> dict:
    """Ray options of a run's task."""
    options = {"num_cpus": cpus_per_run, "num_gpus": gpus_per_run, "max_retries": max_retries,
               "retry_exceptions": False}
    if gpus_per_run > 0:
        # a fresh worker per GPU task: a reused one would keep the CUDA context (and the memory) of
        # the last run, on a device Ray may since have given another task
        options["max_calls"] = 1
    if threads > cpus_per_run:
        # more threads than the run's CPUs (e.g. the sequential executor's count, for the same
        # arithmetic): runs share cores, so OpenMP threads must sleep, not spin, while they wait
        options["runtime_env"] = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}
    return options


def _train_task(config: dict, run_dir: str, kind: str, knn_k: int, cd_variants: list, threads: int,
                device: str) -> dict:
    """The body of a run's Ray task (in a worker process)."""
    torch.set_num_threads(max(1, threads))
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            result = execute_run(config, run_dir, kind, knn_k=knn_k, cd_variants=cd_variants, device=device,
                                 progress=False)
            break
        except RunLockedError:  # an orphaned worker of a killed driver still trains it: wait for it
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)
    result["environment"] = runinfo.environment(1) | {"host": socket.gethostname(), "pid": os.getpid()}
    return result


def _probe_task(path: str, token: str) -> str:
    Path(path).write_text(token)
    return socket.gethostname()


@contextlib.contextmanager
def cluster_failures_named(ray):
    """A failure of the Ray cluster itself (its raylet, dashboard agent or GCS killed, a node lost)
    ends the study with one line naming it: recorded runs are kept and the same command resumes.
    An exception a task raised (a bug in fastkd) keeps its traceback."""
    try:
        yield
    except ray.exceptions.RayTaskError:
        raise
    except (ray.exceptions.RayError, ConnectionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RunDirError(f"the Ray cluster failed ({type(exc).__name__}: {first}); recorded runs are kept: run the "
                          "same command again to finish the study") from exc


def check_shared_filesystem(ray, out: Path) -> None:
    """Every node writes a probe file under ``out``; the driver must read each one back."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_cpus=0)(_probe_task)
    checks = []
    for node in nodes:
        token = uuid.uuid4().hex
        path = out / f".probe-{token}"
        ref = probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
            str(path), token)
        checks.append((node, path, token, ref))
    try:
        for node, path, token, ref in checks:
            host = ray.get(ref, timeout=120)
            if not path.is_file() or path.read_text() != token:
                raise RunDirError(f"{out} is not shared with Ray node {host} ({node.get('NodeManagerAddress')}): a file "
                                  "it wrote there is not visible here. Put --out on a file system every node mounts "
                                  "(NFS, Lustre, ...)")
    finally:
        for _, path, _, _ in checks:
            path.unlink(missing_ok=True)


def run_on_ray(runs: list[RunSpec], identities: dict, sc: StudyConfig, out: Path, ledger: Ledger, *,
               retry_failed: bool = False, address: str | None = None, gpus_per_run: float | None = None,
               cpus_per_run: float = 1.0, threads_per_run: int | None = None, num_cpus: int | None = None,
               max_retries: int = 3) -> None:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        # without an address Ray starts a local cluster on this machine; with one it joins it
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        with cluster_failures_named(ray):
            _drive(ray, runs, identities, sc, out, ledger, retry_failed=retry_failed, gpus_per_run=gpus_per_run,
                   cpus_per_run=cpus_per_run, threads_per_run=threads_per_run, max_retries=max_retries)
    finally:
        if started_here:
            ray.shutdown()


def _drive(ray, runs, identities, sc, out: Path, ledger: Ledger, *, retry_failed, gpus_per_run, cpus_per_run,
           threads_per_run, max_retries) -> None:
    """Submit every run that needs running, students once their teacher is recorded done; record
    each result as it comes."""
    out = out.resolve()
    check_shared_filesystem(ray, out)
    threads = threads_per_run or max(1, int(cpus_per_run))
    gpus_per_run = resolve_gpus_per_run(gpus_per_run, ray.cluster_resources().get("GPU", 0))
    devices = {r.id: task_device(r.config.device, gpus_per_run) for r in runs}  # refused before any run starts
    log.info("ray: %s GPU(s) per run", gpus_per_run)
    task = ray.remote(_train_task).options(**task_options(gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                                                          threads=threads, max_retries=max_retries))
    todo = {r.id: r for r in runs if needs_running(r, identities[r.id], ledger, retry_failed=retry_failed)}
    pending: dict = {}  # object ref -> run

    def submit(run: RunSpec) -> None:
        log.info("submitted %s", run.id)
        ref = task.remote(run.config.to_dict(), str(out / "runs" / run.id), run.kind, sc.knn_k,
                          list(sc.cd_variants), threads, devices[run.id])
        pending[ref] = run
        todo.pop(run.id)

    def ready(run: RunSpec) -> str:
        """'yes' to submit, 'no' to wait for its teacher, 'skip' when the teacher failed."""
        if not run.teacher_id:
            return "yes"
        rec = ledger.get(run.teacher_id, set_aside=False)
        if rec and rec["status"] == "done":
            return "yes"
        if run.teacher_id in todo or any(r.id == run.teacher_id for r in pending.values()):
            return "no"
        return "skip"

    while todo or pending:
        for run in list(todo.values()):
            state = ready(run)
            if state == "yes":
                submit(run)
            elif state == "skip":
                ledger.put(ledger_record(run, identities[run.id], "skipped", error=f"teacher {run.teacher_id} did not finish"))
                todo.pop(run.id)
        if not pending:
            continue
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            run = pending.pop(ref)
            try:
                result = ray.get(ref)  # a bug in fastkd (any exception a task raises) stops the driver here
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.OutOfMemoryError) as exc:  # the machine failed, more often than retried
                result = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                          "environmental": True}  # the next plain run of the command tries it again
            record_result(run, identities[run.id], result, ledger)
            log.info("%s %s", result["status"], run.id)
