"""``summary.md``: the study's tables in Markdown, with what a reader needs to read them alone:
the data, schedule, split and seeds, what ``±`` is, what each CD variant measures and which way
is better, and which plots were written."""
from __future__ import annotations

import functools
from collections import Counter
from operator import itemgetter

from ..distill import method_class
from ..errors import ConfigError
from ..metrics.registry import metrics
from .common import done, finite
from .stats import SIGNIFICANCE
from .tables import CELL, VARIANT_NOTES


def _values(records, get) -> list:
    seen = []
    for r in records:
        try:
            v = get(r)
        except (KeyError, TypeError):
            continue
        if v not in seen:
            seen.append(v)
    return seen


def _one_or_list(values) -> str:
    return ", ".join(str(v) for v in values) if values else "-"


def _held_out(val_split: float) -> float | int:
    """data.val_split as written: a count (>= 1) of held-out images reads as one, a fraction as a fraction."""
    return int(val_split) if val_split >= 1 else val_split


def study_context(records: list[dict]) -> dict:
    ok = done(records)
    teachers = [r for r in ok if r["kind"] == "teacher"]
    students = [r for r in ok if r["kind"] == "student"]
    cells = Counter((r["kind"], r["config"]["model"], r["labels"].get("teacher_model"), r["labels"]["augment"],
                     r["labels"].get("distill")) for r in ok)
    # the data by name and content, not by path: a committed report names no folder of one machine
    data = _values(ok, lambda r: (r["config"]["data"]["name"], r.get("identity_fields", {}).get("data")))
    sizes = _values(ok, lambda r: tuple(sorted(r["metrics"]["data_sizes"].items())))
    machines = _values(ok, lambda r: _machine(r.get("environment", {}).get("hardware", {})))
    return {
        "data": [f"{n}" + (f" (content {fp.split(':')[-1][:12]})" if fp else "") for n, fp in data],
        "machines": [m for m in machines if m],
        "sizes": [", ".join(f"{k} {v:,}" for k, v in s) for s in sizes],
        "teacher_epochs": _values(teachers, lambda r: r["config"]["train"]["epochs"]),
        "student_epochs": _values(students, lambda r: r["config"]["train"]["epochs"]),
        "select": _values(ok, lambda r: f"{r['kind']}s: {r['config']['train']['select']}"),
        "val_split": _values(ok, lambda r: _held_out(r["config"]["data"]["val_split"])),
        "seeds": max(cells.values()) if cells else 0,
        "min_seeds": min(cells.values()) if cells else 0,
        "distill": _values([r for r in students if r["labels"]["distill"] != "scratch"],
                           lambda r: (r["labels"]["distill"], _setting(r["config"]["distill"]))),
        "undefined": sum(1 for r in ok for rep in r["analysis"]["class_discrimination"].values()
                         for v in rep.values() if "score" not in v),
    }


def _setting(distill: dict) -> tuple[str, str]:
    """(method, its settings as the method describes them) from a run's recorded ``distill``;
    runs recorded before methods were named ran Hinton KD."""
    name = distill.get("method", "kd")
    try:
        return name, method_class(name).describe(distill)
    except ConfigError:
        return name, "a method not registered in this fastkd"


def _machine(hw: dict) -> str:
    """Where a run computed: the CPU, the instruction set of torch's CPU kernels, the threads; or the GPUs."""
    if hw.get("gpus"):
        return ", ".join(hw["gpus"])
    if not hw.get("cpu"):
        return ""
    kernels = f", torch kernels {hw['cpu_capability']}" if hw.get("cpu_capability") else ""
    return f"{hw['cpu']}{kernels}, {hw.get('torch_threads', '?')} threads"


def _pct(mean, std=None) -> str:
    if not finite(mean):
        return "-"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if finite(std) else "")


def _num(mean, std=None, digits=4) -> str:
    if not finite(mean):
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if finite(std) else "")


def _delta(row, key: str = "delta_vs_reference") -> str:
    """A difference in points with its interval (``delta_ci_low``/``high``), '-' where none was made."""
    if key not in row:
        return "-"
    text = f"{100 * row[key]:+.2f}"
    lo, hi = row.get("delta_ci_low"), row.get("delta_ci_high")
    return text + (f" [{100 * lo:+.2f}, {100 * hi:+.2f}]" if finite(lo) and finite(hi) else "")


