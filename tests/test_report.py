"""The report of a grid with every dimension varying (2 teacher models x 2 distillation settings x
2 seeds): rows and plot series stay distinguishable, baselines are drawn once, the summary explains
itself. Records are built here with known values, so every number can be checked."""
import csv
import math
import io

import numpy as np
import pytest

from fastkd.report import plots as P
from fastkd.report import write_report
from fastkd.report.tables import build_tables

TEACHERS, AUGS, SETTINGS, SEEDS = ["resnet8", "resnet14"], ["none", "mixup"], ["kd", "kd-mixup"], [0, 1]


def _analysis(acc, ece, cd, seed):
    count = [0] * 8 + [40, 60]
    return {"calibration": {"accuracy": acc, "ece": ece, "mce": ece, "nll": 1.0},
            "reliability": {"count": count, "confidence": [0.05 + 0.1 * i for i in range(10)],
                            "accuracy": [0.0] * 8 + [0.8 + 0.01 * seed, 0.9], "edges": [i / 10 for i in range(11)]},
            "class_discrimination": {rep: {"paper": ({"score": cd, "intra": 0.4, "inter": 0.1} if cd is not None else
                                                     {"undefined": "undefined: the network predicts a single class"}),
                                           "clean": {"score": cd or 0.1, "intra": 0.4, "inter": 0.1}}
                                     for rep in ("softmax", "logits", "features")},
            "knn": {"k": 5, "purity_features": acc - 0.05, "purity_logits": acc - 0.04, "accuracy_features": acc - 0.02}}


def _cfg(model, epochs, gamma=0.5):
    return {"model": model, "data": {"name": "sample", "path": None, "val_split": 0},
            "train": {"epochs": epochs, "select": "last"},
            "distill": {"temperature": 4.0, "gamma": gamma, "reduction": "batchmean"}}


def grid_records():
    recs = []
    for seed in SEEDS:
        for ti, tm in enumerate(TEACHERS):
            for ai, aug in enumerate(AUGS):
                acc = 0.6 + 0.1 * ti + 0.02 * ai + 0.01 * seed
                recs.append({"id": f"teacher-{tm}-{aug}-s{seed}", "kind": "teacher", "status": "done",
                             "labels": {"teacher_model": tm, "augment": aug, "seed": seed}, "config": _cfg(tm, 3),
                             "metrics": {"test_accuracy": acc, "data_sizes": {"train": 500, "test": 100}},
                             "analysis": _analysis(acc, 0.05 + 0.01 * ai, 0.2 + 0.01 * ai, seed)})
                for di, d in enumerate(SETTINGS):
                    sacc = 0.4 + 0.05 * ti + 0.03 * di - 0.02 * ai + 0.005 * seed
                    cd = None if (ti, ai, di, seed) == (1, 1, 1, 1) else 0.1 + sacc / 10
                    a = _analysis(sacc, 0.02, cd, seed) | {"fidelity": {"agreement": 0.7, "kl": 0.3}}
                    recs.append({"id": f"student-lenet-{d}-from-{tm}-{aug}-s{seed}", "kind": "student", "status": "done",
                                 "labels": {"teacher_model": tm, "augment": aug, "seed": seed, "student_model": "lenet",
                                            "distill": d},
                                 "config": _cfg("lenet", 2),
                                 "teacher_id": f"teacher-{tm}-{aug}-s{seed}",
                                 "metrics": {"test_accuracy": sacc, "data_sizes": {"train": 500, "test": 100}},
                                 "analysis": a})
        recs.append({"id": f"scratch-lenet-s{seed}", "kind": "student", "status": "done",
                     "labels": {"student_model": "lenet", "distill": "scratch", "augment": "scratch", "seed": seed},
                     "config": _cfg("lenet", 2, gamma=0.0),
                     "metrics": {"test_accuracy": 0.35 + 0.01 * seed, "data_sizes": {"train": 500, "test": 100}},
                     "analysis": _analysis(0.35 + 0.01 * seed, 0.1, 0.12, seed)})
    return recs


