"""One way to write a file: to a temporary name beside it, then renamed into place.

A reader therefore sees the old file or the complete new one, never half of one. A failed
write (disk full, quota, permissions) removes its partial temporary file, keeps the previous
file, and raises the caller's error class with the file and the cause named. Temporary names
carry the writer's pid (``.NAME.PID.tmp``) so two processes never share one; a folder's stale
ones are swept by :func:`sweep_temporaries` while its owner holds the folder's lock.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

from ..errors import FastkdError, RunDirError

_TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")


def temp_name(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def describe_os_error(exc: BaseException, path: Path) -> str:
    """A short cause for a failed write, saying plainly when the disk is full."""
    no = getattr(exc, "errno", None)
    if no in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(Path(path).parent).free
            return f"no space left on the device ({free / 2**20:.1f} MiB free)"
        except OSError:
            return "no space left on the device"
    if no == errno.EFBIG:
        return "file too large for this file system or process limit"
    return str(exc)


def write_atomic(path: Path, content: bytes | str | Callable, *, error: type[FastkdError] = RunDirError,
                 what: str = "file") -> None:
    """Write ``content`` (bytes, text, or a callable given an open binary file) to ``path``."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as exc:  # numpy/safetensors wrap OS errors in these
        tmp.unlink(missing_ok=True)
        raise error(f"{path}: could not write the {what}: {describe_os_error(exc, path)}; "
                    "the previous version (if any) is kept") from exc


def write_json(path: Path, obj, *, error: type[FastkdError] = RunDirError) -> None:
    """JSON with sorted keys (equal content, equal bytes)."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", error=error, what="JSON file")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(folder: Path, *, only_dead: bool = False) -> list[Path]:
    """Remove the ``.NAME.PID.tmp`` files and folders left in ``folder`` by killed writers.

    Call it while holding the folder's lock (then no live process writes there), or with
    ``only_dead`` for a shared folder: then only files whose writer pid is gone on this host.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m and not (only_dead and _alive(int(m.group(1)))):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
