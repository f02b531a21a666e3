"""A study's results beside the numbers Das et al. 2020 reported (docs/protocol.md; read from the
authors' notebooks, single runs, CIFAR-10 test set, ResNet-18 teachers trained 250 epochs).

The paper's levels depend on its teacher and schedule, so only what can carry over is compared:
the sign of each student's difference from the `none`-teacher student (the paper's claim: teachers
trained with mixed samples distil worse), the order of the augmentations, and each teacher's gain
over the `none` teacher. A study augmentation is matched to the paper's by its last transform
(`crop_flip+mixup` is a reading of the paper's `mixup`), because the paper does not say whether its
base transform ran under mixing.
"""
from __future__ import annotations

import math

from .common import augment_rank, finite
from .stats import SIGNIFICANCE, spearman_test

PAPER_AUGMENTS = ("none", "crop_flip", "cutout", "mixup", "cutmix")
MIXED = ("mixup", "cutmix")
# test accuracy, %: the ResNet-18 teachers and the students distilled from them
PAPER_TEACHER = {"none": 85.18, "cutout": 87.96, "crop_flip": 94.03, "cutmix": 95.43, "mixup": 86.77}
PAPER_STUDENTS = {
    "lenet": {"none": 65.20, "cutout": 64.42, "crop_flip": 63.11, "cutmix": 62.13, "mixup": 63.35},
    "alexnet": {"none": 76.87, "cutout": 78.47, "crop_flip": 77.72, "cutmix": 72.00, "mixup": 71.42},
}
# expected calibration error of the LeNet students, % (10 equal-width bins on the max softmax)
PAPER_ECE_LENET = {"none": 9.62, "mixup": 2.07, "cutmix": 1.57}
# class discrimination of the LeNet students' softmax outputs, the authors' loops (`paper` variant)
PAPER_CD_LENET = {"none": 0.161022, "mixup": 0.160580, "cutout": 0.158004, "crop_flip": 0.155214,
                  "cutmix": 0.154048}


def paper_augment(aug: str) -> str | None:
    """The paper's augmentation a study augmentation reads as: its last transform, if the paper has it."""
    last = aug.split("+")[-1]
    return last if last in PAPER_AUGMENTS else None


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def _confirmed(ci: tuple, paper_delta: float, p_adjusted: float) -> bool:
    """The paper's sign confirmed: the interval lies wholly on the paper's side of 0 and the test
    holds after Holm's adjustment for the comparisons sharing its reference cell."""
    return all(finite(c) for c in ci) and _sign(paper_delta) != 0 and all(_sign(c) == _sign(paper_delta) for c in ci) \
        and finite(p_adjusted) and p_adjusted < SIGNIFICANCE


def _calibration(row: dict, base: str) -> dict:
    """The student's ECE difference from the reference student, beside the paper's (LeNet only)."""
    if row["student"] != "lenet" or base not in PAPER_ECE_LENET or "ece_delta" not in row:
        return {}
    ci = (100 * row["ece_delta_ci_low"], 100 * row["ece_delta_ci_high"])
    paper_delta = PAPER_ECE_LENET[base] - PAPER_ECE_LENET["none"]
    return {"ece_delta_pts": 100 * row["ece_delta"], "ece_ci_low_pts": ci[0], "ece_ci_high_pts": ci[1],
            "ece_p_value": row["ece_p_value"], "ece_p_holm": row.get("ece_p_holm", math.nan),
            "paper_ece_delta_pts": paper_delta,
            "ece_confirmed": _confirmed(ci, paper_delta, row.get("ece_p_holm", math.nan))}


def _ranking(values: dict) -> str:
    return " > ".join(sorted(values, key=lambda a: -values[a]))


def compare_with_paper(tables: dict, reference_augment: str = "none") -> dict:
    """Rows comparing the study's tables with the paper: ``students`` (each distilled student's
    difference from the reference, beside the paper's), ``teachers`` (each teacher's gain over
    the `none` teacher), ``rankings`` (orders of augmentations and their rank correlation)."""
    out = {"students": [], "teachers": [], "rankings": []}
    if reference_augment != "none":
        return out  # the paper's differences are all from the `none` teacher's student
    for r in tables["students"]:
        paper = PAPER_STUDENTS.get(r["student"], {})
        base = paper_augment(r["augment"])
        if not paper or base is None or "delta_vs_reference" not in r:
            continue
        delta, paper_delta = 100 * r["delta_vs_reference"], paper[base] - paper["none"]
        ci = (100 * r.get("delta_ci_low", math.nan), 100 * r.get("delta_ci_high", math.nan))
        out["students"].append({
            "student": r["student"], "teacher": r["teacher"], "augment": r["augment"], "distill": r["distill"],
            "paper_augment": base, "mixed_sample": base in MIXED, "seeds": r["seeds"], "delta_pts": delta,
            "ci_low_pts": ci[0], "ci_high_pts": ci[1], "p_value": r.get("p_value", math.nan),
            "p_holm": r.get("p_holm", math.nan), "paper_delta_pts": paper_delta,
            "same_sign": _sign(delta) == _sign(paper_delta),
            "confirmed": _confirmed(ci, paper_delta, r.get("p_holm", math.nan)),
        } | _calibration(r, base))
    by_teacher = {}
    for r in tables["teachers"]:
        by_teacher.setdefault(r["teacher"], {})[r["augment"]] = r["test_accuracy"]
    for tm, accs in by_teacher.items():
        for aug in sorted(accs, key=augment_rank):
            base = paper_augment(aug)
            if base is None or aug == "none" or "none" not in accs:
                continue
            out["teachers"].append({"teacher": tm, "augment": aug, "paper_augment": base,
                                    "gain_pts": 100 * (accs[aug] - accs["none"]),
                                    "paper_gain_pts": PAPER_TEACHER[base] - PAPER_TEACHER["none"]})
    out["rankings"] = _rankings(tables)
    return out


def _rankings(tables: dict) -> list[dict]:
    """Order of the paper's five augmentations by student accuracy (and by LeNet's CD), ours against
    the paper's, with Spearman's rho over the five (a rank agreement, n = 5: p is only indicative)."""
    rows = []
    cells = {}
    for r in tables["students"]:
        if r["augment"] in PAPER_AUGMENTS and r["distill"] != "scratch":
            cells.setdefault((r["student"], r["teacher"], r["distill"]), {})[r["augment"]] = r
    for (sm, tm, dname), by_aug in sorted(cells.items()):
        measures = [("accuracy", "test_accuracy", PAPER_STUDENTS.get(sm))]
        if sm == "lenet":
            measures.append(("CD softmax, paper variant", "cd_softmax_paper", PAPER_CD_LENET))
        for name, key, paper in measures:
            if not paper:
                continue
            ours = {a: r[key] for a, r in by_aug.items() if finite(r.get(key))}
            common = [a for a in PAPER_AUGMENTS if a in ours]
            if len(common) < 3:
                continue  # an order of two says nothing a difference does not
            rho, p = spearman_test([ours[a] for a in common], [paper[a] for a in common])
            rows.append({"student": sm, "teacher": tm, "distill": dname, "measure": name, "augments": len(common),
                         "ours": _ranking({a: ours[a] for a in common}),
                         "paper": _ranking({a: paper[a] for a in common}), "spearman_rho": rho, "p_value": p})
    return rows
