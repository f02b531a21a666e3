"""What the students were taught, by distillation augmentation: Wang et al.'s T. stddev of the
teacher outputs each distillation run trained against (fastkd.metrics.teacher_stddev), beside the
students' accuracy and test loss, and the rank correlation across the augmentations used during
distillation (Wang et al. 2022 report that a lower T. stddev goes with a lower student test loss).

A cell is one distillation setting of one teacher; its point is the mean over its student seeds
(the seeds share the teacher and the augmentation, so they are not independent points). A
correlation is taken across the cells of one student model, teacher and KD method that differ
in their distillation augmentation (the view), with one point per view.
"""
from __future__ import annotations

from collections import defaultdict

from .common import accuracy, finite
from .replication import versus
from .stats import finite_mean_std, holm, rank_correlation_interval, spearman_exact_test


def _stddev(r: dict) -> float | None:
    return (r["metrics"].get("teacher_stddev") or {}).get("value")


def _method(r: dict) -> str:
    return r["config"]["distill"].get("method", "kd")


# the cells whose views are compared with each other: one student model, teacher and KD method
GROUP = ("student", "teacher", "teacher_augment", "method")


def _groups(cells: list[dict]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for c in cells:
        groups[tuple(c[k] for k in GROUP)].append(c)
    return groups


def taught_cells(ok: list[dict], reference_view: str = "crop_flip") -> list[dict]:
    """One row per distillation cell: its method and view, T. stddev, accuracy and test loss (mean
    and sample std over the seeds), and its accuracy against the cell of the same method distilled
    under ``reference_view`` (where the grid has one)."""
    cells = defaultdict(list)
    for r in ok:
        if r["kind"] == "student" and r["labels"].get("distill") != "scratch" and finite(_stddev(r)):
            lab = r["labels"]
            cells[(lab["student_model"], lab.get("teacher_model", "-"), lab["augment"], lab["distill"])].append(r)
    rows = []
    for (student, teacher, teacher_aug, distill), recs in cells.items():
        row = {"student": student, "teacher": teacher, "teacher_augment": teacher_aug, "distill": distill,
               "method": _method(recs[0]), "view": recs[0]["config"]["augment"], "seeds": len(recs),
               "teacher_outputs": recs[0]["metrics"]["teacher_stddev"].get("teacher_outputs", "-")}
        for key, get in (("t_stddev", _stddev), ("test_accuracy", accuracy),
                         ("test_loss", lambda r: r["metrics"]["test_loss"])):
            row[key], row[key + "_std"], _ = finite_mean_std(recs, get)
        row["_records"] = recs
        rows.append(row)
    _versus_reference_view(rows, reference_view)
    rows.sort(key=lambda r: tuple(r[k] for k in GROUP) + (r["t_stddev"],))
    return rows


def _versus_reference_view(rows: list[dict], reference_view: str) -> None:
    """Each cell's accuracy minus the reference view's in the same student, teacher and method,
    compared as the students table compares cells (``replication.versus``: Welch over the student
    seeds of one teacher, over teachers where cells hold several), Holm-adjusted over the views of
    the group."""
    for group in _groups(rows).values():
        ref = next((r for r in group if r["view"] == reference_view), None)
        if ref is None:
            continue
        ref["is_reference_view"] = True
        others = [r for r in group if r is not ref]
        for r in others:
            delta, lo, hi, _, p, unit = versus(r["_records"], ref["_records"], accuracy)
            r |= {"reference_view": reference_view, "delta_vs_reference_view": delta, "delta_ci_low": lo,
                  "delta_ci_high": hi, "p_value": p, "unit": unit}
        for r, q in zip(others, holm([r["p_value"] for r in others])):
            r["p_holm"] = q
    for r in rows:
        del r["_records"]


def taught_correlation(cells: list[dict]) -> list[dict]:
    """Spearman's rho of T. stddev against the students' accuracy and test loss across views, per
    student model, teacher, teacher augmentation and method; p exact over all orderings at <= 8
    views; the interval counts views."""
    rows = []
    for key, group in _groups(cells).items():
        row = dict(zip(GROUP, key)) | {
            "views": len(group), "order_by_t_stddev": " < ".join(c["view"] for c in group),
            "order_by_accuracy": " > ".join(c["view"] for c in sorted(group, key=lambda c: -c["test_accuracy"]))}
        stddevs = [c["t_stddev"] for c in group]
        for target in ("test_accuracy", "test_loss"):
            rho, p = spearman_exact_test(stddevs, [c[target] for c in group])
            lo, hi = rank_correlation_interval(rho, len(group))
            row |= {f"rho_{target}": rho, f"rho_{target}_ci_low": lo, f"rho_{target}_ci_high": hi,
                    f"p_{target}": p}
        rows.append(row)
    return rows
