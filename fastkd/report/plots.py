"""The study's figures as PNG (matplotlib, no display needed)."""
from __future__ import annotations

import math
from pathlib import Path

from .stats import spearman
from .tables import augment_rank


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finite(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def plot_accuracy_by_augment(tables: dict, path: Path) -> Path:
    """The paper's figure: teacher and student test accuracy across teacher augmentations."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    augs = list(dict.fromkeys(r["augment"] for r in tables["teachers"]))
    xs = range(len(augs))
    for tm in sorted({r["teacher"] for r in tables["teachers"]}):
        rows = {r["augment"]: r for r in tables["teachers"] if r["teacher"] == tm}
        ys = [100 * rows[a]["test_accuracy"] if a in rows else math.nan for a in augs]
        es = [100 * rows[a]["test_accuracy_std"] if a in rows and _finite(rows[a]["test_accuracy_std"]) else 0 for a in augs]
        ax.errorbar(xs, ys, yerr=es, marker="s", capsize=3, label=f"teacher {tm}")
    for key in sorted({(r["student"], r["distill"]) for r in tables["students"] if r["distill"] != "scratch"}):
        rows = {r["augment"]: r for r in tables["students"] if (r["student"], r["distill"]) == key}
        ys = [100 * rows[a]["test_accuracy"] if a in rows else math.nan for a in augs]
        es = [100 * rows[a]["test_accuracy_std"] if a in rows and _finite(rows[a]["test_accuracy_std"]) else 0 for a in augs]
        line = ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=f"student {key[0]} ({key[1]})")
        scratch = [r for r in tables["students"] if r["student"] == key[0] and r["distill"] == "scratch"]
        if scratch:
            ax.axhline(100 * scratch[0]["test_accuracy"], ls=":", color=line[0].get_color(),
                       label=f"{key[0]} from scratch")
    ax.set_xticks(list(xs), augs)
    ax.set_xlabel("teacher's training augmentation")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Teacher and distilled-student accuracy by teacher augmentation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cd_vs_accuracy(records: list[dict], path: Path, rep: str = "softmax", variant: str = "paper") -> tuple[Path, float]:
    """Class discrimination of each student's outputs against its accuracy, with Spearman's rho."""
    plt = _plt()
    pts = []
    for r in records:
        if r["status"] != "done" or r["kind"] != "student":
            continue
        cd = r["analysis"]["class_discrimination"].get(rep, {}).get(variant, {}).get("score")
        if _finite(cd):
            pts.append((cd, 100 * r["metrics"]["test_accuracy"], r["labels"]["augment"], r["config"]["model"]))
    rho = spearman([p[0] for p in pts], [p[1] for p in pts])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for aug in sorted({p[2] for p in pts}, key=augment_rank):
        sel = [p for p in pts if p[2] == aug]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], label=f"teacher {aug}" if aug != "scratch" else "from scratch")
    ax.set_xlabel(f"class discrimination ({rep}, {variant} variant)")
    ax.set_ylabel("student test accuracy (%)")
    ax.set_title(f"Students: CD vs accuracy (Spearman rho = {rho:.2f})" if _finite(rho) else "Students: CD vs accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, rho


def plot_reliability(records: list[dict], path: Path) -> Path:
    """Reliability diagrams: accuracy vs confidence per bin, one panel per teacher augmentation
    (the teacher and its students overlaid), seed 0 of each."""
    plt = _plt()
    augs = sorted(dict.fromkeys(r["labels"]["augment"] for r in records if r["status"] == "done"), key=augment_rank)
    cols = min(3, len(augs)) or 1
    rows = math.ceil(len(augs) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, aug in zip(axes.flat, augs):
        for r in records:
            if r["status"] != "done" or r["labels"]["augment"] != aug or r["labels"]["seed"] != min(
                    x["labels"]["seed"] for x in records if x["status"] == "done"):
                continue
            b = r["analysis"]["reliability"]
            centres = [(lo + hi) / 2 for lo, hi in zip(b["edges"][:-1], b["edges"][1:])]
            keep = [i for i, c in enumerate(b["count"]) if c]
            label = f"{r['kind']} {r['config']['model']} (ECE {100 * r['analysis']['calibration']['ece']:.1f}%)"
            ax.plot([centres[i] for i in keep], [b["accuracy"][i] for i in keep], marker="o", label=label)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_title(f"teacher augment: {aug}")
        ax.set_xlabel("confidence (max softmax)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(augs):]:
        ax.axis("off")
    fig.suptitle("Reliability diagrams (10 equal-width bins)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(records: list[dict], tables: dict, out: Path) -> dict:
    paths = {}
    if tables["teachers"]:
        paths["accuracy_by_augment.png"] = plot_accuracy_by_augment(tables, out / "accuracy_by_augment.png")
    if tables["students"]:
        p, rho = plot_cd_vs_accuracy(records, out / "cd_vs_student_accuracy.png")
        paths["cd_vs_student_accuracy.png"] = p
        (out / "cd_rank_correlation.txt").write_text(f"spearman_rho {rho}\n")
    if any(r["status"] == "done" for r in records):
        paths["reliability.png"] = plot_reliability(records, out / "reliability.png")
    return paths
