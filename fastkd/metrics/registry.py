"""The metrics of a finished run, by name: adding one is a ``RunMetric`` plus one line in
``_METRICS`` (or ``register`` at run time).

A metric declares what it reads (``needs``: ``"test"``, the run's test-set labels, logits and
penultimate features; ``"train"``, the same on the training set, saved by teachers; ``"teacher"``,
the teacher's test logits, saved by students), computes a JSON-able dict from a ``RunOutputs``,
and names the report columns it produces (``columns``: column title -> key of its result). Its
result is stored in each run's ledger record under its name; a metric with columns gets a table
in the report (``metric_<name>``: mean and spread over the seeds of each cell). The built-in
metrics have tables of their own and declare none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..extensions import ExtensionTable
from .calibration import calibration, reliability_bins
from .discrimination import VARIANTS, class_discrimination
from .fidelity import fidelity
from .knn import knn_accuracy, knn_purity

REPRESENTATIONS = ("softmax", "logits", "features")


@dataclass(frozen=True)
class RunOutputs:
    """What a metric reads: the saved outputs (tensors on the metric's device) and the study's
    metric options."""

    test: dict
    train: dict | None = None
    knn_k: int = 10
    cd_variants: tuple = VARIANTS
    gdv_max_points: int = 20000

    @property
    def labels(self) -> torch.Tensor:
        return self.test["labels"]

    def representation(self, name: str) -> torch.Tensor:
        logits = self.test["logits"]
        if name == "softmax":
            return torch.softmax(logits.double(), 1)
        return self.test["features" if name == "features" else "logits"]


@dataclass(frozen=True)
class RunMetric:
    name: str
    compute: Callable[[RunOutputs], dict]
    needs: tuple[str, ...] = ("test",)
    columns: dict = field(default_factory=dict)

    def applies(self, outputs: RunOutputs) -> bool:
        return ("train" not in self.needs or outputs.train is not None) and \
            ("teacher" not in self.needs or "teacher_logits" in outputs.test)


def _class_discrimination(o: RunOutputs) -> dict:
    predictions = o.test["logits"].argmax(1)  # the paper variant's L counts predicted classes, on every representation
    out: dict = {}
    for rep in REPRESENTATIONS:
        x = o.representation(rep)
        out[rep] = {}
        for v in o.cd_variants:
            if v == "gdv" and len(x) > o.gdv_max_points:
                continue  # quadratic in N; skipped on large sets (use fastkd metric directly)
            try:
                r = class_discrimination(x, o.labels, v, predictions=predictions)
                out[rep][v] = {"score": r.score, "intra": r.intra, "inter": r.inter}
            except ValueError as exc:  # undefined here: one predicted class, a class with < 2 points
                out[rep][v] = {"undefined": str(exc)}
    return out


def _knn(o: RunOutputs) -> dict:
    k = min(o.knn_k, len(o.labels) - 1)
    out = {"k": k, "purity_features": knn_purity(o.test["features"], o.labels, k),
           "purity_logits": knn_purity(o.test["logits"], o.labels, k)}
    if o.train is not None:  # classification of the test set against the training set's features
        out["accuracy_features"] = knn_accuracy(o.train["features"], o.train["labels"], o.test["features"], o.labels, k)
    return out


_METRICS = ExtensionTable("metric", {m.name: m for m in (
    RunMetric("calibration", lambda o: calibration(o.test["logits"], o.labels)),
    RunMetric("reliability", lambda o: reliability_bins(o.test["logits"], o.labels)),
    RunMetric("class_discrimination", _class_discrimination),
    RunMetric("knn", _knn),
    RunMetric("fidelity", lambda o: fidelity(o.test["teacher_logits"], o.test["logits"]), needs=("test", "teacher")),
)})
BUILT_IN = _METRICS.built_in


def metrics() -> tuple[RunMetric, ...]:
    return tuple(_METRICS.values())


def register(metric: RunMetric) -> None:
    """Add a metric at run time (a plugin, a test): computed for runs analysed after this call."""
    _METRICS.add(metric.name, metric)


def unregister(name: str) -> None:
    _METRICS.remove(name)
