"""The study's figures as PNG (matplotlib, no display needed).

Every figure says what its error bars are and over how many seeds; each augmentation has one
colour in every figure (``common.augment_colour``); every grid dimension that varies is a panel
or a label.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .common import accuracy, augment_colour, augment_rank, cd_entry, done, ece, finite, student_label
from .stats import mean_std, spearman_test

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path, dpi: int = 120) -> None:
    """Write and close a figure (tests replace this to look at the figure instead)."""
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)


def _legend(ax, size: int, *others) -> None:
    """One legend on ``ax`` for its lines and those of ``others`` (twin axes of the same panel)."""
    handles, labels = [], []
    for a in (ax, *others):
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    if handles:
        ax.legend(handles, labels, fontsize=size)
    else:
        ax.text(0.5, 0.5, "nothing to show (no values computed)", ha="center", va="center", transform=ax.transAxes)


def _panels(plt, count: int, width=5.2, height=4.2):
    cols = min(3, max(count, 1))
    rows = math.ceil(max(count, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, list(axes.flat)


def plot_accuracy_by_augment(tables: dict, path: Path) -> str:
    """The paper's figure, one panel per teacher model: the teacher's and each distilled
    student's test accuracy across the teacher's augmentations; from-scratch students as bands.
    Students have their own axis (right): on one axis spanning teachers and students, the few
    points students differ by are flattened."""
    plt = _plt()
    teacher_models = sorted({r["teacher"] for r in tables["teachers"]} |
                            {r["teacher"] for r in tables["students"] if r["distill"] != "scratch"})
    fig, axes = _panels(plt, len(teacher_models), width=6.2, height=4.6)
    scratch = [r for r in tables["students"] if r["distill"] == "scratch"]
    for ax, tm in zip(axes, teacher_models):
        augs = sorted({r["augment"] for r in tables["teachers"] + tables["students"]
                       if r["teacher"] == tm and r["augment"] != "scratch"}, key=augment_rank)
        xs = np.arange(len(augs))
        student_ax = ax.twinx()

        def line(rows, label, on=ax, **kw):
            by = {r["augment"]: r for r in rows}
            ys = [100 * by[a]["test_accuracy"] if a in by else np.nan for a in augs]
            es = [100 * by[a]["test_accuracy_std"] if a in by and finite(by[a]["test_accuracy_std"]) else 0 for a in augs]
            n = sorted({by[a]["seeds"] for a in augs if a in by})
            on.errorbar(xs, ys, yerr=es, capsize=3, label=f"{label} (n={'/'.join(map(str, n))})", **kw)

        line([r for r in tables["teachers"] if r["teacher"] == tm], f"teacher {tm}", marker="s", color="black", lw=2)
        keys = sorted({(r["student"], r["distill"]) for r in tables["students"]
                       if r["teacher"] == tm and r["distill"] != "scratch"})
        for i, (sm, dname) in enumerate(keys):
            line([r for r in tables["students"] if (r["student"], r["distill"], r["teacher"]) == (sm, dname, tm)],
                 student_label(sm, tm, dname), on=student_ax, marker=MARKERS[i % len(MARKERS)], color=f"C{i}")
        scratch_styles = [":", (0, (1, 4)), (0, (3, 3))]
        for j, r in enumerate(s for s in scratch if s["student"] in {k[0] for k in keys}):
            m, sd = 100 * r["test_accuracy"], 100 * r["test_accuracy_std"] if finite(r["test_accuracy_std"]) else 0.0
            colour = augment_colour("scratch")
            student_ax.axhline(m, ls=scratch_styles[j % 3], color=colour, lw=1.5,
                               label=f"{r['student']} from scratch (mean ± std band, n={r['seeds']})")
            if sd:
                student_ax.axhspan(m - sd, m + sd, color=colour, alpha=0.12)
        ax.set_xticks(list(xs), augs, rotation=20)
        for tick, a in zip(ax.get_xticklabels(), augs):
            tick.set_color(augment_colour(a))
        ax.set_xlabel("teacher's training augmentation")
        ax.set_ylabel("teacher test accuracy (%)")
        student_ax.set_ylabel("student test accuracy (%)")
        ax.set_title(f"teacher model {tm}")
        ax.grid(alpha=0.3)
        _legend(ax, 7, student_ax)
    fig.suptitle("Test accuracy by the teacher's augmentation\n(error bars: sample std over n seeds)", fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    return ("teacher (left axis) and distilled-student (right axis) test accuracy by the teacher's augmentation, "
            "one panel per teacher model; from-scratch students as dotted lines with their std band")


def plot_cd_vs_accuracy(records: list[dict], path: Path, rep: str = "softmax", variant: str = "paper") -> str:
    """Each student's class discrimination against its accuracy, coloured by its teacher's
    augmentation; Spearman's rho over the distilled students (scratch shown, not counted)."""
    plt = _plt()
    students = [r for r in done(records) if r["kind"] == "student"]
    groups = sorted({(r["config"]["model"], r["labels"].get("teacher_model", "-"), r["labels"]["distill"])
                     for r in students if r["labels"]["distill"] != "scratch"})
    pts, scratch, undefined = [], [], 0
    for r in students:
        cd = cd_entry(r, rep, variant).get("score")
        if not finite(cd):
            undefined += r["labels"]["distill"] != "scratch"  # the count is of the students rho is over
            continue
        p = (cd, 100 * accuracy(r), r)
        (scratch if r["labels"]["distill"] == "scratch" else pts).append(p)
    rho, pval = spearman_test([p[0] for p in pts], [p[1] for p in pts])
    fig, ax = plt.subplots(figsize=(7, 5))
    for aug in sorted({p[2]["labels"]["augment"] for p in pts}, key=augment_rank):
        for g in groups:
            sel = [p for p in pts if p[2]["labels"]["augment"] == aug and
                   (p[2]["config"]["model"], p[2]["labels"].get("teacher_model", "-"), p[2]["labels"]["distill"]) == g]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], color=augment_colour(aug),
                           marker=MARKERS[groups.index(g) % len(MARKERS)],
                           label=f"{student_label(g[0], g[1], g[2])}, teacher aug {aug}")
    if scratch:
        ax.scatter([p[0] for p in scratch], [p[1] for p in scratch], color=augment_colour("scratch"), marker="x",
                   label="from scratch (not in rho)")
    better = "lower = more separated" if variant == "gdv" else "higher = more separated"
    ax.set_xlabel(f"class discrimination of the student's {rep} ({variant} variant; {better})")
    ax.set_ylabel("student test accuracy (%)")
    stat = (f"Spearman rho = {rho:.2f}, p = {pval:.2g}" if finite(rho) else "Spearman rho: n/a (< 3 points)")
    extra = f"; {undefined} more with an undefined CD left out" if undefined else ""
    ax.set_title(f"Distilled students: CD vs accuracy\n{stat}, n = {len(pts)} students{extra}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, 6)
    fig.tight_layout()
    _save(fig, path)
    return (f"each student's CD ({rep}, {variant} variant) against its accuracy, coloured by its teacher's "
            "augmentation, with Spearman's rho over the distilled students")


def plot_reliability(records: list[dict], path: Path) -> str:
    """Reliability diagrams, one panel per teacher augmentation (the teachers and their
    students) and one for the from-scratch students: accuracy per confidence bin at the bin's mean
    confidence, the mean over seeds with a min-max band; marker area shows the share of test
    images in the bin."""
    plt = _plt()
    ok = done(records)
    augs = sorted({r["labels"]["augment"] for r in ok}, key=augment_rank)
    fig, axes = _panels(plt, len(augs), width=4.6, height=4.0)
    for ax, aug in zip(axes, augs):
        lines = defaultdict(list)
        for r in ok:
            if r["labels"]["augment"] == aug:
                lab = r["labels"]
                key = ("teacher " + r["config"]["model"]) if r["kind"] == "teacher" else \
                    student_label(r["config"]["model"], lab.get("teacher_model", "-"), lab["distill"])
                lines[key].append(r)
        for i, (key, recs) in enumerate(sorted(lines.items(), key=lambda kv: (not kv[0].startswith("teacher"), kv[0]))):
            bins = [r["analysis"]["reliability"] for r in recs]
            counts = np.array([b["count"] for b in bins], dtype=float)
            accs = np.array([b["accuracy"] for b in bins], dtype=float)
            accs[counts == 0] = np.nan
            keep = counts.sum(0) > 0  # bins some seed has images in: their nan-statistics are defined
            # each bin at the mean confidence of its images (over the seeds), not at the bin's centre:
            # the centre is up to half a bin (0.05) off, as much as the ECE of a calibrated model
            confs = np.array([b["confidence"] for b in bins], dtype=float)
            centres = np.full(counts.shape[1], np.nan)
            centres[keep] = (confs * counts).sum(0)[keep] / counts.sum(0)[keep]
            mean, lo, hi = (f(accs[:, keep], 0) for f in (np.nanmean, np.nanmin, np.nanmax))
            share = counts.sum(0) / counts.sum()
            ece_mean, ece_sd, n = mean_std([ece(r) for r in recs])
            colour = augment_colour(aug)
            style = ["-", "--", "-.", ":"][i % 4]  # one colour per augmentation: lines differ by style and marker
            ax.plot(centres[keep], mean, style, color=colour, lw=2.0 if key.startswith("teacher") else 1.2, alpha=0.9,
                    label=f"{key}: ECE {100 * ece_mean:.1f}%" + (f" ± {100 * ece_sd:.1f}" if finite(ece_sd) else "")
                    + f" (n={n})")
            ax.scatter(centres[keep], mean, s=8 + 300 * share[keep], color=colour, alpha=0.5,
                       marker=MARKERS[i % len(MARKERS)])
            if len(recs) > 1:
                ax.fill_between(centres[keep], lo, hi, color=colour, alpha=0.1)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_title("students from scratch" if aug == "scratch" else f"teacher augmentation: {aug}", fontsize=10)
        ax.set_xlabel("confidence (max softmax)")
        ax.set_ylabel("accuracy")
        _legend(ax, 6)
    fig.suptitle("Reliability: mean over seeds (band: min-max)\nmarker area = share of test images in the bin",
                 fontsize=11)
    fig.tight_layout()
    _save(fig, path, dpi=110)
    return "reliability diagrams per teacher augmentation (and the from-scratch students), ECE in the legends"


def write_plots(records: list[dict], tables: dict, out: Path) -> dict:
    """{file name: (path, one-line description)} of every figure written."""
    plots = {}
    if tables["teachers"] or tables["students"]:
        p = out / "accuracy_by_augment.png"
        plots[p.name] = (p, plot_accuracy_by_augment(tables, p))
    if tables["students"]:
        p = out / "cd_vs_student_accuracy.png"
        plots[p.name] = (p, plot_cd_vs_accuracy(records, p))
    if done(records):
        p = out / "reliability.png"
        plots[p.name] = (p, plot_reliability(records, p))
    return plots
