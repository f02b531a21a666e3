"""What a run records about where it ran: versions, hardware, command line."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "accelerate", "numba", "safetensors", "pillow", "faiss-cpu", "nvidia-dali-cuda130", "ffcv")


def versions() -> dict:
    out = {"python": platform.python_version(), "fastkd": _version("fastkd")}
    for p in PACKAGES:
        v = _version(p)
        if v:
            out[p] = v
    return out


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def hardware() -> dict:
    import torch
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "cpu": _cpu_model(), "cpu_capability": _cpu_capability(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = gpu_names()
        info["cuda_version"] = torch.version.cuda
    return info


def gpu_names() -> list[str]:
    """The visible GPUs' names, without initialising CUDA when it is not yet: a run records its
    hardware before it loads data, and CUDA started then would be inherited by every forked
    worker (and costs the start-up of a context before any work)."""
    import torch
    count = torch.cuda.device_count()  # from the driver, no context
    if torch.cuda.is_initialized():
        return [torch.cuda.get_device_name(i) for i in range(count)]
    names = _nvidia_smi_names()
    return names if names and len(names) == count else [f"CUDA device {i}" for i in range(count)]


def _nvidia_smi_names() -> list[str] | None:
    import shutil
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    # CUDA_VISIBLE_DEVICES may hold indices or UUIDs: ask nvidia-smi for exactly those
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    cmd = [exe, "--query-gpu=name", "--format=csv,noheader"] + ([f"--id={visible}"] if visible else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else None


def _cpu_capability() -> str | None:
    """The instruction set torch's CPU kernels use here (e.g. AVX2, AVX512): CPU results reproduce
    bit for bit only on the same CPU family and kernels (another CPU moved a teacher by 0.08 and a
    student by 0.5 points)."""
    import torch
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(num_processes: int = 1) -> dict:
    return {"versions": versions(), "hardware": hardware(), "num_processes": num_processes,
            "git_commit": git_commit(), "argv": sys.argv, "cwd": os.getcwd(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_bench_json(path, rows: list[dict], **context) -> None:
    """A benchmark's results, with what was run and where (versions, hardware, commit), as JSON."""
    write_bench_result(context | {"results": rows, "environment": environment()}, path)


def write_bench_result(result: dict, path=None, stem: str = "bench") -> Path:
    """A benchmark's result as JSON at ``path``, or bench-results/<stem>-<time>.json; prints where."""
    out = Path(path or f"bench-results/{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return out