@pytest.fixture
def figures(monkeypatch):
    captured = {}
    monkeypatch.setattr(P, "_save", lambda fig, path, dpi=120: captured.__setitem__(path.name, fig))
    return captured


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def test_student_rows_name_their_teacher_and_setting():
    t = build_tables(grid_records())
    keys = [(r["student"], r["teacher"], r["augment"], r["distill"]) for r in t["students"]]
    assert len(keys) == len(set(keys)) == len(TEACHERS) * len(AUGS) * len(SETTINGS) + 1
    row = next(r for r in t["students"] if (r["teacher"], r["augment"], r["distill"]) == ("resnet14", "mixup", "kd"))
    accs = [0.4 + 0.05 - 0.02 + 0.005 * s for s in SEEDS]
    assert row["test_accuracy"] == pytest.approx(np.mean(accs)) and row["seeds"] == 2
    assert row["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    ref = [0.4 + 0.05 + 0.005 * s for s in SEEDS]  # the none-teacher student of the same teacher and setting
    assert row["delta_vs_reference"] == pytest.approx(np.mean(accs) - np.mean(ref))
    # the same ECE in every seed of both cells: no interval and no test (undefined, never 'significant')
    assert row["ece_delta"] == pytest.approx(0.0) and math.isnan(row["ece_delta_ci_low"])
    assert math.isnan(row["ece_p_value"]) and math.isnan(row["ece_p_holm"])
    # the undefined CD value is left out of its cell's mean and of the correlation, and counted
    cell = next(r for r in t["students"] if (r["teacher"], r["augment"], r["distill"]) == ("resnet14", "mixup", "kd-mixup"))
    assert cell["cd_softmax_paper"] == pytest.approx(0.1 + (0.4 + 0.05 + 0.03 - 0.02) / 10)
    corr = {r["cd_of"]: r for r in t["cd_correlation"] if (r["representation"], r["variant"]) == ("softmax", "paper")}
    assert corr["student"]["points"] == 15 and corr["student"]["undefined"] == 1  # 16 distilled, scratch excluded
    # the teacher side: each teacher's CD against the mean accuracy of its own distilled students
    from scipy import stats
    teachers = [r for r in grid_records() if r["kind"] == "teacher"]
    students = [r for r in grid_records() if r["kind"] == "student" and r["labels"]["distill"] != "scratch"]
    mean_acc = [np.mean([s["metrics"]["test_accuracy"] for s in students if s["teacher_id"] == t["id"]])
                for t in teachers]
    cds = [t["analysis"]["class_discrimination"]["softmax"]["paper"]["score"] for t in teachers]
    assert corr["teacher"]["points"] == 8 and corr["teacher"]["undefined"] == 0
    assert corr["teacher"]["spearman_rho"] == pytest.approx(stats.spearmanr(cds, mean_acc).statistic)
    # beyond accuracy: with the teacher's own accuracy held fixed (ranks' residuals correlated)
    own = [t["metrics"]["test_accuracy"] for t in teachers]
    rz = stats.rankdata(own)
    design = np.column_stack([np.ones(len(rz)), rz])
    res = [v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in (stats.rankdata(cds), stats.rankdata(mean_acc))]
    want = stats.pearsonr(*res)[0] if np.std(res[0]) > 1e-12 and np.std(res[1]) > 1e-12 else math.nan
    assert corr["teacher"]["partial_rho"] == pytest.approx(want, nan_ok=True, abs=1e-9)
    assert "partial_rho" not in corr["student"]


def test_accuracy_plot_has_a_panel_per_teacher_and_one_baseline_each(figures, tmp_path):
    P.plot_accuracy_by_augment(build_tables(grid_records()), tmp_path / "accuracy_by_augment.png")
    axes = [a for a in figures["accuracy_by_augment.png"].axes if a.get_legend()]
    assert [a.get_title() for a in axes] == ["teacher model resnet14", "teacher model resnet8"]
    for ax, tm in zip(axes, ["resnet14", "resnet8"]):
        labels = _legend(ax)
        assert f"teacher {tm} (n=2)" in labels
        assert f"lenet \u2190 {tm} (kd) (n=2)" in labels and f"lenet \u2190 {tm} (kd-mixup) (n=2)" in labels
        assert sum("from scratch" in lab for lab in labels) == 1
    assert "sample std over n seeds" in figures["accuracy_by_augment.png"]._suptitle.get_text()


def test_cd_plot_counts_distilled_students_and_says_which_way_is_better(figures, tmp_path):
    P.plot_cd_vs_accuracy(grid_records(), tmp_path / "cd.png")
    ax = figures["cd.png"].axes[0]
    assert "n = 15 students" in ax.get_title() and "1 more with an undefined CD left out" in ax.get_title()
    assert "p = " in ax.get_title() and "higher = more separated" in ax.get_xlabel()
    assert "from scratch (not in rho)" in _legend(ax)


def test_reliability_panels_name_what_they_show_and_ece_matches_the_table(figures, tmp_path):
    recs = grid_records()
    P.plot_reliability(recs, tmp_path / "rel.png")
    axes = [a for a in figures["rel.png"].axes if a.get_legend()]
    titles = [a.get_title() for a in axes]
    assert titles == ["teacher augmentation: none", "teacher augmentation: mixup", "students from scratch"]
    t = build_tables(recs)
    none_teacher = next(r for r in t["teachers"] if (r["teacher"], r["augment"]) == ("resnet8", "none"))
    assert f"teacher resnet8: ECE {100 * none_teacher['ece']:.1f}% (n=2)" in " ".join(_legend(axes[0])) or \
        any(lab.startswith(f"teacher resnet8: ECE {100 * none_teacher['ece']:.1f}%") for lab in _legend(axes[0]))


def test_summary_explains_itself_and_every_file_is_listed(tmp_path):
    paths = write_report(grid_records(), tmp_path)
    text = (tmp_path / "summary.md").read_text()
    for needle in ("Data: sample", "Epochs: teachers 3, students 2", "sample standard deviation over the seeds",
                   "| student | teacher | teacher aug | distill |", "`gdv`: ", "lower (more negative) = more separated",
                   "## k-NN in the latent space", "`accuracy_by_augment.png`:", "`reliability.png`:", "Spearman rho",
                   "3 CD value(s) are undefined"):
        assert needle in text, needle
    written = {p.name for k, p in paths.items() if k != "summary_text"}
    assert written == {p.name for p in tmp_path.iterdir()}
    failed = (tmp_path / "failed.csv").read_text()
    assert failed.strip() == "run,status,error"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "students.csv").read_text())))
    assert "test_accuracy_pct" in rows[0] and "test_accuracy_pct_std" in rows[0]
    r = next(r for r in rows if (r["teacher"], r["augment"], r["distill"]) == ("resnet8", "none", "kd"))
    assert r["test_accuracy_pct"] == f"{100 * np.mean([0.4, 0.405]):.2f}".rstrip("0").rstrip(".") or \
        float(r["test_accuracy_pct"]) == pytest.approx(40.25)


