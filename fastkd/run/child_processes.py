"""Worker processes that never outlive fastkd.

A decode worker kept running, and growing (12.8 GB seen), after `timeout` had sent SIGTERM to
the fastkd process that started it. Two guards: every worker fastkd starts asks the kernel to
kill it when its parent dies (Linux's parent-death signal, which also covers a SIGKILL of the
parent), and the command turns SIGTERM and SIGINT into an orderly stop that ends its workers first.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def die_with_parent(parent_pid: int, *_) -> None:
    """Worker initialiser: SIGKILL this process when its parent ends. Extra arguments are
    ignored, so it also serves as a DataLoader ``worker_init_fn`` (given the worker id)."""
    # a forked worker inherits the parent's stop_on_signals handler, which turns SIGTERM into an
    # exception: a worker busy with a task then survived terminate() and ran its next queued task
    # (a 1,024-image decode chunk: ~50 s) before fastkd could exit. Workers die on SIGTERM and
    # leave Ctrl-C (sent to the whole process group) to the parent, which ends them.
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # called off a process's main thread: its signals are not ours to set
        pass
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl (another libc): the SIGTERM guard still applies
            pass
    if os.getppid() != parent_pid:  # the parent ended before the signal was armed
        os._exit(1)


@contextlib.contextmanager
def stop_on_signals():
    """While inside, SIGTERM and SIGINT stop the command the same way (its run folders are
    released, its epoch is resumable), ending the worker processes it started first: a main
    process waiting on busy workers would otherwise wait for their queued work to finish."""
    def handler(signum, frame):
        for child in multiprocessing.active_children():
            child.terminate()
        raise KeyboardInterrupt
    handled = (signal.SIGTERM, signal.SIGINT)
    try:
        before = {s: signal.signal(s, handler) for s in handled}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


@contextlib.contextmanager
def worker_pool(pool):
    """A process pool, shut down on the way out; left by an exception (Ctrl-C, SIGTERM, an error),
    its workers are ended at once rather than waited for through the work still queued."""
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
