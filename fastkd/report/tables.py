"""Aggregate ledger records into the study's tables and write them (with the summary and plots).

Every grid dimension that varies (teacher model, augmentation, student model, distillation
setting) is a column, so rows of a 2-teacher x 2-setting grid stay distinguishable. Accuracies
are fractions in tables.json and percentages (columns ending ``_pct``) in the CSVs and the
summary; ``±`` is the sample standard deviation over the seeds of a cell.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

import numpy as np

from ..metrics.registry import REPRESENTATIONS, metrics
from .common import accuracy, augment_rank, cd_entry, done, ece, finite
from .paper import compare_with_paper
from .replication import replicates, versus
from .taught import taught_cells, taught_correlation
from .stats import (SIGNIFICANCE, detectable_difference, finite_mean_std, grouped_permutation_test, holm, mean_std,
                    partial_spearman, rank_correlation_interval, spearman_test)

VARIANT_NOTES = {
    "paper": "the authors' loops with their quirks (self-pairs in the intra sum, j > i in the inter sum, "
             "L = distinct predicted classes); higher = classes more separated",
    "clean": "the intended formula: mean intra-class minus mean inter-class cosine similarity of z-scored "
             "points, / sqrt(D); higher = more separated",
    "gdv": "Schilling et al.'s Generalized Discrimination Value: the same with Euclidean distance; "
           "lower (more negative) = more separated",
}


def build_tables(records: list[dict], reference_augment: str = "none") -> dict:
    """Rows (lists of dicts) for each table, aggregated over seeds."""
    ok = done(records)
    teachers, students = defaultdict(list), defaultdict(list)
    for r in ok:
        lab = r["labels"]
        if r["kind"] == "teacher":
            teachers[(lab["teacher_model"], lab["augment"])].append(r)
        else:
            students[(lab["student_model"], lab.get("teacher_model", "-"), lab["augment"], lab["distill"])].append(r)

    t_rows = []
    for (tm, aug), recs in teachers.items():
        m, s, n = finite_mean_std(recs, accuracy)
        row = {"teacher": tm, "augment": aug, "seeds": n, "test_accuracy": m, "test_accuracy_std": s}
        for key, get in (("ece", ece),
                         ("cd_features_clean", lambda r: cd_entry(r, "features", "clean").get("score")),
                         ("cd_features_paper", lambda r: cd_entry(r, "features", "paper").get("score"))):
            row[key], row[key + "_std"], _ = finite_mean_std(recs, get)
        t_rows.append(row)

    s_rows = []
    for (sm, tm, aug, dname), recs in students.items():
        accs = [accuracy(r) for r in recs]
        m, s, n = mean_std(accs)
        row = {"student": sm, "teacher": tm, "augment": aug, "distill": dname, "seeds": n, "test_accuracy": m,
               "test_accuracy_std": s}
        ref = students.get((sm, tm, reference_augment, dname))
        if ref is not None and aug != reference_augment:
            delta, lo, hi, t, p, unit = versus(recs, ref, accuracy)
            row |= {"delta_vs_reference": delta, "delta_ci_low": lo, "delta_ci_high": hi, "welch_t": t, "p_value": p,
                    "unit": unit, "replicates": len(replicates(recs, accuracy, unit)),
                    # the power the comparison had: the smallest difference it would see 80% of the time
                    "detectable_80": detectable_difference(replicates(recs, accuracy, unit),
                                                           replicates(ref, accuracy, unit), 1 - SIGNIFICANCE)}
            # calibration, the paper's other student finding (students of mixed-sample teachers are better calibrated)
            delta, lo, hi, _, p, _ = versus(recs, ref, ece)
            row |= {"ece_delta": delta, "ece_delta_ci_low": lo, "ece_delta_ci_high": hi, "ece_p_value": p}
        for key, get in (("ece", ece),
                         ("agreement", lambda r: r["analysis"].get("fidelity", {}).get("agreement")),
                         ("kl_teacher_student", lambda r: r["analysis"].get("fidelity", {}).get("kl")),
                         ("cd_softmax_paper", lambda r: cd_entry(r, "softmax", "paper").get("score")),
                         ("knn_purity_features", lambda r: r["analysis"]["knn"]["purity_features"]),
                         ("knn_accuracy_features", lambda r: r["analysis"]["knn"].get("accuracy_features"))):
            row[key], row[key + "_std"], _ = finite_mean_std(recs, get)
        s_rows.append(row)

    _adjust_for_many_comparisons(s_rows)

    cd_rows, knn_rows, cal_rows = [], [], []
    for r in ok:
        a, who = r["analysis"], _who(r)
        for rep, variants in a["class_discrimination"].items():
            for v, res in variants.items():
                cd_rows.append(who | {"representation": rep, "variant": v, "score": res.get("score"),
                                      "intra": res.get("intra"), "inter": res.get("inter"),
                                      "undefined": res.get("undefined", res.get("error", ""))})
        knn_rows.append(who | a["knn"])
        cal_rows.append(who | {k: a["calibration"][k] for k in ("accuracy", "ece", "mce", "nll")}
                        | ({"agreement": a["fidelity"]["agreement"], "kl_teacher_student": a["fidelity"]["kl"]}
                           if "fidelity" in a else {}))
    failed = [{"run": r["id"], "status": r["status"], "error": r.get("error", "")} for r in records
              if r.get("status") != "done"]
    t_rows.sort(key=lambda r: (r["teacher"], augment_rank(r["augment"])))
    s_rows.sort(key=lambda r: (r["student"], r["distill"] == "scratch", r["distill"], r["teacher"],
                               augment_rank(r["augment"])))
    tables = {"teachers": t_rows, "students": s_rows, "class_discrimination": cd_rows,
              "cd_correlation": cd_correlation(ok), "knn": _knn_summary(knn_rows), "knn_runs": knn_rows,
              "calibration_fidelity": cal_rows, "failed": failed}
    tables |= {f"metric_{m.name}": metric_cells(ok, m) for m in metrics() if m.columns}
    taught = taught_cells(ok, reference_view=reference_augment)
    if taught:  # studies with distillation runs that recorded T. stddev
        tables |= {"taught": taught, "taught_correlation": taught_correlation(taught)}
    paper = compare_with_paper(tables, reference_augment)
    return tables | {f"paper_{name}": rows for name, rows in paper.items()}


def _who(r: dict) -> dict:
    """Which run a per-run row is: its id, seed and the cell of the grid it belongs to (``CELL``)."""
    lab = r["labels"]
    return {"run": r["id"], "kind": r["kind"], "model": r["config"]["model"],
            "teacher": lab.get("teacher_model", "-") if r["kind"] == "student" else "-",
            "augment": lab["augment"], "distill": lab.get("distill", "-"), "seed": lab["seed"]}


CELL = ("kind", "model", "teacher", "augment", "distill")


def _cell_summary(run_rows: list[dict], keys, first=()) -> list[dict]:
    """Per-run rows (``_who`` fields and values) as one row per cell: the mean and sample std over
    its seeds of each of ``keys``; ``first``: keys copied from the cell's first row."""
    cells = defaultdict(list)
    for r in run_rows:
        cells[tuple(r[k] for k in CELL)].append(r)
    out = []
    for cell, rows in cells.items():
        row = dict(zip(CELL, cell)) | {"seeds": len(rows)} | {k: rows[0][k] for k in first}
        for key in keys:
            row[key], row[key + "_std"], _ = finite_mean_std(rows, lambda x: x.get(key))
        out.append(row)
    out.sort(key=lambda r: (r["kind"] != "teacher", r["model"], r["distill"], r["teacher"], augment_rank(r["augment"])))
    return out


