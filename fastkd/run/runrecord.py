"""``metrics.json``: the typed record of a finished run that every consumer reads (the CLI, the
study ledger, the report, ``fastkd eval``) instead of string keys scattered through the code."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunDirError


@dataclass
class RunMetrics:
    kind: str  # teacher | student
    model: str
    augment: str
    seed: int
    test_accuracy: float
    test_loss: float
    test_examples: int
    epochs: int
    selected_epoch: int | None
    select: str
    images_per_second: float  # median over epochs after the first (warm-up, compilation)
    train_seconds: float
    num_processes: int
    data_sizes: dict
    identity: str
    history: list = field(default_factory=list)  # one dict per epoch: train_loss, lr, val_/test_ metrics
    val_accuracy: float | None = None
    val_loss: float | None = None
    skipped_images: dict | None = None  # per split, with data.on_corrupt=skip
    teacher: str | None = None  # students: the teacher run, its test accuracy, top-1 agreement
    teacher_test_accuracy: float | None = None
    agreement: float | None = None
    teacher_cache: str | None = None  # students: "used" (teacher outputs read from its cache) or "off"
    # students: Wang et al.'s T. stddev over the teacher outputs the run trained against
    # (fastkd.metrics.teacher_stddev): value, chunks, chunk_size, view
    teacher_stddev: dict | None = None

    def to_dict(self, *, history: bool = True) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not history:
            d.pop("history", None)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "metrics") -> "RunMetrics":
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise RunDirError(f"{where}: not a fastkd run record ({exc})") from exc

    @classmethod
    def load(cls, path: Path) -> "RunMetrics":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path}: unreadable run metrics ({exc}); rerun the run's command to finish it again") \
                from exc
        return cls.from_dict(d, str(path))
