"""The report's statistics against independent references: the textbook Welch formulas written out
in float64 loops, and scipy's own implementation of the test and its interval."""
import math

import numpy as np
import pytest
from scipy import stats

from fastkd.report.stats import mean_std, welch_interval, welch_t_test

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
    assert welch_interval([0.6, 0.6], [0.5, 0.5]) == pytest.approx((0.1, 0.1))  # no spread: a point
    m, s, n = mean_std([0.1, None, 0.3])
    assert (m, s, n) == pytest.approx((0.2, np.std([0.1, 0.3], ddof=1), 2))
