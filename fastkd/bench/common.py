"""What the benchmark scripts share: the devices to time on, one synchronised timing, and where
the JSON result goes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch


def devices(choice: str) -> list[torch.device]:
    """``auto``: the host, and the GPU too when there is one (both in one run, to compare)."""
    if choice == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [torch.device(choice)]


def timed(fn, device) -> float:
    """Seconds ``fn()`` takes, the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def write_result(result: dict, path: str | None, stem: str) -> Path:
    """The JSON result at ``path``, or bench-results/<stem>-<time>.json; prints where."""
    out = Path(path or f"bench-results/{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return out