def metric_cells(ok: list[dict], metric) -> list[dict]:
    """A registered metric's report columns (``RunMetric.columns``), mean and spread over the seeds
    of each cell of the grid."""
    rows = [_who(r) | {title: (r["analysis"].get(metric.name) or {}).get(key) for title, key in metric.columns.items()}
            for r in ok]
    return _cell_summary(rows, tuple(metric.columns))


def _adjust_for_many_comparisons(s_rows: list[dict]) -> None:
    """Holm-adjusted p-values beside the raw ones. A family is every comparison with one reference
    cell: the student cells of one student model, teacher model and distillation setting, each
    tested against that setting's reference-teacher student; 'significant' uses the adjusted p."""
    families = defaultdict(list)
    for row in s_rows:
        if "p_value" in row:
            families[(row["student"], row["teacher"], row["distill"])].append(row)
    for rows in families.values():
        for key, adjusted in (("p_value", "p_holm"), ("ece_p_value", "ece_p_holm")):
            for row, q in zip(rows, holm([r.get(key, math.nan) for r in rows])):
                row[adjusted] = q
        for row in rows:
            row["family_size"] = len(rows)
            row["significant"] = bool(row["p_holm"] < SIGNIFICANCE) if finite(row["p_holm"]) else None


def cd_correlation(ok: list[dict]) -> list[dict]:
    """Spearman's rho between distilled students' accuracy and CD, per representation and variant,
    two ways: the students' own CD against their accuracy (one point per student), and the
    teacher's CD against the mean accuracy of its distilled students (one point per teacher: the
    question the paper asks, whether a property of the teacher predicts its students). The
    from-scratch students are left out: they have no teacher to explain."""
    rows = []
    distilled = [r for r in ok if r["kind"] == "student" and r["labels"].get("distill") != "scratch"]
    by_teacher = defaultdict(list)
    for r in distilled:
        by_teacher[r.get("teacher_id")].append(accuracy(r))
    teachers = [r for r in ok if r["kind"] == "teacher" and r["id"] in by_teacher]
    sides = (("student", distilled, accuracy),
             ("teacher", teachers, lambda r: float(np.mean(by_teacher[r["id"]]))))
    # a teacher's students are not independent points: the students' p permutes whole teachers
    variants = sorted({v for r in distilled + teachers for rep in r["analysis"]["class_discrimination"].values()
                       for v in rep})
    for side, recs, accuracy_of in sides:
        for rep in REPRESENTATIONS:
            for v in variants:
                pts = [(cd_entry(r, rep, v).get("score"), accuracy_of(r), r.get("teacher_id")) for r in recs]
                ok_pts = [p for p in pts if finite(p[0])]
                cds, accs = [a for a, _, _ in ok_pts], [b for _, b, _ in ok_pts]
                if side == "student":
                    rho, p = grouped_permutation_test(cds, accs, [t for _, _, t in ok_pts])
                    independent = len({t for _, _, t in ok_pts})
                else:
                    (rho, p), independent = spearman_test(cds, accs), len(ok_pts)
                lo, hi = rank_correlation_interval(rho, independent)  # as wide as the teachers make it
                row = {"cd_of": side, "representation": rep, "variant": v, "points": len(ok_pts),
                       "teachers": independent, "undefined": len(pts) - len(ok_pts), "spearman_rho": rho,
                       "rho_ci_low": lo, "rho_ci_high": hi, "p_value": p}
                if side == "teacher":  # beyond accuracy: the teacher's own accuracy held fixed
                    own = [accuracy(r) for r in recs if finite(cd_entry(r, rep, v).get("score"))]
                    prho, pp = partial_spearman(cds, accs, own)
                    plo, phi = rank_correlation_interval(prho, independent, controls=1)
                    row |= {"partial_rho": prho, "partial_ci_low": plo, "partial_ci_high": phi, "partial_p": pp}
                rows.append(row)
    return rows


