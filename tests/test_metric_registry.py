"""A metric is one RunMetric plus one registry line: a small one registered here is computed for
every run it applies to, stored under its name, and reported as a table of its declared columns."""
import json

import numpy as np
import pytest
import torch

from fastkd.metrics.analysis import analyze_outputs
from fastkd.metrics.registry import BUILT_IN, RunMetric, register, unregister
from fastkd.report import write_report
from test_report import grid_records


def _margin(o):
    p = torch.softmax(o.test["logits"].double(), 1).sort(1, descending=True).values
    return {"margin": float((p[:, 0] - p[:, 1]).mean())}


@pytest.fixture
def registered():
    register(RunMetric("margin", _margin, columns={"top-1 margin": "margin"}))
    register(RunMetric("train_size", lambda o: {"n": len(o.train["labels"])}, needs=("test", "train")))
    yield
    unregister("margin")
    unregister("train_size")


def _outputs(n, seed=0):
    g = np.random.default_rng(seed)
    return {"labels": g.integers(0, 4, n), "logits": g.normal(size=(n, 4)).astype(np.float32),
            "features": g.normal(size=(n, 8)).astype(np.float32)}


def test_a_registered_metric_is_computed_where_it_applies(registered):
    test = _outputs(60)
    out = analyze_outputs(test, cd_variants=("clean",))
    logits = test["logits"].astype(np.float64)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    top = np.sort(p, 1)[:, ::-1]
    assert out["margin"]["margin"] == pytest.approx(float(np.mean(top[:, 0] - top[:, 1])), rel=1e-12)
    assert "train_size" not in out and "fidelity" not in out  # it needs outputs this run did not save
    assert analyze_outputs(test, _outputs(30, 1), cd_variants=("clean",))["train_size"] == {"n": 30}
    assert set(BUILT_IN) <= set(out) | {"fidelity"}


def test_its_declared_columns_become_a_report_table(registered, tmp_path):
    records = grid_records()
    for r in records:
        r["analysis"]["margin"] = {"margin": 0.1 * r["labels"]["seed"] + r["metrics"]["test_accuracy"]}
    paths = write_report(records, tmp_path)
    rows = {(row["kind"], row["model"], row["augment"], row["distill"]): row
            for row in json.loads(paths["tables.json"].read_text())["metric_margin"]}
    cell = [r for r in records if r["kind"] == "teacher" and r["labels"]["augment"] == "none"
            and r["config"]["model"] == records[0]["config"]["model"]]
    want = np.mean([r["analysis"]["margin"]["margin"] for r in cell])
    got = rows[("teacher", cell[0]["config"]["model"], "none", "-")]
    assert got["top-1 margin"] == pytest.approx(want) and got["seeds"] == len(cell)
    assert "## margin" in paths["summary_text"] and (tmp_path / "metric_margin.csv").is_file()