def _p(row, key: str = "p_value", undefined: str = "undefined") -> str:
    """A p-value, ``undefined`` where the test has no value (no spread in either cell), '-' where no
    test was made."""
    if key not in row:
        return "-"
    p = row[key]
    if not finite(p):
        return undefined
    return f"{p:.3g}{' *' if key == 'p_holm' and row.get('significant') else ''}"


def _paper_section(tables: dict) -> list[str]:
    """The study beside Das et al. 2020: signs, gains and orders (their levels do not carry over)."""
    students, teachers, rankings = tables["paper_students"], tables["paper_teachers"], tables["paper_rankings"]
    if not (students or teachers or rankings):
        return []
    pts = lambda v: f"{v:+.2f}" if finite(v) else "-"  # noqa: E731
    span = lambda d, lo, hi: f"{pts(d)} [{pts(lo)}, {pts(hi)}]"  # noqa: E731
    out = ["## Against the paper", "",
           "Das et al. 2020 (docs/protocol.md) reported single runs of ResNet-18 teachers trained 250 epochs; "
           "their accuracy levels do not carry over to another teacher or schedule, so this section compares "
           "signs and orders. An augmentation is matched to the paper's by its last transform "
           "(`crop_flip+mixup` is one reading of the paper's `mixup`). The paper's claim is that mixed-sample "
           "teachers (mixup, cutmix) distil worse students than the `none` teacher.", ""]
    if students:
        out += ["Students: difference from the student of the `none` teacher, in points, with its 95% confidence "
                "interval (Welch); *confirmed*: the interval lies wholly on the side of 0 the paper reported and the "
                "difference holds after Holm's adjustment for the comparisons sharing the reference cell.", "",
                _table(students, [
                    ("student", lambda r: r["student"]), ("teacher", lambda r: r["teacher"]),
                    ("teacher aug", lambda r: r["augment"]), ("distill", lambda r: r["distill"]),
                    ("paper's", lambda r: r["paper_augment"] + (" (mixed)" if r["mixed_sample"] else "")),
                    ("Δ pts [95% CI]", lambda r: span(r["delta_pts"], r["ci_low_pts"], r["ci_high_pts"])),
                    ("p", _p), ("p Holm", lambda r: _p(r, "p_holm")),
                    ("paper Δ pts", lambda r: pts(r["paper_delta_pts"])),
                    ("same sign", lambda r: "yes" if r["same_sign"] else "no"),
                    ("confirmed", lambda r: "yes" if r["confirmed"] else "no")])]
        calibrated = [r for r in students if "ece_delta_pts" in r]
        if calibrated:
            out += ["Calibration, the paper's other student finding (LeNet students of the mixup and cutmix teachers "
                    "had a lower ECE than the `none` teacher's): difference in ECE points with its 95% interval.", "",
                    _table(calibrated, [
                        ("student", lambda r: r["student"]), ("teacher aug", lambda r: r["augment"]),
                        ("ΔECE pts [95% CI]", lambda r: span(r["ece_delta_pts"], r["ece_ci_low_pts"], r["ece_ci_high_pts"])),
                        ("p", lambda r: _p(r, "ece_p_value")), ("p Holm", lambda r: _p(r, "ece_p_holm")),
                        ("paper ΔECE pts", lambda r: pts(r["paper_ece_delta_pts"])),
                        ("confirmed", lambda r: "yes" if r["ece_confirmed"] else "no")])]
    if teachers:
        out += ["Teachers: accuracy gain over the `none` teacher, in points, beside the paper's (the base-transform "
                "reading: the paper's teachers gained little from mixup and cutout and much from crop_flip and "
                "cutmix).", "",
                _table(teachers, [("teacher", lambda r: r["teacher"]), ("augment", lambda r: r["augment"]),
                                  ("paper's", lambda r: r["paper_augment"]), ("gain pts", lambda r: pts(r["gain_pts"])),
                                  ("paper gain pts", lambda r: pts(r["paper_gain_pts"]))])]
    if rankings:
        out += ["Orders of the paper's five augmentations (by the students' mean), ours against the paper's; "
                "Spearman's rho over the five (p only indicative with 5 points):", "",
                _table(rankings, [("student", lambda r: r["student"]), ("teacher", lambda r: r["teacher"]),
                                  ("distill", lambda r: r["distill"]), ("measure", lambda r: r["measure"]),
                                  ("ours", lambda r: r["ours"]), ("paper", lambda r: r["paper"]),
                                  ("rho", lambda r: _num(r["spearman_rho"], digits=2)),
                                  ("p", lambda r: f"{r['p_value']:.2g}" if finite(r["p_value"]) else "n/a")])]
    return out


