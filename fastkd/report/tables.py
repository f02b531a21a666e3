"""Aggregate ledger records into the study's tables and write them (and the plots)."""
from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

from .stats import mean_std, welch_t_test

SIGNIFICANCE = 0.05
_AUG_ORDER = ["none", "crop_flip", "cutout", "mixup", "cutmix"]


def augment_rank(aug: str) -> tuple:
    """The paper's order of augmentations; compositions after, the scratch baseline last."""
    return (aug == "scratch", _AUG_ORDER.index(aug) if aug in _AUG_ORDER else len(_AUG_ORDER), aug)


def _fmt(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(mean):
        return "-"
    s = f"{scale * mean:.{digits}f}"
    return s + (f" ± {scale * std:.{digits}f}" if not math.isnan(std) else "")


def _cd(rec, rep="softmax", variant="paper"):
    return rec.get("analysis", {}).get("class_discrimination", {}).get(rep, {}).get(variant, {})


def build_tables(records: list[dict], reference_augment: str = "none") -> dict:
    """Rows (lists of dicts) for each table, aggregated over seeds."""
    done = [r for r in records if r["status"] == "done"]
    teachers = defaultdict(list)
    students = defaultdict(list)
    for r in done:
        lab = r["labels"]
        if r["kind"] == "teacher":
            teachers[(lab["teacher_model"], lab["augment"])].append(r)
        else:
            key = (lab["student_model"], lab.get("teacher_model", "-"), lab["augment"], lab["distill"])
            students[key].append(r)

    def agg(recs, get):
        return mean_std([get(r) for r in recs])

    t_rows = []
    for (tm, aug), recs in teachers.items():
        m, s, n = agg(recs, lambda r: r["metrics"]["test_accuracy"])
        e, es, _ = agg(recs, lambda r: r["analysis"]["calibration"]["ece"])
        cd, cds, _ = agg(recs, lambda r: _cd(r, "features", "clean").get("score"))
        t_rows.append({"teacher": tm, "augment": aug, "seeds": n, "test_accuracy": m, "test_accuracy_std": s,
                       "ece": e, "ece_std": es, "cd_features_clean": cd, "cd_features_clean_std": cds})

    s_rows = []
    for (sm, tm, aug, dname), recs in students.items():
        accs = [r["metrics"]["test_accuracy"] for r in recs]
        m, s, n = mean_std(accs)
        row = {"student": sm, "teacher": tm, "augment": aug, "distill": dname, "seeds": n, "test_accuracy": m,
               "test_accuracy_std": s}
        ref = students.get((sm, tm, reference_augment, dname))
        if ref is not None and aug != reference_augment:
            t, p = welch_t_test(accs, [r["metrics"]["test_accuracy"] for r in ref])
            row |= {"delta_vs_reference": m - mean_std([r["metrics"]["test_accuracy"] for r in ref])[0],
                    "welch_t": t, "p_value": p, "significant": bool(p < SIGNIFICANCE) if not math.isnan(p) else None}
        for key, get in (("ece", lambda r: r["analysis"]["calibration"]["ece"]),
                         ("agreement", lambda r: r["analysis"].get("fidelity", {}).get("agreement")),
                         ("kl_teacher_student", lambda r: r["analysis"].get("fidelity", {}).get("kl")),
                         ("cd_softmax_paper", lambda r: _cd(r, "softmax", "paper").get("score")),
                         ("knn_purity_features", lambda r: r["analysis"]["knn"]["purity_features"]),
                         ("knn_accuracy_features", lambda r: r["analysis"]["knn"].get("accuracy_features"))):
            v, vs, _ = agg(recs, get)
            row[key], row[key + "_std"] = v, vs
        s_rows.append(row)

    cd_rows, knn_rows, cal_rows = [], [], []
    for r in done:
        lab, a = r["labels"], r["analysis"]
        who = {"run": r["id"], "kind": r["kind"], "model": r["config"]["model"], "augment": lab["augment"],
               "distill": lab.get("distill", "-"), "seed": lab["seed"]}
        for rep, variants in a["class_discrimination"].items():
            for v, res in variants.items():
                if "score" in res:
                    cd_rows.append(who | {"representation": rep, "variant": v, "score": res["score"],
                                          "intra": res["intra"], "inter": res["inter"]})
        knn_rows.append(who | a["knn"])
        cal_rows.append(who | {k: a["calibration"][k] for k in ("accuracy", "ece", "mce", "nll")}
                        | ({"agreement": a["fidelity"]["agreement"], "kl_teacher_student": a["fidelity"]["kl"]}
                           if "fidelity" in a else {}))
    failed = [{"run": r["id"], "status": r["status"], "error": r.get("error", "")} for r in records if r["status"] != "done"]
    t_rows.sort(key=lambda r: (r["teacher"], augment_rank(r["augment"])))
    s_rows.sort(key=lambda r: (r["student"], r["distill"] == "scratch", r["distill"], augment_rank(r["augment"])))
    return {"teachers": t_rows, "students": s_rows, "class_discrimination": cd_rows, "knn": knn_rows,
            "calibration_fidelity": cal_rows, "failed": failed}


def _markdown(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |\n|" + "---|" * len(columns) + "\n"
    lines = []
    for r in rows:
        lines.append("| " + " | ".join(str(_cell(r, c[0])) for c in columns) + " |")
    return head + "\n".join(lines) + "\n"


def _cell(r: dict, key: str):
    if key in ("test_accuracy", "ece", "agreement", "knn_purity_features", "knn_accuracy_features"):
        return _fmt(r.get(key, math.nan) if r.get(key) is not None else math.nan, r.get(key + "_std", math.nan) or math.nan)
    if key in ("cd_softmax_paper", "cd_features_clean", "kl_teacher_student"):
        v = r.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else _fmt(v, r.get(key + "_std", math.nan) or math.nan, 1.0, 4)
    if key == "p_value":
        p = r.get("p_value")
        if p is None or (isinstance(p, float) and math.isnan(p)):
            return "-" if "p_value" not in r else "n/a (1 seed)"
        return f"{p:.3g}{' *' if r.get('significant') else ''}"
    if key == "delta_vs_reference":
        d = r.get(key)
        return "-" if d is None else f"{100 * d:+.2f}"
    v = r.get(key, "")
    return f"{v:.4f}" if isinstance(v, float) else v


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def summary_text(tables: dict, reference_augment: str, unreadable=()) -> str:
    out = ["## Teachers (test accuracy %, ECE %, CD of penultimate features)",
           _markdown(tables["teachers"], [("teacher", "teacher"), ("augment", "augment"), ("seeds", "seeds"),
                                          ("test_accuracy", "accuracy"), ("ece", "ECE"), ("cd_features_clean", "CD (features, clean)")]),
           f"## Students (test accuracy %; difference and Welch p-value vs the student of the "
           f"'{reference_augment}' teacher, * = p < {SIGNIFICANCE})",
           _markdown(tables["students"], [("student", "student"), ("distill", "distill"), ("augment", "teacher aug"),
                                          ("seeds", "seeds"), ("test_accuracy", "accuracy"),
                                          ("delta_vs_reference", "Δ pts"), ("p_value", "p"),
                                          ("agreement", "agreement %"), ("cd_softmax_paper", "CD (softmax, paper)"),
                                          ("ece", "ECE %")])]
    if tables["failed"]:
        out += ["## Runs that did not finish", _markdown(tables["failed"], [("run", "run"), ("status", "status"), ("error", "error")])]
    if unreadable:
        out += ["## Ledger records that could not be read (left out above; rerun the study to redo them)",
                _markdown([{"file": f, "why": w} for f, w in unreadable], [("file", "file"), ("why", "problem")])]
    return "\n".join(out)


def write_report(records: list[dict], out_dir, *, reference_augment: str = "none", unreadable=()) -> dict:
    from .plots import write_plots
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(records, reference_augment)
    paths = {}
    for name, rows in tables.items():
        (out / f"{name}.csv").write_text(_csv(rows))
        paths[f"{name}.csv"] = out / f"{name}.csv"
    (out / "tables.json").write_text(json.dumps(tables, indent=2, default=str) + "\n")
    paths["tables.json"] = out / "tables.json"
    text = summary_text(tables, reference_augment, unreadable)
    (out / "summary.md").write_text(text)
    paths["summary.md"] = out / "summary.md"
    paths |= write_plots(records, tables, out)
    paths["summary_text"] = text
    return paths
