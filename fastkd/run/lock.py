"""An advisory lock on a folder (a run or a study) for the lifetime of the process using it.

``fcntl.flock`` on ``FOLDER/.fastkd.lock``: the operating system releases it when the process
exits in any way (a SIGKILL too), so a crashed run never leaves a stale lock behind. The holder
writes its pid, host and command line into the file, so a second process is refused with a
message naming them.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import RunDirError, RunLockedError

LOCK_NAME = ".fastkd.lock"


class FolderLock:
    def __init__(self, folder, *, what: str = "run folder"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None
        self.created = False  # the lock file did not exist before: remove it if we back out
        self.created_folder = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        if self.held:
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise RunDirError(f"{self.folder} is a file, not a folder; choose another --out")
        try:
            self.created_folder = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"{self.folder}: cannot create the {self.what} ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(f"{self.folder}: this {self.what} is in use by {holder}; wait for that process "
                                 "to finish (or stop it), or choose another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self, *, remove: bool = False) -> None:
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def back_out(self) -> None:
        """Release after refusing the folder: remove what acquiring it created (lock file, folder)."""
        self.release(remove=self.created)
        if self.created_folder:
            try:
                self.folder.rmdir()  # only if still empty
            except OSError:
                pass

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"process {info['pid']} on host {info['host']} (since {info['since']}: {info['command']})"
    except (ValueError, KeyError, OSError):
        return "another process"
