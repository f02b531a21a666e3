"""The throughput benchmark's output: every backend measured, ratios derived from the same run.
Speed itself is never asserted (benchmarks report it; see docs/benchmarks.md)."""
import json

import pytest

from fastkd.bench.pipelines import _installed
from fastkd.cli import main as cli_main


@pytest.mark.slow
def test_bench_reports_every_backend_with_consistent_ratios(tmp_path, capsys, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # to see what the benchmark leaves behind
    (tmp_path / "tmp").mkdir()
    backends = ["tensor", "dataloader"] + [b for b in ("dali",) if _installed(b)]
    out = tmp_path / "bench.json"
    assert cli_main(["bench", "--backends", *backends, "--batch-size", "16", "--steps", "1", "--loader-steps", "2",
                     "--warmup", "1", "--workers", "1", "--augment", "crop_flip+cutmix", "--repeats", "2",
                     "--json", str(out)]) == 0
    assert not list((tmp_path / "tmp").glob("fastkd*")), "the benchmark left temporary files behind"
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = result["results"]
    ips = {(r.get("backend", "bare"), r["measure"]): r["images_per_second"] for r in rows}
    steps = ("teacher step", "kd step", "kd step, cached teacher")
    assert set(ips) == {("bare", m) for m in steps} | {(b, m) for b in backends for m in ("loader only",) + steps}
    for r in rows:
        assert r["images_per_second"] > 0 and r["pipeline"] in table
        assert len(r["runs"]) == 2 and r["images_per_second"] == max(r["runs"])  # the median of two: the upper
        assert r["spread"] == pytest.approx((max(r["runs"]) - min(r["runs"])) / r["images_per_second"])
        if r.get("backend") not in (None, "dataloader"):
            assert r["x_vs_dataloader"] == pytest.approx(r["images_per_second"] / ips[("dataloader", r["measure"])])
        if r.get("backend") and r["measure"] != "loader only":
            assert r["fraction_of_bare"] == pytest.approx(r["images_per_second"] / ips[("bare", r["measure"])])
        whole_epoch = r["measure"] == "loader only" and "backend" in r
        assert ("epoch_start_s" in r) == ("whole_epoch_images_per_second" in r) == whole_epoch
        if whole_epoch:
            assert 0 < r["epoch_start_s"] and r["whole_epoch_images_per_second"] > 0
    assert result["config"]["augment"] == "crop_flip+cutmix" and result["config"]["batch_size"] == 16
    assert "torch" in result["environment"]["versions"]


def test_a_share_above_the_bare_step_is_shown_as_noise():
    from fastkd.bench.pipelines import _of_bare
    assert _of_bare({"fraction_of_bare": 2.723}) == "~100% (noise)"
    assert _of_bare({"fraction_of_bare": 0.8151}) == "81.5%" and _of_bare({}) == ""


def test_metric_benchmark_reports_every_path_per_device(tmp_path, capsys):
    from fastkd.bench.metrics import main
    out = tmp_path / "m.json"
    assert main(["--sizes", "300", "--dims", "8", "--k", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["results"]
    assert {r["device"] for r in rows} == set(d.split(":")[0] for d in result["devices"])
    host = next(r for r in rows if r["device"] == "cpu")
    assert {"cd_clean_s", "cd_paper_s", "knn_torch_s", "knn_auto_s"} <= set(host)
    for r in rows:
        if r["device"] != "cpu":  # a GPU row carries its speed-up over the host's row
            assert r["speedup_vs_host"]["cd_clean"] == pytest.approx(host["cd_clean_s"] / r["cd_clean_s"])


def test_the_timed_steps_make_no_host_sync(monkeypatch):
    # the cached-KD step read the table's size from the batch (int(index.max()), twice) inside the timing
    import torch
    from helpers import HostSyncCounter
    from fastkd.bench.pipelines import _Steps
    from fastkd.config import DataConfig
    from fastkd.data import load_splits
    from fastkd.pipelines import build_pipeline
    from fastkd.pipelines.spec import make_spec
    train = load_splits(DataConfig(name="sample", limit_train=64, limit_test=10))["train"]
    batch = next(iter(build_pipeline("tensor", train, make_spec("crop_flip+mixup"), train=True, batch_size=16,
                                     device="cpu", seed=0)))
    steps = _Steps("resnet8", "lenet", train.num_classes, torch.device("cpu"), "no", True, False, len(train))
    counter = HostSyncCounter(monkeypatch)
    counter.active = True
    for step in (steps.teacher_step, steps.kd_step, steps.kd_cached_step):
        step(batch)
    assert counter.count == 0
