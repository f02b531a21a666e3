"""Whatever ends fastkd ends its worker processes too: a real fastkd process, its decode workers
busy, stopped by SIGTERM (as `timeout` does), SIGINT or SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

# `fastkd train` on the bundled sample (6,000 images: decoded by a pool of forked workers), each
# decode made slow so that the workers are busy when the signal comes
DRIVER = textwrap.dedent("""
    import sys, time
    from fastkd.data import decode
    real = decode.decode_bytes
    def slow(*a, **k):
        time.sleep(0.05)
        return real(*a, **k)
    decode.decode_bytes = slow
    decode.os.cpu_count = lambda: 2  # a pool of two workers, on any machine
    from fastkd.cli import main
    sys.exit(main(["train", "--preset", "smoke", "--set", "data.image_size=40", "--out", sys.argv[1], "--quiet"]))
""")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["term", "int", "kill"])
def test_workers_end_with_fastkd(tmp_path, sig):
    env = os.environ | {"FASTKD_CACHE": str(tmp_path / "cache")}  # nothing decoded yet: the pool must start
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "run")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    workers = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the decode pool did not start"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    end = time.time() + 10
    while time.time() < end and any(_alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived fastkd (signal {sig.name})"
    if sig != signal.SIGKILL:
        assert proc.returncode == 130 and "interrupted" in proc.stderr.read()


def _sleep(seconds):
    time.sleep(seconds)


def test_a_busy_worker_dies_on_terminate_even_under_fastkds_signal_handler():
    # workers fork from a process whose SIGTERM handler raises KeyboardInterrupt: a busy worker
    # caught it as its task's error and went on to its next task (~50 s of decoding at exit)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fastkd.run.child_processes import die_with_parent, stop_on_signals
    with stop_on_signals():
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent,
                                   initargs=(os.getpid(),))
        try:
            pool.submit(_sleep, 30)
            pool.submit(_sleep, 30)  # queued behind it, as the decode chunks are
            time.sleep(1.0)
            (worker,) = list(pool._processes.values())
            worker.terminate()
            worker.join(timeout=5)
            assert worker.exitcode is not None, "the worker outlived terminate()"
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for p in list((pool._processes or {}).values()):
                p.kill()
