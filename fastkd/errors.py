"""Every error fastkd reports to a user derives from :class:`FastkdError`.

The CLI, the scripts (through :func:`exit_status_reporting_errors`) and the study runner catch
this base and print one line (no traceback): the message names the file, key or value at fault
and what to do. Anything else that escapes is a bug and is allowed to crash loudly, so it is
never recorded as an ordinary failed run.
"""
from __future__ import annotations

import sys
from typing import Callable

EXIT_ERROR = 2  # the exit status of an error the message explains (docs/run-directory.md)


class FastkdError(Exception):
    """A problem with the user's input, data, files or run that the message explains."""


class ConfigError(FastkdError):
    """A config key or value is wrong; the message names it and the allowed values."""


class DataError(FastkdError):
    """A data set could not be read; the message names the file or field at fault."""


class CheckpointError(FastkdError):
    """A checkpoint is missing, unreadable or for another model; the message names the file."""


class RunDirError(FastkdError):
    """The output directory holds something that conflicts with this run."""


class RunLockedError(RunDirError):
    """Another live process holds the run (or study) folder."""


class TrainingError(FastkdError):
    """Training cannot go on (e.g. the loss became NaN); the message says where."""


class MissingDependency(FastkdError, ImportError):
    """An optional package (DALI, FFCV, FAISS, Ray, ...) is not installed; the message is the
    install hint."""


def exit_status_reporting_errors(work: Callable[[], int], prog: str = "fastkd") -> int:
    """Run `work` (a command's body) and return its exit status. A FastkdError, or a path the file
    system refused (a full disk, no permission, a name too long), ends as one line on stderr and
    EXIT_ERROR instead of a traceback: the message already names what to fix."""
    try:
        return work()
    except FastkdError as exc:
        print(f"{prog}: error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, always
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    return EXIT_ERROR


def pip_hint(extra: str) -> str:
    """How to install an optional extra: from PyPI, or in place when running from a checkout."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "pipelines").is_dir():
        return f"pip install -e '{root}[{extra}]' (this checkout)"
    return f"pip install 'fastkd[{extra}]'"
