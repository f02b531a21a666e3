"""Small statistics for reports: mean +- sample std, Welch's t-test and interval, Spearman's rank
correlation."""
from __future__ import annotations

import math

import numpy as np


def mean_std(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def _welch_parts(a, b):
    """(mean difference, its standard error, Welch-Satterthwaite degrees of freedom), or None when
    either side has < 2 values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else math.inf
    return float(a.mean() - b.mean()), math.sqrt(va + vb), dof


def welch_t_test(a, b) -> tuple[float, float]:
    """(t, two-sided p) of Welch's unequal-variance t-test; nan when either side has < 2 values."""
    parts = _welch_parts(a, b)
    if parts is None:
        return math.nan, math.nan
    diff, se, dof = parts
    if se == 0:
        return (math.inf if diff != 0 else 0.0), (0.0 if diff != 0 else 1.0)
    from scipy import stats
    t = diff / se
    return float(t), float(2 * stats.t.sf(abs(t), dof))


def welch_interval(a, b, level: float = 0.95) -> tuple[float, float]:
    """Two-sided confidence interval of mean(a) - mean(b) with Welch's standard error and degrees
    of freedom (the interval that matches :func:`welch_t_test`); nan when either side has < 2 values."""
    parts = _welch_parts(a, b)
    if parts is None:
        return math.nan, math.nan
    diff, se, dof = parts
    if se == 0:
        return diff, diff
    from scipy import stats
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return diff - half, diff + half


def spearman(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for < 3 points."""
    return spearman_test(x, y)[0]


def spearman_test(x, y) -> tuple[float, float]:
    """(rho, two-sided p) of Spearman's rank correlation; (nan, nan) for < 3 points or a constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan
    from scipy import stats
    r = stats.spearmanr(x, y)
    return float(r.statistic), float(r.pvalue)
