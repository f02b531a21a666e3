"""The report's statistics against independent references: the textbook Welch formulas written out
in float64 loops, and scipy's own implementation of the test and its interval."""
import math

import numpy as np
import pytest
from scipy import stats

from fastkd.report.stats import (detectable_difference, holm, mean_std, partial_spearman, rank_correlation_interval,
                                 spearman_test, tie_aware_ranks, welch_interval, welch_t_test)

CASES = [
    ([0.612, 0.604, 0.619], [0.631, 0.628, 0.640]),
    ([0.50, 0.52, 0.49, 0.55], [0.47, 0.46]),
    ([1.0, 2.0, 4.0, 8.0, 16.0], [3.0, 3.5, 2.5]),
]


def _reference(a, b, level):
    """Welch-Satterthwaite by hand: sums in Python floats, quantile from the t distribution."""
    def var(x):
        m = sum(x) / len(x)
        return sum((v - m) ** 2 for v in x) / (len(x) - 1)
    sa, sb = var(a) / len(a), var(b) / len(b)
    diff = sum(a) / len(a) - sum(b) / len(b)
    dof = (sa + sb) ** 2 / (sa ** 2 / (len(a) - 1) + sb ** 2 / (len(b) - 1))
    se = math.sqrt(sa + sb)
    q = stats.t.ppf(0.5 + level / 2, dof)
    return diff / se, 2 * stats.t.sf(abs(diff / se), dof), (diff - q * se, diff + q * se)


@pytest.mark.parametrize("a,b", CASES)
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_welch_interval_and_test_match_the_formula_and_scipy(a, b, level):
    t_ref, p_ref, (lo_ref, hi_ref) = _reference(a, b, level)
    t, p = welch_t_test(a, b)
    lo, hi = welch_interval(a, b, level)
    assert (t, p) == pytest.approx((t_ref, p_ref), rel=1e-10)
    assert (lo, hi) == pytest.approx((lo_ref, hi_ref), rel=1e-10)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    assert (t, p) == pytest.approx((res.statistic, res.pvalue), rel=1e-10)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # the interval excludes 0 exactly when the test rejects at 1 - level
    assert (lo > 0 or hi < 0) == (p < 1 - level)


def test_degenerate_samples():
    assert all(math.isnan(v) for v in welch_interval([0.5], [0.4, 0.6]) + welch_t_test([0.5, 0.6], [0.4]))
    # no spread in either cell: the test and its interval are undefined, never 'significant'
    assert all(math.isnan(v) for v in welch_interval([0.6, 0.6], [0.5, 0.5]) + welch_t_test([0.6, 0.6], [0.5, 0.5]))
    assert all(math.isnan(v) for v in welch_t_test([0.6, 0.6, 0.6], [0.6, 0.6]))
    m, s, n = mean_std([0.1, None, 0.3])
    assert (m, s, n) == pytest.approx((0.2, np.std([0.1, 0.3], ddof=1), 2))


@pytest.mark.parametrize("x,y", [
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [2.0, 1.0, 4.0, 3.0, 7.0, 5.0, 6.0]),
    ([1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0], [0.5, 0.4, 0.9, 0.7, 0.9, 0.8, 0.1]),  # ties on both sides
    ([3.0, 3.0, 1.0, 2.0, 5.0], [1.0, 2.0, 2.0, 2.0, 0.0]),
])
def test_spearman_matches_scipy_with_and_without_ties(x, y):
    rho, p = spearman_test(x, y)
    ref = stats.spearmanr(x, y)
    assert (rho, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)


def test_values_one_ulp_apart_are_ties():
    # two students with equal seed sums have means 1 ulp apart: ranked apart, every rho was off
    a = (0.61 + 0.62 + 0.63) / 3
    b = math.nextafter(a, 1.0)
    assert a != b and tie_aware_ranks([0.5, a, b, 0.7]).tolist() == [1.0, 2.5, 2.5, 4.0]
    x, y = [0.2, 0.3, 0.4, 0.5, 0.6], [0.5, a, b, 0.7, 0.8]
    ref = stats.spearmanr(x, [0.5, a, a, 0.7, 0.8])  # scipy on the tie written as one value
    assert spearman_test(x, y) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert stats.spearmanr(x, y).statistic != pytest.approx(ref.statistic)  # what plain ranks gave


def test_holm_matches_its_definition_and_leaves_untested_out():
    p = [0.01, 0.04, 0.03, 0.005, math.nan, 0.2]
    finite = [(v, i) for i, v in enumerate(p) if not math.isnan(v)]
    m = len(finite)
    ref = {}
    for v, i in finite:  # adjusted p_(k) = max over j <= k of min(1, (m - j + 1) p_(j))
        ordered = sorted(finite)
        k = ordered.index((v, i))
        ref[i] = max(min(1.0, (m - j) * ordered[j][0]) for j in range(k + 1))
    out = holm(p)
    assert math.isnan(out[4]) and all(out[i] == pytest.approx(ref[i]) for i in ref)
    assert out[3] == pytest.approx(0.025) and out[0] == pytest.approx(0.04)  # 5 x 0.005; max(4 x 0.01, 0.025)


