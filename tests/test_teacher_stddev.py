"""Wang et al.'s T. stddev (fastkd.metrics.teacher_stddev) against a loop-based float64 reference
and known values, and as every distillation run records it (live teacher and cache, resumed runs)."""
import json

import numpy as np
import pytest
import torch

from fastkd import config as C
from fastkd.metrics.teacher_stddev import TeacherMeanProbability, merge, moments_value, teacher_stddev_of
from fastkd.train import engine
from tests.helpers import kill_at_loss_call


def _reference(logits: np.ndarray, chunk: int) -> float:
    """Chunks of ``chunk`` rows in order; per chunk the mean softmax; per class the sample std over
    chunks; the mean over classes. Loops and numpy, float64."""
    means = []
    for start in range(0, len(logits) - chunk + 1, chunk):
        rows = []
        for z in logits[start:start + chunk]:
            e = np.exp(z - z.max())
            rows.append(e / e.sum())
        means.append(np.mean(rows, axis=0))
    means = np.array(means)
    return float(np.mean([np.std(means[:, k], ddof=1) for k in range(means.shape[1])]))


@pytest.mark.parametrize("chunk", [7, 64, 640])
def test_matches_the_loop_reference(chunk):
    logits = torch.randn(2000, 10, generator=torch.Generator().manual_seed(chunk), dtype=torch.float64) * 3
    assert teacher_stddev_of(logits, chunk) == pytest.approx(_reference(logits.numpy(), chunk), rel=1e-12)


def test_known_values():
    one_hot = torch.full((4, 2), -50.0, dtype=torch.float64)
    one_hot[:2, 0] = one_hot[2:, 1] = 50.0  # chunk means (1, 0) and (0, 1)
    assert teacher_stddev_of(one_hot, 2) == pytest.approx(np.sqrt(0.5))
    same = torch.randn(5, 3).repeat(4, 1)  # every chunk holds the same rows: nothing varies
    assert teacher_stddev_of(same, 5) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(teacher_stddev_of(same, 20))  # one chunk: undefined


def test_accumulator_splits_batches_across_chunks_and_survives_a_resume():
    logits = torch.randn(1100, 10, generator=torch.Generator().manual_seed(1)) * 2
    sizes = [64] * 10 + [17, 100, 3] + [64] * 5
    acc, resumed = TeacherMeanProbability(chunk=50), TeacherMeanProbability(chunk=50)
    start = 0
    for i, n in enumerate(sizes):
        acc.update(logits[start:start + n])
        resumed.update(logits[start:start + n])
        if i == 11:  # a checkpoint, restored into a fresh accumulator
            state = resumed.state()
            resumed = TeacherMeanProbability(chunk=50)
            resumed.load(state, "cpu")
        start += n
    want = teacher_stddev_of(logits[:start], 50)
    for a in (acc, resumed):
        assert a.count == start // 50
        assert a.value() == pytest.approx(want, rel=1e-10)


def test_processes_merge_into_the_statistic_of_all_their_chunks():
    # each process closes its own chunks; merging their moments equals the statistic of every chunk
    logits = torch.randn(3 * 700, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2
    parts = [TeacherMeanProbability(chunk=70) for _ in range(3)]
    for i, part in enumerate(parts):
        part.update(logits[i * 700:(i + 1) * 700])
    rows = torch.stack([p.moments(10, "cpu") for p in parts] + [TeacherMeanProbability(70).moments(10, "cpu")])
    count, m2 = merge(rows)  # an empty process (no chunk closed) counts for nothing
    assert count == 30
    assert moments_value(count, m2) == pytest.approx(teacher_stddev_of(logits, 70), rel=1e-10)


TINY = ["data.name=sample", "data.limit_train=256", "data.limit_test=32", "train.epochs=2", "train.batch_size=32",
        "data.eval_batch_size=64", "device=cpu", "model=lenet"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "t"
    engine.train(C.build(overrides=TINY), out, progress=False)
    return out


def test_every_distillation_run_records_it_from_what_its_teacher_gave(teacher, tmp_path, monkeypatch):
    seen = []
    real = TeacherMeanProbability.update
    monkeypatch.setattr(TeacherMeanProbability, "update", lambda self, z: (seen.append(z.detach().clone()), real(self, z)))
    live = C.build(overrides=TINY + ["augment=crop_flip+cutmix", f"distill.teacher={teacher}", "train.epochs=6"])
    m = engine.train(live, tmp_path / "live", kind="student", progress=False)
    record = m["teacher_stddev"]
    assert record["teacher_outputs"] == "live" and record["view"] == "crop_flip+cutmix"
    assert record["chunks"] == 6 * 256 // 640 and record["chunk_size"] == 640
    assert record["value"] == pytest.approx(_reference(torch.cat(seen).double().numpy(), 640), rel=1e-9)
    seen.clear()
    cached = C.build(overrides=TINY + ["augment=none", f"distill.teacher={teacher}", "train.epochs=5"])
    m = engine.train(cached, tmp_path / "cached", kind="student", progress=False)
    assert m["teacher_cache"] == "used" and m["teacher_stddev"]["teacher_outputs"] == "cache"
    assert m["teacher_stddev"]["value"] == pytest.approx(_reference(torch.cat(seen).double().numpy(), 640), rel=1e-9)
    scratch = engine.train(C.build(overrides=TINY + ["distill.gamma=0"]), tmp_path / "scratch", kind="student",
                           progress=False)
    assert "teacher_stddev" not in scratch


def test_a_resumed_run_records_the_same_statistic(teacher, tmp_path, monkeypatch):
    cfg = C.build(overrides=TINY + ["augment=crop_flip", f"distill.teacher={teacher}", "train.epochs=5"])
    ref = engine.train(cfg, tmp_path / "ref", kind="student", progress=False)["teacher_stddev"]
    real = kill_at_loss_call(monkeypatch, 20)  # in epoch 3 (8 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path / "killed", kind="student", progress=False)
    monkeypatch.setattr(engine.Trainer, "_loss", real)
    m = engine.train(cfg, tmp_path / "killed", kind="student", progress=False)
    assert m["teacher_stddev"] == ref
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["teacher_stddev"] == ref


def test_probing_the_teacher_alone_gives_what_a_student_run_records(teacher, tmp_path):
    # the probe feeds the teacher the very stream a student run of the same config trains on
    from fastkd.train.probe import probe_teacher_stddev
    cfg = C.build(overrides=TINY + ["augment=crop_flip+mixup", f"distill.teacher={teacher}", "train.epochs=6"])
    recorded = engine.train(cfg, tmp_path / "s", kind="student", progress=False)["teacher_stddev"]
    probed = probe_teacher_stddev(cfg, epochs=6)
    assert probed["chunks"] == recorded["chunks"] == 2
    assert probed["value"] == pytest.approx(recorded["value"], rel=1e-6)
