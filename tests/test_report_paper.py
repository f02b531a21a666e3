"""The comparison with the paper's numbers, on tables built by hand: which study augmentation reads
as which of the paper's, the sign and confirmation logic, and the rank correlation of the orders."""
import math

import pytest
from scipy import stats

from fastkd.report.paper import PAPER_CD_LENET, PAPER_STUDENTS, compare_with_paper, paper_augment
from fastkd.report.stats import holm


def _student(aug, acc, cd, delta=None, ci=None, p=None):
    row = {"student": "lenet", "teacher": "resnet8", "augment": aug, "distill": "kd", "seeds": 3,
           "test_accuracy": acc, "cd_softmax_paper": cd}
    if delta is not None:
        row |= {"delta_vs_reference": delta, "delta_ci_low": ci[0], "delta_ci_high": ci[1], "p_value": p}
    return row


def _with_holm(rows):
    """The family's Holm-adjusted p, as the tables add it (every row here shares one reference cell)."""
    tested = [r for r in rows if "p_value" in r]
    for r, q in zip(tested, holm([r["p_value"] for r in tested])):
        r["p_holm"] = q
    return rows


TABLES = {
    "teachers": [{"teacher": "resnet8", "augment": a, "test_accuracy": acc}
                 for a, acc in (("none", 0.80), ("crop_flip", 0.83), ("mixup", 0.81), ("crop_flip+mixup", 0.84))],
    "students": _with_holm([
        _student("none", 0.60, 0.150),
        _student("crop_flip", 0.59, 0.140, -0.01, (-0.02, 0.001), 0.07),    # same sign, CI crosses 0
        _student("cutout", 0.605, 0.160, 0.005, (0.001, 0.009), 0.03),      # opposite sign to the paper
        _student("mixup", 0.57, 0.155, -0.03, (-0.04, -0.02), 0.001),       # confirmed
        _student("cutmix", 0.58, 0.145, -0.02, (-0.05, 0.01), 0.2),
        _student("crop_flip+mixup", 0.58, 0.10, -0.02, (-0.03, -0.01), 0.01),
        _student("crop_flip+other", 0.58, 0.10, -0.02, (-0.03, -0.01), 0.01),  # nothing in the paper to match
        {"student": "lenet", "teacher": "-", "augment": "scratch", "distill": "scratch", "seeds": 3,
         "test_accuracy": 0.55, "cd_softmax_paper": 0.1},
    ]),
}


def test_augmentations_read_as_the_papers_by_their_last_transform():
    assert [paper_augment(a) for a in ("mixup", "crop_flip+mixup", "crop_flip+cutmix", "crop_flip", "scratch",
                                       "crop_flip+other")] == ["mixup", "mixup", "cutmix", "crop_flip", None, None]


def test_student_signs_and_confirmation():
    rows = {r["augment"]: r for r in compare_with_paper(TABLES)["students"]}
    assert set(rows) == {"crop_flip", "cutout", "mixup", "cutmix", "crop_flip+mixup"}
    paper = PAPER_STUDENTS["lenet"]
    assert rows["mixup"]["paper_delta_pts"] == pytest.approx(paper["mixup"] - paper["none"])
    assert rows["crop_flip+mixup"]["paper_augment"] == "mixup" and rows["crop_flip+mixup"]["mixed_sample"]
    assert not rows["cutout"]["mixed_sample"]
    assert [(rows[a]["same_sign"], rows[a]["confirmed"]) for a in ("crop_flip", "cutout", "mixup", "cutmix")] == \
        [(True, False), (False, False), (True, True), (True, False)]
    assert rows["mixup"]["delta_pts"] == pytest.approx(-3.0) and rows["mixup"]["ci_low_pts"] == pytest.approx(-4.0)
    # crop_flip+mixup: its interval excludes 0 and its raw p is 0.01, but among six comparisons with
    # one reference cell Holm's p is 0.05: not confirmed
    assert rows["crop_flip+mixup"]["p_holm"] == pytest.approx(0.05) and not rows["crop_flip+mixup"]["confirmed"]


def test_teacher_gains_and_orders_against_the_paper():
    out = compare_with_paper(TABLES)
    gains = {r["augment"]: r for r in out["teachers"]}
    assert gains["crop_flip+mixup"]["gain_pts"] == pytest.approx(4.0)
    assert gains["crop_flip+mixup"]["paper_gain_pts"] == pytest.approx(86.77 - 85.18)
    acc, cd = out["rankings"]
    five = ["none", "crop_flip", "cutout", "mixup", "cutmix"]
    ours = {r["augment"]: r for r in TABLES["students"]}
    assert acc["ours"] == "cutout > none > crop_flip > cutmix > mixup"
    assert acc["paper"] == "none > cutout > mixup > crop_flip > cutmix"
    ref = stats.spearmanr([ours[a]["test_accuracy"] for a in five], [PAPER_STUDENTS["lenet"][a] for a in five])
    assert acc["spearman_rho"] == pytest.approx(ref.statistic)
    ref = stats.spearmanr([ours[a]["cd_softmax_paper"] for a in five], [PAPER_CD_LENET[a] for a in five])
    assert cd["measure"].startswith("CD") and cd["spearman_rho"] == pytest.approx(ref.statistic)


def test_nothing_to_compare_with_another_reference():
    assert compare_with_paper(TABLES, reference_augment="crop_flip") == {"students": [], "teachers": [], "rankings": []}
    assert not math.isnan(compare_with_paper(TABLES)["rankings"][0]["spearman_rho"])


def test_calibration_compared_for_the_lenet_students_the_paper_measured():
    rows = [dict(r) for r in TABLES["students"]]
    for r in rows:
        if r["augment"] in ("mixup", "cutmix", "crop_flip"):
            r |= {"ece_delta": -0.02, "ece_delta_ci_low": -0.03, "ece_delta_ci_high": -0.01, "ece_p_value": 0.01,
                  "ece_p_holm": 0.03}
    rows[4]["ece_delta_ci_high"] = 0.005  # cutmix: the interval reaches past 0
    out = {r["augment"]: r for r in compare_with_paper({**TABLES, "students": rows})["students"]}
    assert "ece_delta_pts" not in out["crop_flip"]  # the paper reported no ECE for it
    assert out["mixup"]["ece_delta_pts"] == pytest.approx(-2.0) and out["mixup"]["ece_confirmed"]
    assert out["mixup"]["paper_ece_delta_pts"] == pytest.approx(2.07 - 9.62)
    assert not out["cutmix"]["ece_confirmed"]
