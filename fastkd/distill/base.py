"""What a distillation method is to the rest of fastkd.

A method turns the student's and the teacher's logits (and the batch's targets) into the loss.
It declares:
- ``Options``: a dataclass of its own settings, which become the config's ``distill.<name>.*``
  keys (with ranges and defaults, listed in docs/config.md); none for Hinton KD, whose
  temperature, weight and reduction are the shared ``distill.*`` keys.
- ``reads_cached_outputs``: whether it can take the teacher's logits from the teacher-output
  cache (computed once per teacher) instead of running the teacher every step; true for any method
  whose loss needs only the teacher's logits on the student's (deterministic) view.
- ``describe``: how a report names one setting, from a run's recorded config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class NoOptions:
    """A method with no settings beyond the shared ``distill.*`` keys."""


class KDMethod:
    name = ""
    Options: type = NoOptions
    reads_cached_outputs = True
    epoch = 0  # the epoch being trained (0-based), for methods whose weights follow a schedule

    def __init__(self, distill_cfg, options=None):
        self.temperature = distill_cfg.temperature
        self.gamma = distill_cfg.gamma  # the teacher term's weight; 0 (a scratch run) never builds a method
        self.reduction = distill_cfg.reduction
        self.options = options if options is not None else self.Options()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def recorded_options(cls, distill: dict) -> dict:
        """The method's options in a run's recorded ``distill`` section, defaults filled in (a
        section left at its defaults is not in a run's identity, and may not be recorded)."""
        return dataclasses.asdict(cls.Options()) | (distill.get(cls.name) or {})

    @classmethod
    def describe(cls, distill: dict) -> str:
        """One setting as a report prints it, from the ``distill`` section of a run's config."""
        extra = "".join(f", {k} = {v}" for k, v in cls.recorded_options(distill).items())
        return f"T = {distill['temperature']:g}, gamma = {distill['gamma']:g}{extra}"