def _table(rows, columns) -> str:
    head = "| " + " | ".join(c for c, _ in columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(str(f(r)) for _, f in columns) + " |" for r in rows) + "\n"


def _mean_std_of(key: str, row: dict) -> str:
    return _num(row[key], row[key + "_std"])


def _registered_metrics_section(tables: dict) -> list[str]:
    """A table per registered metric that declares report columns (fastkd.metrics.registry)."""
    out = []
    for m in metrics():
        rows = tables.get(f"metric_{m.name}")
        if not m.columns or not rows:
            continue
        cols = [(c, itemgetter(c)) for c in CELL + ("seeds",)]
        cols += [(title, functools.partial(_mean_std_of, title)) for title in m.columns]
        out += [f"## {m.name}", "", f"Mean ± standard deviation over the seeds of each cell (metric_{m.name}.csv).", "",
                _table(rows, cols)]
    return out


def _rho(row, rho: str, low: str, high: str) -> str:
    """A rank correlation with its interval (keys ``low``/``high``), the interval left out where undefined."""
    lo, hi = row[low], row[high]
    return _num(row[rho], digits=3) + (f" [{lo:+.2f}, {hi:+.2f}]" if finite(lo) else "")


def _delta_view(row) -> str:
    return "reference" if row.get("is_reference_view") else _delta(row, "delta_vs_reference_view")


def _taught_section(tables: dict) -> list[str]:
    """T. stddev by distillation augmentation, and how it ranks them against the students."""
    cells, corr = tables.get("taught"), tables.get("taught_correlation")
    if not cells:
        return []
    return ["## What the students were taught: T. stddev by distillation augmentation", "",
            "T. stddev (Wang et al., NeurIPS 2022): the standard deviation, over chunks of 640 consecutive training "
            "samples, of the teacher's mean softmax probability, averaged over classes, computed on the teacher "
            "outputs each student trained against (`live`: the teacher run on the augmented batch; `cache`: the "
            "stored outputs for the plain images). Wang et al. found lower values with lower student test loss. "
            "View: the augmentation applied during distillation (student and teacher see the same batch). Mean ± "
            "standard deviation over the seeds of a cell (taught.csv). Δ: accuracy minus that of the same method "
            "distilled under the reference view, with its 95% interval (Welch, over student seeds: the students of "
            "one teacher, so the comparison holds for this teacher); p Holm: adjusted over the views of one method.", "",
            _table(cells, [
                ("student", lambda r: r["student"]), ("teacher", lambda r: r["teacher"]),
                ("teacher aug", lambda r: r["teacher_augment"]), ("method", lambda r: r["method"]),
                ("view", lambda r: r["view"]), ("seeds", lambda r: r["seeds"]),
                ("teacher outputs", lambda r: r["teacher_outputs"]),
                ("T. stddev", lambda r: _num(r["t_stddev"], r["t_stddev_std"], digits=5)),
                ("accuracy %", lambda r: _pct(r["test_accuracy"], r["test_accuracy_std"])),
                ("Δ pts vs reference view", _delta_view),
                ("p Holm", lambda r: _p(r, "p_holm")),
                ("test loss", lambda r: _num(r["test_loss"], r["test_loss_std"]))]),
            "Across the views of one student, teacher and method, Spearman's rho of T. stddev against the students' "
            "mean accuracy (Wang et al.'s claim predicts a negative rho) and test loss (positive). One point per "
            "view: the interval (Fisher z, Bonett-Wright error) and p (exact: all orderings of the views) count "
            "views, not students; with 6 views only a rho near ±1 is distinguishable from 0 (taught_correlation.csv).",
            "",
            _table(corr, [
                ("student", lambda r: r["student"]), ("teacher", lambda r: r["teacher"]),
                ("teacher aug", lambda r: r["teacher_augment"]), ("method", lambda r: r["method"]),
                ("views", lambda r: r["views"]),
                ("rho vs accuracy [95% CI]",
                 lambda r: _rho(r, "rho_test_accuracy", "rho_test_accuracy_ci_low", "rho_test_accuracy_ci_high")),
                ("p", lambda r: _p(r, "p_test_accuracy", undefined="n/a")),
                ("rho vs test loss [95% CI]",
                 lambda r: _rho(r, "rho_test_loss", "rho_test_loss_ci_low", "rho_test_loss_ci_high")),
                ("p ", lambda r: _p(r, "p_test_loss", undefined="n/a"))]),
            "Orders (T. stddev ascending; accuracy descending):", ""] + \
        [f"- {r['student']} from {r['teacher']} ({r['teacher_augment']}), {r['method']}: T. stddev "
         f"{r['order_by_t_stddev']}; accuracy {r['order_by_accuracy']}" for r in corr] + [""]


