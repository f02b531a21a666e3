"""What the report's tables and plots share: the order and colour of augmentations, how a
student is named, how a run's metrics are read from its ledger record."""
from __future__ import annotations

import math

from ..pipelines.spec import PAPER_AUGMENTS

# one colour per augmentation in every plot (matplotlib's tab10, in the paper's order)
_AUG_COLOURS = {"none": "#1f77b4", "crop_flip": "#ff7f0e", "cutout": "#2ca02c", "mixup": "#d62728",
                "cutmix": "#9467bd", "scratch": "#7f7f7f"}
_EXTRA_COLOURS = ["#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"]


def augment_rank(aug: str) -> tuple:
    """The paper's order of augmentations; compositions after, the scratch baseline last."""
    order = PAPER_AUGMENTS
    return (aug == "scratch", order.index(aug) if aug in order else len(order), aug)


def augment_colour(aug: str) -> str:
    if aug in _AUG_COLOURS:
        return _AUG_COLOURS[aug]
    return _EXTRA_COLOURS[sum(map(ord, aug)) % len(_EXTRA_COLOURS)]  # stable across runs and plots


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def accuracy(rec: dict) -> float:
    """A run's test accuracy (a fraction)."""
    return rec["metrics"]["test_accuracy"]


def ece(rec: dict) -> float:
    """A run's expected calibration error on the test set (a fraction)."""
    return rec["analysis"]["calibration"]["ece"]


def cd_entry(rec: dict, rep: str = "softmax", variant: str = "paper") -> dict:
    """The class-discrimination result of a record: {score, intra, inter} or {undefined: why}."""
    return rec.get("analysis", {}).get("class_discrimination", {}).get(rep, {}).get(variant, {})


def student_label(student: str, teacher: str, distill: str, augment: str | None = None) -> str:
    """'lenet <- resnet8 (kd)', the scratch baseline as 'lenet from scratch'."""
    if distill == "scratch":
        return f"{student} from scratch"
    return f"{student} \u2190 {teacher}{'/' + augment if augment else ''} ({distill})"


def done(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "done"]
