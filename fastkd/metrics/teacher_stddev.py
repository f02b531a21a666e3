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
    """Accumulates the statistic from the teacher logits of each training step, on their device and
    without a host sync; rows are split across chunk boundaries exactly. The chunk means are not
    kept: each closing chunk is pooled (:func:`pooled`, as processes are by :func:`merge`) into
    their per-class count, mean and sum of squared deviations, so memory and checkpoints stay
    O(classes) however long the run (an ImageNet run closes ~180,000 chunks). ``state``/``load``
    carry it across a resumed run."""

    def __init__(self, chunk: int = WANG_CHUNK):
        self.chunk = chunk
        self.partial = None  # the running sum of the current chunk's probabilities (K,) float64
        self.filled = 0  # rows in the current chunk
        self.count = 0  # closed chunks
        self.mean = None  # their mean probability vector (K,) ...
        self.m2 = None  # ... and per-class sum of squared deviations from it

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
                self._close(self.partial / self.chunk)
                self.partial, self.filled = None, 0

    def _close(self, m: torch.Tensor) -> None:
        """Pool one closed chunk's mean (a set of one, no spread) into the moments."""
        self.count, self.mean, self.m2 = pooled(self.count, self.mean, self.m2, 1, m, torch.zeros_like(m))

    def value(self) -> float:
        """The statistic over the chunks closed so far (NaN below 2)."""
        return moments_value(self.count, self.m2)

    def moments(self, num_classes: int, device) -> torch.Tensor:
        """(count, mean..., m2...) as one float64 row, zeros before the first chunk: what processes
        exchange to :func:`merge` their statistics."""
        if self.mean is None:
            return torch.zeros(1 + 2 * num_classes, dtype=torch.float64, device=device)
        return torch.cat([torch.tensor([float(self.count)], dtype=torch.float64, device=self.mean.device),
                          self.mean, self.m2])

    def state(self) -> dict:
        return {"chunk": self.chunk, "filled": self.filled, "count": self.count,
                "partial": None if self.partial is None else self.partial.cpu(),
                "mean": None if self.mean is None else self.mean.cpu(), "m2": None if self.m2 is None else self.m2.cpu()}

    def load(self, state: dict | None, device) -> None:
        if not state or state.get("chunk") != self.chunk or "count" not in state:
            return
        self.filled, self.count = state["filled"], state["count"]
        self.partial, self.mean, self.m2 = (None if state[k] is None else state[k].to(device)
                                            for k in ("partial", "mean", "m2"))


def moments_value(count: int, m2: torch.Tensor | None) -> float:
    if count < 2 or m2 is None:
        return float("nan")
    return torch.sqrt(m2 / (count - 1)).mean().item()


def pooled(n: int, mean, m2, nb: int, mb: torch.Tensor, m2b: torch.Tensor):
    """(count, mean, m2) of two sets of chunk means together, from each set's own (Chan, Golub &
    LeVeque's pairwise update); ``mean`` and ``m2`` are None while ``n`` is 0."""
    if n == 0:
        return nb, mb.clone(), m2b.clone()
    delta = mb - mean
    total = n + nb
    return total, mean + delta * nb / total, m2 + m2b + delta * delta * n * nb / total


def merge(rows: torch.Tensor) -> tuple[int, torch.Tensor | None]:
    """Combine per-process (count, mean, m2) rows (P, 1 + 2K) into (count, m2) of all their chunks."""
    k = (rows.shape[1] - 1) // 2
    n, mean, m2 = 0, None, None
    for row in rows.double():
        nb = int(row[0].item())
        if nb > 0:
            n, mean, m2 = pooled(n, mean, m2, nb, row[1:1 + k], row[1 + k:])
    return n, m2
