"""The Accelerator a run trains with, on the device its config asks for, rebuilt for each run in
one process (a study, the tests, a notebook)."""
from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import ProjectConfiguration, parse_flag_from_env

from ..config import Config
from ..errors import TrainingError


def requested_device(cfg: Config) -> torch.device:
    """The device type a run's config asks for (``device``: auto = CUDA when one is visible and
    ``accelerate launch --cpu`` did not ask for the CPU)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device: 'cuda' requested but no CUDA device is visible; use device=auto or cpu")
    cpu = cfg.device == "cpu" or not torch.cuda.is_available() or (cfg.device == "auto" and
                                                                  parse_flag_from_env("ACCELERATE_USE_CPU"))
    return torch.device("cpu" if cpu else "cuda")


def _reset_accelerate_for(want: torch.device) -> None:
    """Accelerate keeps one global state per process, and its first run fixes the device: a later
    ``device=cpu`` run would train on CUDA, an ``auto`` run after a CPU one on the CPU. Runs in one
    process (a study, the tests, a notebook) each rebuild it; the process group (PartialState) is
    rebuilt only when the device changes, which a multi-process launch cannot do."""
    held = PartialState._shared_state.get("device")
    moves = held is not None and held.type != want.type
    if moves and torch.distributed.is_available() and torch.distributed.is_initialized():
        raise TrainingError(f"device: this process was launched on {held} with other processes; a run here cannot "
                            f"move to {want.type}: launch it separately (or set device to match the launch)")
    AcceleratorState._reset_state(reset_partial_state=moves)
    GradientState._reset_state()


def make_accelerator(cfg: Config, out_dir: Path | None = None):
    want = requested_device(cfg)
    precision = cfg.train.precision
    if want.type == "cpu" and precision == "fp16":
        raise TrainingError("train.precision=fp16 needs a GPU; use bf16 or no on a CPU")
    trackers = cfg.track.trackers or None
    _reset_accelerate_for(want)
    project = ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "tracking")) if out_dir else None
    acc = Accelerator(cpu=want.type == "cpu", mixed_precision=precision, gradient_accumulation_steps=cfg.train.grad_accum,
                      log_with=trackers, project_config=project)
    if acc.device.type != want.type:  # e.g. ACCELERATE_USE_CPU or ACCELERATE_TORCH_DEVICE in the environment
        raise TrainingError(f"device={cfg.device}: Accelerate placed this run on {acc.device} (check ACCELERATE_* "
                            "environment variables and the accelerate config)")
    return acc