def test_rank_correlation_interval_is_fisher_z_with_the_bonett_wright_error():
    rho, n = 0.6, 12
    half = stats.norm.ppf(0.975) * math.sqrt(1 + rho ** 2 / 2) / math.sqrt(n - 3)
    lo, hi = rank_correlation_interval(rho, n)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)))
    assert lo < rho < hi and all(math.isnan(v) for v in rank_correlation_interval(0.9, 3))
    # 7 points: an interval wide enough that 'no association' cannot be read from a small rho
    assert rank_correlation_interval(0.1, 7)[0] < -0.6


def test_permuting_whole_teachers_where_the_naive_test_counts_students():
    # three teachers, five students each: both CD and accuracy follow the teacher, so 15 points
    # look strongly correlated, but only 3! = 6 pairings of teachers exist: p >= 1/6
    from fastkd.report.stats import grouped_permutation_test
    rng = np.random.default_rng(0)
    teacher = np.repeat([0, 1, 2], 5)
    x = teacher + 0.05 * rng.normal(size=15)
    y = teacher + 0.05 * rng.normal(size=15)
    assert stats.spearmanr(x, y).pvalue < 0.001
    rho, p = grouped_permutation_test(x, y, teacher)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic)
    # by hand: every pairing of the teachers' y-blocks with their x-blocks
    import itertools
    rhos = [abs(stats.spearmanr(x, np.concatenate([y[teacher == t] for t in order])).statistic)
            for order in itertools.permutations(range(3))]
    assert p == pytest.approx(np.mean([r >= abs(rho) - 1e-12 for r in rhos])) and p > 0.05
    # with many teachers the permutations are sampled, seeded
    many = np.repeat(np.arange(9), 2)
    a, b = rng.normal(size=18), rng.normal(size=18)
    r1, p1 = grouped_permutation_test(a, b, many, max_permutations=500, seed=3)
    assert (r1, p1) == grouped_permutation_test(a, b, many, max_permutations=500, seed=3) and 0 < p1 <= 1
    assert math.isnan(grouped_permutation_test(x, y, np.zeros(15))[1])  # one teacher: nothing to permute


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_spearman_is_the_correlation_of_rank_residuals(seed):
    # reference: regress each variable's ranks on z's ranks (least squares) and correlate the residuals
    g = np.random.default_rng(seed)
    z = g.normal(size=12)
    x, y = z + g.normal(size=12), 0.5 * z + g.normal(size=12)
    x[3] = x[4]  # a tie
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    design = np.column_stack([np.ones(12), rz])

    def residuals(v):
        return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]
    want = stats.pearsonr(residuals(rx), residuals(ry))[0]
    rho, p = partial_spearman(x, y, z)
    assert rho == pytest.approx(want, abs=1e-12)
    t = want * math.sqrt(9 / (1 - want ** 2))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), 9), rel=1e-9)


def test_partial_spearman_removes_what_the_control_explains():
    # x and y both follow z and nothing else: their plain rank correlation is high, the partial one is not
    g = np.random.default_rng(5)
    z = np.arange(40, dtype=float)
    x, y = z + g.normal(scale=0.5, size=40), z + g.normal(scale=0.5, size=40)
    assert spearman_test(x, y)[0] > 0.95
    assert abs(partial_spearman(x, y, z)[0]) < 0.4
    assert partial_spearman([1, 2, 3], [1, 2, 3], [3, 1, 2]) == (pytest.approx(math.nan, nan_ok=True),) * 2
    lo, hi = rank_correlation_interval(0.5, 12, controls=1)
    lo0, hi0 = rank_correlation_interval(0.5, 12)
    assert hi - lo > hi0 - lo0  # one degree of freedom fewer: a wider interval


def test_detectable_difference_matches_the_normal_power_formula_and_a_simulation():
    # with many replicates the t quantiles become normal ones: (z_0.975 + z_0.8) * sigma * sqrt(2 / n)
    g = np.random.default_rng(0)
    a, b = g.normal(0, 1, 4000), g.normal(0, 1, 4000)
    se = math.sqrt(a.var(ddof=1) / 4000 + b.var(ddof=1) / 4000)
    assert detectable_difference(a, b) == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se, rel=1e-3)
    # small cells (8 a side, sample sd exactly 1, so Welch's df is 14): a true difference of the size it
    # reports is found by Welch's test about 80% of the time in samples of that spread
    a, b = ((v - v.mean()) / v.std(ddof=1) for v in (g.normal(0, 1, 8), g.normal(0, 1, 8)))
    d = detectable_difference(a, b)
    assert d == pytest.approx((stats.t.ppf(0.975, 14) + stats.t.ppf(0.8, 14)) * math.sqrt(2 / 8), rel=1e-9)
    sims = g.normal(0, 1, (4000, 2, 8))
    sims[:, 0] += d
    found = np.mean(stats.ttest_ind(sims[:, 0], sims[:, 1], axis=1, equal_var=False).pvalue < 0.05)
    assert 0.75 < found < 0.85
    assert math.isnan(detectable_difference([1.0, 1.0], [2.0, 2.0])) and math.isnan(detectable_difference([1.0], [2.0, 3.0]))