def summary_text(tables: dict, ctx: dict, reference_augment: str, unreadable=(), plots: dict | None = None) -> str:
    n = ctx["seeds"]
    spread = (f"`±` is the sample standard deviation over the seeds of a cell (n = {ctx['min_seeds']}"
              + (f" to {n}" if ctx["min_seeds"] != n else "") + " seeds)") if n > 1 else \
        "one seed per cell: no spread can be estimated and differences between cells are not testable"
    distill = "; ".join(f"{d}{'' if d == method else f' ({method})'}: {text}" for d, (method, text) in ctx["distill"])
    out = ["# Study summary", "",
           f"- Data: {_one_or_list(ctx['data'])}; images per split: {_one_or_list(ctx['sizes'])}",
           f"- Epochs: teachers {_one_or_list(ctx['teacher_epochs'])}, students {_one_or_list(ctx['student_epochs'])};"
           f" checkpoint selection: {_one_or_list(ctx['select'])}; validation split: "
           f"{_one_or_list(ctx['val_split'])} (0 = none)",
           f"- Distillation: {distill or '-'}",
           f"- Machine: {_one_or_list(ctx['machines']) if ctx['machines'] else 'not recorded'}. CPU results repeat bit "
           "for bit on the same CPU family, kernels and thread count; on another CPU they move by seed-noise amounts "
           "(compare results of different CPU families as different machines)",
           f"- Accuracies are test-set percentages; {spread}.", ""]
    out += ["## Teachers", "",
            "Test accuracy, expected calibration error (ECE, %), and the class discrimination of the "
            "penultimate features (clean and paper variants: higher = classes more separated).", "",
            _table(tables["teachers"], [
                ("teacher", lambda r: r["teacher"]), ("augment", lambda r: r["augment"]), ("seeds", lambda r: r["seeds"]),
                ("accuracy %", lambda r: _pct(r["test_accuracy"], r["test_accuracy_std"])),
                ("ECE %", lambda r: _pct(r["ece"], r["ece_std"])),
                ("CD features, clean", lambda r: _num(r["cd_features_clean"], r["cd_features_clean_std"])),
                ("CD features, paper", lambda r: _num(r["cd_features_paper"], r["cd_features_paper_std"]))])]
    if n > 1:
        delta_note = (f"Δ: difference in points from the student of the same teacher model and setting trained from the "
                      f"'{reference_augment}' teacher, with its {100 * (1 - SIGNIFICANCE):.0f}% confidence interval "
                      "(Welch); p: Welch's t-test. The unit of replication is the teacher where every cell holds "
                      "students of 2 or more teachers (each teacher's students are averaged first: students of one "
                      "teacher share its training draw and are not independent), else the student seed (the teachers' "
                      "own seed-to-seed variance is then not in the test). p Holm: adjusted by Holm's method for the "
                      "comparisons that share one reference cell (the family: the cells of one student model, teacher "
                      f"model and distillation setting), * = adjusted p < {SIGNIFICANCE}; 'undefined': no seed-to-seed "
                      "spread in either cell. Detectable: the smallest true difference this comparison would find "
                      f"significant (p < {SIGNIFICANCE}) 80% of the time, from the cells' spread and replicates "
                      "(normal-theory approximation): a difference below it going unseen is no evidence of its absence.")
    else:
        delta_note = (f"Δ: difference in points from the student of the '{reference_augment}' teacher. With one seed "
                      "per cell it is not testable: treat differences below a few points as noise.")
    out += ["## Students", "",
            "A student row names the teacher model it was distilled from, the teacher's augmentation and the "
            "distillation setting; `scratch` rows are the same student trained without a teacher. "
            + delta_note + " Agreement: top-1 agreement with the teacher on the test set. CD: softmax outputs, "
            "paper variant (as the paper reports it).", "",
            _table(tables["students"], [
                ("student", lambda r: r["student"]), ("teacher", lambda r: r["teacher"]),
                ("teacher aug", lambda r: r["augment"]), ("distill", lambda r: r["distill"]),
                ("seeds", lambda r: r["seeds"]), ("accuracy %", lambda r: _pct(r["test_accuracy"], r["test_accuracy_std"])),
                ("Δ pts", _delta),
                ("p", _p), ("p Holm", lambda r: _p(r, "p_holm")),
                ("detectable pts", lambda r: f"{100 * r['detectable_80']:.2f}" if finite(r.get("detectable_80")) else "-"),
                ("agreement %", lambda r: _pct(r["agreement"], r["agreement_std"])),
                ("CD softmax, paper", lambda r: _num(r["cd_softmax_paper"], r["cd_softmax_paper_std"])),
                ("ECE %", lambda r: _pct(r["ece"], r["ece_std"]))])]
    out += _paper_section(tables)
    out += ["## Class discrimination", "",
            "Computed on each network's test-set softmax outputs, logits and penultimate features. Variants:", ""]
    out += [f"- `{v}`: {note}" for v, note in VARIANT_NOTES.items()]
    out += ["", "Teachers are summarised by their features (their latent space, the metric's stated target) and "
            "students by their softmax outputs with the paper variant (what the paper reported); every value is in "
            "class_discrimination.csv. Does CD explain the distilled students' accuracy? Spearman's rho, "
            "two ways: CD of the *student*'s own outputs against its accuracy (one point per student; a more "
            "accurate network separates classes better by construction, so this mostly restates accuracy), and CD "
            "of the *teacher* against the mean accuracy of its distilled students (one point per teacher: does a "
            "property of the teacher predict its students?). The from-scratch students are left out. The students "
            "of one teacher are not independent points: the students' p comes from permuting whole teachers, and "
            "every interval (Fisher z, Bonett-Wright error) counts teachers, not students. Beyond accuracy: for the "
            "teacher side, the partial rank correlation of the teacher's CD and its students' accuracy with the "
            "teacher's own accuracy held fixed (does CD say more about the students than the teacher's accuracy "
            "does?), its interval with one degree of freedom fewer.", "",
            _table(tables["cd_correlation"], [
                ("CD of", lambda r: r["cd_of"]),
                ("representation", lambda r: r["representation"]), ("variant", lambda r: r["variant"]),
                ("points", lambda r: r["points"]), ("undefined", lambda r: r["undefined"]),
                ("Spearman rho [95% CI]", lambda r: _rho(r, "spearman_rho", "rho_ci_low", "rho_ci_high")),
                ("p", lambda r: _p(r, undefined="n/a")),
                ("partial rho, teacher acc. fixed [95% CI]",
                 lambda r: _rho(r, "partial_rho", "partial_ci_low", "partial_ci_high") if "partial_rho" in r else "-"),
                ("partial p", lambda r: _p(r, "partial_p", undefined="-"))])]
    if ctx["undefined"]:
        out += [f"{ctx['undefined']} CD value(s) are undefined (e.g. a network that predicts a single class has no "
                "paper-variant score); they are left out of means and correlations and listed in "
                "class_discrimination.csv with the reason.", ""]
    out += ["## k-NN in the latent space", "",
            "Purity: share of each test point's k nearest test neighbours (cosine) with its own label. Accuracy: "
            "k-NN classification of the test set against the training set's features.", "",
            _table(tables["knn"], [
                ("kind", lambda r: r["kind"]), ("model", lambda r: r["model"]), ("teacher", lambda r: r["teacher"]),
                ("augment", lambda r: r["augment"]), ("distill", lambda r: r["distill"]), ("k", lambda r: r["k"]),
                ("purity features %", lambda r: _pct(r["purity_features"], r["purity_features_std"])),
                ("purity logits %", lambda r: _pct(r["purity_logits"], r["purity_logits_std"])),
                ("k-NN accuracy %", lambda r: _pct(r["accuracy_features"], r["accuracy_features_std"]))])]
    out += _taught_section(tables)
    out += _registered_metrics_section(tables)
    if plots:
        out += ["## Plots", ""] + [f"- `{name}`: {what}" for name, what in plots.items()] + [""]
    if tables["failed"]:
        out += ["## Runs that did not finish", "",
                _table(tables["failed"], [("run", lambda r: r["run"]), ("status", lambda r: r["status"]),
                                          ("error", lambda r: str(r["error"]).replace("|", "/")[:200])])]
    if unreadable:
        out += ["## Ledger records that could not be read (left out above; rerun the study to redo them)", "",
                _table([{"file": f, "why": w} for f, w in unreadable],
                       [("file", lambda r: r["file"]), ("problem", lambda r: r["why"])])]
    return "\n".join(out)
