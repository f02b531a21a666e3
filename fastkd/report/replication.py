"""The unit of replication of a comparison between student cells, and the comparison itself:
students of one teacher share its training draw, so where cells hold students of several
teachers each teacher's students are averaged first (the report's tables and its T. stddev
section both compare cells this way)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .common import accuracy, finite
from .stats import SIGNIFICANCE, mean_std, welch_interval, welch_t_test


def _by_teacher(recs, get) -> dict:
    groups = defaultdict(list)
    for r in recs:
        if finite(get(r)):
            groups[r.get("teacher_id")].append(get(r))
    return groups


def replicates(recs, get, unit: str) -> list[float]:
    """A cell's independent values: each teacher's mean over its students (``unit="teacher"``), or
    each run's value (``"seed"``)."""
    groups = _by_teacher(recs, get)
    if unit == "teacher":
        return [float(np.mean(v)) for v in groups.values()]
    return [v for values in groups.values() for v in values]


def replication_unit(*cells) -> str:
    """The unit a comparison of student cells is tested on: the teacher when every cell holds
    students of two or more teachers (students of one teacher share its training draw, so they
    are not independent: each teacher's students are averaged first), else the student seed (the
    teachers' own seed-to-seed variance is then not in the test)."""
    groups = [_by_teacher(c, accuracy) for c in cells]
    return "teacher" if all(len(g) >= 2 and None not in g for g in groups) else "seed"


def versus(recs, ref, get) -> tuple[float, float, float, float, float, str]:
    """A cell against its reference cell on one metric: (difference of means, its confidence interval
    at 1 - SIGNIFICANCE, Welch's t and p, the unit of replication)."""
    unit = replication_unit(recs, ref)
    values, ref_values = replicates(recs, get, unit), replicates(ref, get, unit)
    lo, hi = welch_interval(values, ref_values, 1 - SIGNIFICANCE)
    return (mean_std(values)[0] - mean_std(ref_values)[0], lo, hi) + welch_t_test(values, ref_values) + (unit,)