@pytest.mark.parametrize("val_split,shown", [(5000.0, "validation split: 5000 (0 = none)"),
                                             (0.1, "validation split: 0.1 (0 = none)")])
def test_validation_split_reads_as_a_count_or_a_fraction(tmp_path, val_split, shown):
    from fastkd.report.summary import study_context, summary_text
    recs = grid_records()
    for r in recs:
        r["config"]["data"]["val_split"] = val_split
    assert shown in summary_text(build_tables(recs), study_context(recs), "none")


def test_one_seed_says_differences_are_not_testable(tmp_path):
    write_report([r for r in grid_records() if r["labels"]["seed"] == 0], tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "one seed per cell" in text and "not testable" in text


def test_reliability_points_sit_at_each_bins_mean_confidence(figures, tmp_path):
    # plotted at the bin centre they were up to 0.05 off: as large as a calibrated model's ECE
    recs = [r for r in grid_records() if r["kind"] == "teacher" and r["labels"]["augment"] == "none"
            and r["labels"]["teacher_model"] == "resnet8"]
    for r, conf, count in zip(recs, (0.83, 0.87), (40, 60)):
        rel = r["analysis"]["reliability"]
        rel["count"] = [0] * 8 + [count, 100 - count]
        rel["confidence"] = [0.0] * 8 + [conf, 0.97]
    P.plot_reliability(recs, tmp_path / "rel.png")
    line = next(a for a in figures["rel.png"].axes if a.get_legend()).lines[0]
    weighted = (0.83 * 40 + 0.87 * 60) / 100  # over the seeds, by the images in the bin
    assert line.get_xdata()[0] == pytest.approx(weighted) and line.get_xdata()[1] == pytest.approx(0.97)


def test_with_several_teachers_a_cell_is_tested_on_its_teachers_not_its_students():
    # two teachers a cell, three students each: students of one teacher agree closely, the teachers
    # do not. Over the six students the naive test is 'significant'; over the teachers it is not.
    from scipy import stats
    from fastkd.report.replication import replicates, replication_unit
    recs = []
    means = {"none": (0.60, 0.64), "mixup": (0.57, 0.61)}
    for aug, teacher_means in means.items():
        for ti, tmean in enumerate(teacher_means):
            for seed in range(3):
                acc = tmean + 0.001 * (seed - 1)
                recs.append({"id": f"student-lenet-kd-from-resnet8-{aug}-t{ti}-s{seed}", "kind": "student",
                             "status": "done", "teacher_id": f"teacher-{aug}-t{ti}",
                             "labels": {"teacher_model": "resnet8", "augment": aug, "seed": seed,
                                        "student_model": "lenet", "distill": "kd"},
                             "config": _cfg("lenet", 2), "metrics": {"test_accuracy": acc},
                             "analysis": _analysis(acc, 0.02, 0.1, seed) | {"fidelity": {"agreement": 0.7, "kl": 0.3}}})
    row = next(r for r in build_tables(recs)["students"] if r["augment"] == "mixup")
    cell = [r for r in recs if r["labels"]["augment"] == "mixup"]
    ref = [r for r in recs if r["labels"]["augment"] == "none"]
    assert replication_unit(cell, ref) == "teacher" and row["unit"] == "teacher" and row["replicates"] == 2
    teacher_level = stats.ttest_ind(means["mixup"], means["none"], equal_var=False)
    assert row["p_value"] == pytest.approx(teacher_level.pvalue) and row["p_value"] > 0.05
    naive = stats.ttest_ind([r["metrics"]["test_accuracy"] for r in cell],
                            [r["metrics"]["test_accuracy"] for r in ref], equal_var=False)
    assert naive.pvalue < 0.05  # what treating the six students as independent would have claimed
    assert replicates(cell, lambda r: r["metrics"]["test_accuracy"], "seed") == \
        [r["metrics"]["test_accuracy"] for r in cell]


def test_students_are_drawn_on_their_own_axis(figures, tmp_path):
    # one axis spanning teachers (60-80%) and students (35-50%) flattened the students differences
    P.plot_accuracy_by_augment(build_tables(grid_records()), tmp_path / "acc.png")
    fig = figures["acc.png"]
    panel = next(a for a in fig.axes if a.get_title() == "teacher model resnet8")
    twin = next(a for a in fig.axes if a is not panel and a.bbox.bounds == panel.bbox.bounds)
    lo, hi = twin.get_ylim()
    assert 30 <= lo and hi <= 55 < panel.get_ylim()[0]  # each axis spans its own networks (scratch: 35%)
    assert twin.get_ylabel() == "student test accuracy (%)"
