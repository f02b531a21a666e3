"""The report's T. stddev section: cells by distillation view, and the rank correlation across
views with an exact permutation p (checked against a brute-force loop)."""
import itertools
import math

import pytest

from fastkd.report import write_report
from fastkd.report.stats import spearman_exact_test
from fastkd.report.taught import taught_cells, taught_correlation
from tests.test_report import _analysis, _cfg

VIEWS = ["none", "crop_flip", "cutout", "autoaugment", "mixup", "cutmix"]


def _student(view, method, seed, stddev, acc):
    cfg = _cfg("lenet", 2) | {"augment": view}
    cfg["distill"] = cfg["distill"] | ({"method": method} if method != "kd" else {})
    return {"id": f"s-{method}-{view}-{seed}", "kind": "student", "status": "done", "teacher_id": "t",
            "labels": {"teacher_model": "resnet8", "augment": "crop_flip", "seed": seed, "student_model": "lenet",
                       "distill": f"{method}-{view}"},
            "config": cfg,
            "metrics": {"test_accuracy": acc, "test_loss": 2 - acc, "data_sizes": {"train": 500, "test": 100},
                        "teacher_stddev": {"value": stddev, "chunks": 10, "chunk_size": 640, "view": view,
                                           "teacher_outputs": "cache" if view == "none" else "live"}},
            "analysis": _analysis(acc, 0.02, 0.2, seed) | {"fidelity": {"agreement": 0.7, "kl": 0.3}}}


def _records():
    recs = []
    for seed in range(3):
        for i, view in enumerate(VIEWS):
            # kd: accuracy falls exactly as T. stddev rises; dkd: one pair of views swapped
            recs.append(_student(view, "kd", seed, 0.01 + 0.001 * i + 1e-5 * seed, 0.5 - 0.01 * i + 0.001 * seed))
            j = {1: 2, 2: 1}.get(i, i)
            recs.append(_student(view, "dkd", seed, 0.01 + 0.001 * i, 0.6 - 0.01 * j))
    return recs


def _brute_force_p(x, y):
    """Untied data: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); p = share of orderings with |rho| as large."""
    n = len(x)
    rank = lambda v: [sorted(v).index(a) + 1 for a in v]  # noqa: E731
    rx, ry = rank(x), rank(y)
    rho = lambda b: 1 - 6 * sum((a - c) ** 2 for a, c in zip(rx, b)) / (n * (n * n - 1))  # noqa: E731
    observed = abs(rho(ry))
    perms = list(itertools.permutations(ry))
    return rho(ry), sum(abs(rho(p)) >= observed - 1e-12 for p in perms) / len(perms)


@pytest.mark.parametrize("y", [[1, 2, 3, 4, 5, 6], [2, 1, 3, 4, 6, 5], [3, 1, 6, 2, 5, 4], [5, 3, 1, 2, 4]])
def test_exact_p_matches_brute_force(y):
    x = list(range(len(y)))
    rho, p = spearman_exact_test(x, y)
    want_rho, want_p = _brute_force_p(x, y)
    assert rho == pytest.approx(want_rho) and p == pytest.approx(want_p)


def test_cells_and_correlation_across_views():
    cells = taught_cells(_records())
    assert len(cells) == 12 and all(c["seeds"] == 3 for c in cells)
    kd = [c for c in cells if c["method"] == "kd"]
    assert [c["view"] for c in kd] == VIEWS  # sorted by T. stddev
    assert kd[0]["t_stddev"] == pytest.approx(0.01 + 1e-5) and kd[0]["teacher_outputs"] == "cache"
    assert kd[2]["test_accuracy"] == pytest.approx(0.48 + 0.001)
    corr = {r["method"]: r for r in taught_correlation(cells)}
    assert corr["kd"]["rho_test_accuracy"] == pytest.approx(-1.0) and corr["kd"]["rho_test_loss"] == pytest.approx(1.0)
    assert corr["kd"]["p_test_accuracy"] == pytest.approx(2 / math.factorial(6))
    rho, p = _brute_force_p(list(range(6)), [-(0.6 - 0.01 * {1: 2, 2: 1}.get(i, i)) for i in range(6)])
    assert corr["dkd"]["rho_test_accuracy"] == pytest.approx(-rho) and corr["dkd"]["p_test_accuracy"] == pytest.approx(p)
    assert corr["dkd"]["views"] == 6 and corr["dkd"]["rho_test_accuracy_ci_low"] < corr["dkd"]["rho_test_accuracy"]
    assert corr["kd"]["order_by_accuracy"] == " > ".join(VIEWS)
    # against the reference view (crop_flip) of the same method, over the 3 seeds
    from scipy import stats
    kd_by_view = {c["view"]: c for c in kd}
    assert kd_by_view["crop_flip"]["is_reference_view"] and "delta_vs_reference_view" not in kd_by_view["crop_flip"]
    cutmix = kd_by_view["cutmix"]
    assert cutmix["delta_vs_reference_view"] == pytest.approx(-0.04)
    a = [0.5 - 0.05 + 0.001 * s for s in range(3)]
    b = [0.5 - 0.01 + 0.001 * s for s in range(3)]
    assert cutmix["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, nan_ok=True)
    ps = sorted(c["p_value"] for c in kd if "p_value" in c and math.isfinite(c["p_value"]))
    assert min(c.get("p_holm", 2) for c in kd) == pytest.approx(min(1.0, len(ps) * ps[0])) if ps else True


def test_the_summary_has_the_section_and_the_files(tmp_path):
    paths = write_report(_records(), tmp_path)
    text = paths["summary_text"]
    assert "## What the students were taught: T. stddev by distillation augmentation" in text
    assert (tmp_path / "taught.csv").is_file() and (tmp_path / "taught_correlation.csv").is_file()
    assert "none < crop_flip < cutout < autoaugment < mixup < cutmix" in text


def test_the_csv_gives_the_view_difference_in_points_like_its_interval(tmp_path):
    write_report(_records(), tmp_path, reference_augment="crop_flip")  # the reference view
    import csv
    rows = {r["view"] + r["method"]: r for r in csv.DictReader((tmp_path / "taught.csv").open())}
    cutmix = rows["cutmixkd"]
    assert float(cutmix["delta_vs_reference_view_pct"]) == pytest.approx(-4.0)
    assert float(cutmix["delta_ci_low_pct"]) < -4.0 < float(cutmix["delta_ci_high_pct"])
