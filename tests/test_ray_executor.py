"""A study on a local Ray cluster (2 CPUs, 1 CPU per run): the same ledger as the sequential
executor with the same thread count per run, a worker killed mid-run, a driver killed mid-grid."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
import yaml

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

from fastkd.study import load_study, run_study  # noqa: E402
from fastkd.study.ledger import Ledger  # noqa: E402
from helpers import TINY_STUDY  # noqa: E402

GRID = TINY_STUDY
RAY = {"num_cpus": 2, "cpus_per_run": 1}


def _summary(out):
    return {r["id"]: (r["status"], r["metrics"]["test_accuracy"]) for r in Ledger(out).records()}


@pytest.mark.parametrize("threads", [1, 2], ids=["1-thread", "2-threads"])
def test_ray_gives_the_same_ledger_as_the_sequential_executor(tmp_path, threads):
    """One CPU per run, two runs at a time, with the thread count the sequential runs use. Two
    threads on one CPU each: the machine's default count (its 2 cores) with the runs sharing the
    cores (their OpenMP threads told to sleep while they wait)."""
    sc = load_study(extra=GRID)
    before = torch.get_num_threads()
    run_study(sc, tmp_path / "seq", progress=False, report=False, threads_per_run=threads)
    assert torch.get_num_threads() == before  # the sequential executor restores the process's count
    run_study(sc, tmp_path / "ray", progress=False, executor="ray", ray_options=RAY, threads_per_run=threads)
    seq, ray_ = _summary(tmp_path / "seq"), _summary(tmp_path / "ray")
    assert len(seq) == 4 and seq == ray_
    for name in ("seq", "ray"):
        rec = json.loads((tmp_path / name / "ledger" / "student-lenet-kd-from-resnet8-mixup-s0.json").read_text())
        assert rec["environment"]["hardware"]["torch_threads"] == threads
    assert rec["environment"]["pid"] != os.getpid()  # trained in a Ray worker, recorded by the driver
    assert (tmp_path / "ray" / "report" / "summary.md").is_file()


def test_a_worker_killed_mid_run_is_retried_and_resumes(tmp_path):
    grid = GRID | {"augments": ["none"], "students": ["lenet"],
                   "common": GRID["common"] | {"data.limit_train": 2000, "train.epochs": 3}}
    run = tmp_path / "runs" / "teacher-resnet8-none-s0"
    killed = {}

    def killer():
        deadline = time.time() + 240  # a loaded machine starts Ray slowly; below the 300 s test timeout
        while time.time() < deadline and not killed:
            try:
                if "epoch=1 " in (run / "train.log").read_text():
                    pid = json.loads((run / ".fastkd.lock").read_text())["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
    t = threading.Thread(target=killer)
    t.start()
    records = run_study(load_study(extra=grid), tmp_path, progress=False, report=False, executor="ray", ray_options=RAY)
    t.join()
    assert killed, "the worker was not caught mid-run"
    assert all(r["status"] == "done" for r in records)
    log = (run / "train.log").read_text()
    assert log.count(" start:") == 1 and "resume at epoch" in log and log.count("finished:") == 1


def test_a_killed_driver_is_finished_by_the_same_command_without_training_twice(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump(GRID | {"common": GRID["common"] | {"train.epochs": 2}}))
    cmd = [sys.executable, "-m", "fastkd", "study", "--config", str(spec), "--out", str(tmp_path / "s"),
           "--executor", "ray", "--quiet"]
    first = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = tmp_path / "s" / "ledger"
    deadline = time.time() + 180
    while time.time() < deadline and not (ledger.is_dir() and list(ledger.glob("*.json"))):
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the local cluster it started
    first.wait()
    assert list(ledger.glob("*.json")), "killed before any run finished"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    records = Ledger(tmp_path / "s").records()
    assert len(records) == 4 and all(r["status"] == "done" for r in records)
    assert sorted(p.name for p in ledger.iterdir()) == sorted(f"{r['id']}.json" for r in records)
    for r in records:
        assert (tmp_path / "s" / "runs" / r["id"] / "train.log").read_text().count("finished:") == 1, r["id"]