def _knn_summary(knn_rows: list[dict]) -> list[dict]:
    return _cell_summary(knn_rows, ("purity_features", "purity_logits", "accuracy_features"), first=("k",))


# ---- files --------------------------------------------------------------------------------------
PERCENT = ("test_accuracy", "ece", "agreement", "knn_purity_features", "knn_accuracy_features", "accuracy",
           "purity_features", "purity_logits", "accuracy_features", "delta_vs_reference", "delta_ci_low",
           "delta_ci_high", "delta_vs_reference_view", "mce", "ece_delta", "ece_delta_ci_low", "ece_delta_ci_high")


def _round(v):
    if isinstance(v, float):
        return v if not math.isfinite(v) else float(f"{v:.6g}")
    return v


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV with fractions shown as percentages (columns renamed ``*_pct``, 2 decimals) and other
    numbers to 6 significant digits; the header is written even with no rows."""
    keys = columns or list(dict.fromkeys(k for r in rows for k in r))
    name = {k: (k.replace("_std", "") + "_pct_std" if k.endswith("_std") and k[:-4] in PERCENT else
                k + "_pct" if k in PERCENT else k) for k in keys}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([name[k] for k in keys])
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            base = k[:-4] if k.endswith("_std") else k
            if base in PERCENT and finite(v):
                v = round(100 * v, 2)
            cells.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else _round(v))
        w.writerow(cells)
    return buf.getvalue()


CSV_COLUMNS = {"failed": ["run", "status", "error"]}
