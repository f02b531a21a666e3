"""Small statistics for reports: mean +- sample std, Welch's t-test and interval, Spearman's rank
correlation (tie-aware) with its interval, Holm's adjustment for a family of tests."""
from __future__ import annotations

import math

import numpy as np

from .common import finite

SIGNIFICANCE = 0.05  # the level of every test and (as 1 - it) every interval in a report


def mean_std(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def finite_mean_std(items, get) -> tuple[float, float, int]:
    """:func:`mean_std` of ``get(item)`` over ``items`` (runs of a cell, per-run rows), leaving out
    the values that are missing or not finite (a metric a run did not record, a diverged run)."""
    return mean_std([v for v in map(get, items) if finite(v)])


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
    """(t, two-sided p) of Welch's unequal-variance t-test; nan when either side has < 2 values,
    and when neither side varies (every seed of both cells equal): the test is undefined there,
    never 'significant' (it returned t = inf, p = 0)."""
    parts = _welch_parts(a, b)
    if parts is None:
        return math.nan, math.nan
    diff, se, dof = parts
    if se == 0:
        return math.nan, math.nan
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
    if se == 0:  # no spread in either cell: no interval (a zero-width one would claim certainty)
        return math.nan, math.nan
    from scipy import stats
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return diff - half, diff + half


TIE_TOLERANCE = 1e-9  # values this close (relative) are one value: means of equal seed sums differ by an ulp


def tie_aware_ranks(values) -> np.ndarray:
    """Average ranks (1-based) where values equal within a relative ``TIE_TOLERANCE`` share a rank."""
    v = np.asarray(values, np.float64)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    start = 0
    for i in range(1, len(v) + 1):
        if i == len(v) or not math.isclose(v[order[i]], v[order[i - 1]], rel_tol=TIE_TOLERANCE, abs_tol=0.0):
            ranks[order[start:i]] = (start + 1 + i) / 2  # the mean of ranks start+1 .. i
            start = i
    return ranks


def spearman_test(x, y) -> tuple[float, float]:
    """(rho, two-sided p) of Spearman's rank correlation with tie-aware ranks (``tie_aware_ranks``),
    p from the t approximation as scipy's spearmanr computes it; (nan, nan) for < 3 points or a
    constant."""
    rx, ry = tie_aware_ranks(x), tie_aware_ranks(y)
    n = len(rx)
    if n < 3 or np.all(rx == rx[0]) or np.all(ry == ry[0]):
        return math.nan, math.nan
    rho = float(np.clip(np.corrcoef(rx, ry)[0, 1], -1.0, 1.0))
    if abs(rho) == 1.0:
        return rho, 0.0
    from scipy import stats
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return rho, float(2 * stats.t.sf(abs(t), n - 2))


EXACT_UP_TO = 8  # points: below this many, a rank correlation's p enumerates every permutation (8! = 40,320)


def spearman_exact_test(x, y) -> tuple[float, float]:
    """(rho, two-sided p) with p exact for <= EXACT_UP_TO points: the share of all orderings of ``y``
    whose |rho| reaches the observed one (the t approximation is poor at 5 or 6 points); more
    points: :func:`spearman_test`."""
    rho, p = spearman_test(x, y)
    n = len(x)
    if not math.isfinite(rho) or n > EXACT_UP_TO:
        return rho, p
    import itertools
    rx, ry = tie_aware_ranks(x), tie_aware_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    observed = abs(float((rx * ry).sum())) / scale
    hits = total = 0
    for perm in itertools.permutations(ry):
        total += 1
        hits += abs(float(np.dot(rx, perm))) / scale >= observed - 1e-12
    return rho, hits / total


def rank_correlation_interval(rho: float, n: int, level: float = 0.95, controls: int = 0) -> tuple[float, float]:
    """Confidence interval of Spearman's rho by Fisher's z with Bonett & Wright's (2000) standard
    error for rank correlations, sqrt(1 + rho^2 / 2) / sqrt(n - 3 - controls) (``controls``: the
    variables partialled out); nan below 4 + controls points."""
    if n < 4 + controls or not math.isfinite(rho):
        return math.nan, math.nan
    from scipy import stats
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = float(stats.norm.ppf(0.5 + level / 2)) * math.sqrt(1 + rho * rho / 2) / math.sqrt(n - 3 - controls)
    return math.tanh(z - half), math.tanh(z + half)


def partial_spearman(x, y, z) -> tuple[float, float]:
    """(rho, two-sided p) of Spearman's rank correlation of x and y with z held fixed: the partial
    correlation of the tie-aware ranks (rho_xy - rho_xz rho_yz) / sqrt((1 - rho_xz^2)(1 - rho_yz^2)),
    p from t with n - 3 degrees of freedom; (nan, nan) below 4 points or for a constant."""
    n = len(x)
    if n < 4:
        return math.nan, math.nan
    r = [tie_aware_ranks(v) for v in (x, y, z)]
    if any(np.all(v == v[0]) for v in r):
        return math.nan, math.nan
    c = np.corrcoef(np.vstack(r))
    r_xy, r_xz, r_yz = c[0, 1], c[0, 2], c[1, 2]
    denominator = (1 - r_xz ** 2) * (1 - r_yz ** 2)
    if denominator <= 0:  # z determines x or y: nothing is left to correlate
        return math.nan, math.nan
    rho = float(np.clip((r_xy - r_xz * r_yz) / math.sqrt(denominator), -1.0, 1.0))
    if abs(rho) == 1.0:
        return rho, 0.0
    from scipy import stats
    t = rho * math.sqrt((n - 3) / (1 - rho * rho))
    return rho, float(2 * stats.t.sf(abs(t), n - 3))


def detectable_difference(a, b, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true difference of means a two-sided Welch test at 1 - ``level`` would detect
    with probability ``power``, given the spread and sizes of ``a`` and ``b``:
    (t_{(1+level)/2, df} + t_{power, df}) * SE (the usual normal-theory approximation); nan when
    either side has < 2 values or neither varies."""
    parts = _welch_parts(a, b)
    if parts is None or parts[1] == 0:
        return math.nan
    from scipy import stats
    _, se, dof = parts
    return float((stats.t.ppf(0.5 + level / 2, dof) + stats.t.ppf(power, dof)) * se)


def holm(pvalues) -> list[float]:
    """Holm's (1979) step-down adjusted p-values of one family of tests; nan entries (tests that
    could not be run) stay nan and do not count in the family's size."""
    p = [float(v) for v in pvalues]
    idx = sorted((i for i, v in enumerate(p) if math.isfinite(v)), key=lambda i: p[i])
    m = len(idx)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def grouped_permutation_test(x, y, groups, *, max_permutations: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """(Spearman's rho over all points, two-sided p) where the p-value comes from permuting whole
    groups, not points: the points of one group (the students of one teacher) are not independent,
    so the null distribution pairs each group's x-values with another group's y-values, in their
    order, among groups of the same size. Every such permutation is tried when there are at most
    ``max_permutations`` (the identity included: p >= 1 / their number), else a seeded sample of them
    (p = (1 + as extreme) / (1 + drawn)). nan for < 3 points, or fewer than 2 groups of one size."""
    import itertools
    rho, _ = spearman_test(x, y)
    if not math.isfinite(rho):
        return math.nan, math.nan
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    strata: dict = {}
    for idx in members.values():
        strata.setdefault(len(idx), []).append(idx)
    movable = [blocks for blocks in strata.values() if len(blocks) >= 2]
    if not movable:
        return rho, math.nan
    total = math.prod(math.factorial(len(b)) for b in movable)
    exact = total <= max_permutations
    if exact:
        orders = [sum(combo, ()) for combo in itertools.product(
            *(itertools.permutations(range(len(b))) for b in movable))]
    else:
        rng = np.random.default_rng(seed)
        orders = [sum((tuple(rng.permutation(len(b))) for b in movable), ()) for _ in range(max_permutations)]
    # one row of y-indices per permutation: group blocks[k] takes the y-values of group blocks[order[k]]
    rx, ry_points = tie_aware_ranks(x), tie_aware_ranks(y)
    orders = np.asarray(orders)
    index = np.tile(np.arange(len(ry_points)), (len(orders), 1))
    offset = 0
    for blocks in movable:
        members_of = np.asarray(blocks)  # (groups of this size, size): the points of each group
        for k, dest in enumerate(blocks):
            index[:, dest] = members_of[orders[:, offset + k]]
        offset += len(blocks)
    ry = ry_points[index]  # permuting values permutes their ranks
    rx, ry = rx - rx.mean(), ry - ry.mean(1, keepdims=True)
    rhos = (ry @ rx) / np.sqrt((ry * ry).sum(1) * (rx @ rx))
    extreme = int((np.abs(rhos) >= abs(rho) - 1e-12).sum())  # ties with the observed value count as extreme
    return rho, extreme / total if exact else (1 + extreme) / (1 + max_permutations)
