"""The throughput benchmark's output: every backend measured, ratios derived from the same run.
Speed itself is never asserted (benchmarks report it; see docs/benchmarks.md)."""
import json

import pytest

from fastkd.bench import _installed
from fastkd.cli import main as cli_main


@pytest.mark.slow
def test_bench_reports_every_backend_with_consistent_ratios(tmp_path, capsys):
    backends = ["tensor", "dataloader"] + [b for b in ("dali",) if _installed(b)]
    out = tmp_path / "bench.json"
    assert cli_main(["bench", "--backends", *backends, "--batch-size", "16", "--steps", "1", "--loader-steps", "2",
                     "--warmup", "1", "--workers", "1", "--augment", "crop_flip+cutmix", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = result["results"]
    ips = {(r.get("backend", "bare"), r["measure"]): r["images_per_second"] for r in rows}
    assert set(ips) == {("bare", "teacher step"), ("bare", "kd step")} | {
        (b, m) for b in backends for m in ("loader only", "teacher step", "kd step")}
    for r in rows:
        assert r["images_per_second"] > 0 and r["pipeline"] in table
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
