"""Will it fit? Checked before a data set is decoded into memory or copied to a device, so a data
set too large for the in-memory path gets a message naming the size instead of dying in the
allocator."""
from __future__ import annotations

from .arrays import DataError

ADVICE = ("stream it from disk instead: data.backend=dali or ffcv (after `fastkd data convert`), or "
          "data.backend=dataloader (decodes each image in its workers)")


def available_host_bytes() -> int | None:
    """MemAvailable of this machine (Linux), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(needed: int, *, what: str, where: str = "host", available: int | None = None,
               margin: float = 0.8) -> None:
    """Refuse when ``needed`` bytes exceed ``margin`` of what ``where`` has available."""
    if available is None and where == "host":
        available = available_host_bytes()
    if available is not None and needed > margin * available:
        raise DataError(f"{what} needs {needed / 2**30:.1f} GiB of {where} memory, {available / 2**30:.1f} GiB "
                        f"available; {ADVICE}")
