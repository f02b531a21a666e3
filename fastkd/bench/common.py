"""What the benchmark scripts share: the devices to time on and one synchronised timing (the JSON
result is written by fastkd.run.runinfo.write_bench_result)."""
from __future__ import annotations

import time

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
