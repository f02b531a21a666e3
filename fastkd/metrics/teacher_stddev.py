"""The standard deviation of the teacher's mean probability ("T. stddev"; Wang, Lohit, Jones & Fu,
"What Makes a 'Good' Data Augmentation in Knowledge Distillation - A Statistical Perspective",
NeurIPS 2022): a statistic of the teacher alone that their Proposition 3.1 ties to the variance of
the distillation loss, and which they found to rank data augmentations used *during*
distillation as the students' test loss ranks them (lower is better).

Definition, as their released code computes it: the teacher's softmax probabilities (temperature
1) over the samples a student is trained on, taken in training order, are cut into consecutive
chunks of ``chunk`` samples; each chunk gives its mean probability vector; the statistic is the
standard deviation (n - 1) of those vectors over the chunks, per class, averaged over the classes.
Their chunk is 10 batches of 64 samples (5 steps of an original and an augmented batch): 640.
fastkd computes it over every step of a distillation run, on exactly the teacher outputs the
student was trained against (the live teacher on the augmented batch, or the cached table on the
unaugmented one).
"""
from __future__ import annotations

import torch

WANG_CHUNK = 640  # samples per chunk in Wang et al.'s code: 10 batches of 64


def teacher_stddev(chunk_means: torch.Tensor) -> float:
    """The statistic from the chunks' mean probability vectors (M, K): NaN with fewer than 2 chunks."""
    if len(chunk_means) < 2:
        return float("nan")
    return chunk_means.double().std(dim=0, unbiased=True).mean().item()


def teacher_stddev_of(logits: torch.Tensor, chunk: int = WANG_CHUNK) -> float:
    """The statistic of a sequence of teacher logits (N, K) in training order (an incomplete
    last chunk is left out)."""
    p = torch.softmax(logits.double(), dim=1)
    m = len(p) // chunk
    return teacher_stddev(p[: m * chunk].view(m, chunk, -1).mean(dim=1))


class TeacherMeanProbability:
    """Accumulates chunk means from the teacher logits of each training step, on their device and
    without a host sync; rows are split across chunk boundaries exactly. ``state``/``load`` carry
    it across a resumed run."""

    def __init__(self, chunk: int = WANG_CHUNK):
        self.chunk = chunk
        self.partial = None  # the running sum of the current chunk's probabilities (K,) float64
        self.filled = 0  # rows in the current chunk
        self.means: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor) -> None:
        p = torch.softmax(logits.detach().double(), dim=1)
        start = 0
        while start < len(p):
            take = min(self.chunk - self.filled, len(p) - start)
            part = p[start:start + take].sum(0)
            self.partial = part if self.partial is None else self.partial + part
            self.filled += take
            start += take
            if self.filled == self.chunk:
                self.means.append(self.partial / self.chunk)
                self.partial, self.filled = None, 0

    def chunk_means(self) -> torch.Tensor | None:
        return torch.stack(self.means) if self.means else None

    def state(self) -> dict:
        return {"chunk": self.chunk, "filled": self.filled,
                "partial": None if self.partial is None else self.partial.cpu(),
                "means": self.chunk_means().cpu() if self.means else None}

    def load(self, state: dict | None, device) -> None:
        if not state or state.get("chunk") != self.chunk:
            return
        self.filled = state["filled"]
        self.partial = None if state["partial"] is None else state["partial"].to(device)
        self.means = list(state["means"].to(device)) if state["means"] is not None else []
