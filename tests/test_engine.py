import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import kill_at_loss_call, needs_cuda
from fastkd import config as C
from fastkd.train import engine
from fastkd.train import accelerator
from fastkd.run.checkpoint import CheckpointError
from fastkd.cli import main as cli_main
from fastkd.run.rundir import RunDirError

TINY = ["data.name=sample", "data.limit_train=320", "data.limit_test=100", "model=resnet8", "train.epochs=3",
        "train.batch_size=32", "train.lr=0.05", "train.schedule=cosine", "data.eval_batch_size=100"]


def _cfg(*extra):
    return C.build(overrides=TINY + list(extra))


def _weights(path):
    return load_file(str(path))


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    metrics = engine.train(_cfg("augment=crop_flip+cutmix"), out, progress=False)
    return out, metrics


def test_teacher_run_writes_a_complete_run_directory(teacher_run):
    out, m = teacher_run
    for name in ("config.yaml", "run.json", "train.log", "model.safetensors", "metrics.json", "test_outputs.npz"):
        assert (out / name).is_file(), name
    assert m["epochs"] == 3 and m["test_examples"] == 100 and m["images_per_second"] > 0
    o = np.load(out / "test_outputs.npz")
    assert o["logits"].shape == (100, 10) and o["features"].shape == (100, 64)
    assert np.array_equal(o["index"], np.arange(100))
    # the saved outputs reproduce the reported accuracy
    assert (o["logits"].argmax(1) == o["labels"]).mean() == pytest.approx(m["test_accuracy"])
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and "torch" in run["versions"] and "cpu_count" in run["hardware"]


def test_student_distills_with_teacher_outputs_saved(teacher_run, tmp_path):
    t_out, t_metrics = teacher_run
    cfg = _cfg("model=lenet", "augment=none", f"distill.teacher={t_out}", "distill.temperature=4")
    m = engine.train(cfg, tmp_path / "s", kind="student", progress=False)
    o = np.load(tmp_path / "s" / "test_outputs.npz")
    assert o["teacher_logits"].shape == (100, 10) and o["features"].shape == (100, 84)
    assert m["teacher_test_accuracy"] == pytest.approx(t_metrics["test_accuracy"])
    assert m["agreement"] == pytest.approx((o["teacher_logits"].argmax(1) == o["logits"].argmax(1)).mean())


def test_scratch_student_needs_no_teacher(tmp_path):
    m = engine.train(_cfg("model=lenet", "distill.gamma=0", "train.epochs=1"), tmp_path / "s", kind="student", progress=False)
    assert m["kind"] == "student" and "agreement" not in m
    with pytest.raises(engine.TrainingError, match="--teacher"):
        engine.train(_cfg("model=lenet"), tmp_path / "s2", kind="student", progress=False)


def test_teacher_directory_problems_are_named(tmp_path):
    (tmp_path / "t").mkdir()
    with pytest.raises(CheckpointError, match="not a fastkd run directory"):
        engine.train(_cfg(f"distill.teacher={tmp_path / 't'}"), tmp_path / "s", kind="student", progress=False)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _cfg("augment=crop_flip+mixup", "device=cpu")  # bitwise equality: cuDNN and TF32 do not promise it
    ref = tmp_path / "ref"
    engine.train(cfg, ref, progress=False)
    for kill_at in (4, 10, 21):  # calls to the loss: mid epoch 1, mid epoch 2 (10 steps/epoch), epoch 3
        out = tmp_path / f"killed{kill_at}"
        real = kill_at_loss_call(monkeypatch, kill_at)
        with pytest.raises(KeyboardInterrupt):
            engine.train(cfg, out, progress=False)
        assert not (out / "metrics.json").exists()
        monkeypatch.setattr(engine.Trainer, "_loss", real)
        m = engine.train(cfg, out, progress=False)
        assert m["epochs"] == 3 and [h["epoch"] for h in m["history"]] == [1, 2, 3]
        a, b = _weights(ref / "model.safetensors"), _weights(out / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), f"resumed run (killed at call {kill_at}) diverged"


def test_finished_run_is_not_redone_and_other_config_is_refused(teacher_run):
    out, m = teacher_run
    log_before = (out / "train.log").read_text()
    again = engine.train(_cfg("augment=crop_flip+cutmix"), out, progress=False)
    assert again["test_accuracy"] == m["test_accuracy"] and (out / "train.log").read_text() == log_before
    with pytest.raises(RunDirError, match=r"train.lr: 0.05 -> 0.01"):
        engine.train(_cfg("augment=crop_flip+cutmix", "train.lr=0.01"), out, progress=False)


def test_run_that_failed_while_starting_can_be_rerun_with_a_fixed_config(tmp_path):
    pytest.importorskip("nvidia.dali")  # the failure used: a DALI option this machine cannot honour
    out = tmp_path / "r"
    with pytest.raises(C.ConfigError, match="data.dali.decode=mixed"):
        engine.train(_cfg("data.backend=dali", "data.dali.decode=mixed", "device=cpu"), out, progress=False)
    assert (out / "config.yaml").is_file() and not (out / "checkpoints").exists()
    m = engine.train(_cfg("train.epochs=1"), out, progress=False)  # nothing was trained: no --overwrite needed
    assert m["epochs"] == 1


def test_selection_by_validation_loss_keeps_best_weights(tmp_path):
    # two trainings compared bitwise: on the CPU, where the arithmetic is deterministic
    cfg = _cfg("data.val_split=60", "train.select=val_loss", "train.lr=0.5", "train.keep_checkpoints=true", "device=cpu")
    m = engine.train(cfg, tmp_path / "r", progress=False)
    losses = [h["val_loss"] for h in m["history"]]
    assert m["selected_epoch"] == int(np.argmin(losses)) + 1
    a, b = _weights(tmp_path / "r" / "best.safetensors"), _weights(tmp_path / "r" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert m["data_sizes"] == {"train": 260, "val": 60, "test": 100}
    assert (tmp_path / "r" / "checkpoints" / "last.json").is_file()  # kept, as asked
    # by default a finished run keeps only its final weights, metrics and outputs
    engine.train(_cfg("data.val_split=60", "train.select=val_loss", "train.lr=0.5", "device=cpu"), tmp_path / "r3",
                 progress=False)
    left = {p.name for p in (tmp_path / "r3").iterdir()}
    assert left == {"config.yaml", "run.json", "train.log", "model.safetensors", "metrics.json", "test_outputs.npz",
                    ".fastkd.lock"}
    b3 = _weights(tmp_path / "r3" / "model.safetensors")
    assert all(torch.equal(a[k], b3[k]) for k in a)  # the selected weights, the same as with checkpoints kept
    with pytest.raises(engine.TrainingError, match="data.val_split"):
        engine.train(_cfg("train.select=val_acc"), tmp_path / "r2", progress=False)


def test_nan_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    from fastkd.train import objectives
    real = objectives.soft_cross_entropy
    monkeypatch.setattr(objectives, "soft_cross_entropy", lambda lg, t: real(lg, t) * float("nan"))
    with pytest.raises(engine.TrainingError, match=r"loss became nan (at|during) epoch 1"):
        engine.train(_cfg(), tmp_path / "r", progress=False)


def test_gradient_accumulation_and_adamw_run(tmp_path):
    m = engine.train(_cfg("train.grad_accum=2", "train.optimizer=adamw", "train.lr=0.001", "train.epochs=1",
                          "train.precision=bf16"), tmp_path / "r", progress=False)
    assert m["epochs"] == 1 and np.isfinite(m["test_loss"])


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert cli_main(["train", "--preset", "smoke", "--set", "train.optimiser=sgd", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.optimiser'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists(), "nothing is written before the config is valid"


def test_cli_train_distill_eval(tmp_path, capsys):
    t, s = tmp_path / "t", tmp_path / "s"
    assert cli_main(["train", "--preset", "smoke", "--set", "train.epochs=1", "--out", str(t), "--quiet"]) == 0
    assert cli_main(["distill", "--preset", "smoke", "--teacher", str(t), "--set", "model=lenet",
                     "--set", "train.epochs=1", "--out", str(s), "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["eval", str(s)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((s / "metrics.json").read_text())
    assert result["examples"] == 500 and result["accuracy"] == pytest.approx(metrics["test_accuracy"])


@needs_cuda
@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_gpu_teacher_and_student_with_mixed_precision(tmp_path, precision):
    gpu = ["device=cuda", f"train.precision={precision}"]
    t, s = tmp_path / "t", tmp_path / "s"
    tm = engine.train(_cfg(*gpu, "augment=crop_flip+cutmix"), t, progress=False)
    assert json.loads((t / "run.json").read_text())["hardware"]["gpus"]
    sm = engine.train(_cfg(*gpu, "model=lenet", f"distill.teacher={t}", "train.epochs=1"), s, kind="student", progress=False)
    assert sm["teacher_test_accuracy"] == pytest.approx(tm["test_accuracy"])
    # GPU-trained weights reproduce their accuracy when re-evaluated on the CPU in float32
    from fastkd.train.evaluate_run import evaluate_run
    r = evaluate_run(t, overrides=["device=cpu", "train.precision=no"])
    assert r["examples"] == 100 and abs(r["accuracy"] - tm["test_accuracy"]) <= 0.02


def test_progress_bar_ends_each_epoch_with_its_mean_loss_and_history_records_the_lr_it_trained_with(tmp_path, monkeypatch):
    import tqdm.auto
    bars = []

    class Recorder:
        def __init__(self, *a, total=None, **k):
            self.total, self.n, self.postfix = total, 0, []
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **kw):
            self.postfix.append((self.n, kw))

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        @staticmethod
        def write(text):
            pass
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    monkeypatch.setenv("FASTKD_PROGRESS", "bars")  # as on a terminal
    # a step schedule that decays after the first epoch: the epochs train at 0.05 and 0.005
    m = engine.train(_cfg("train.epochs=2", "train.schedule=step", "train.milestones=[1]", "train.lr_decay=0.1"),
                     tmp_path / "r", progress=True)
    epoch_bars = [b for b in bars if b.total == 10]
    assert len(epoch_bars) == 2
    for bar, h in zip(epoch_bars, m["history"]):
        updates = [n for n, _ in bar.postfix]
        assert updates[-1] == 10 and max(b - a for a, b in zip([0] + updates, updates)) <= engine.PROGRESS_EVERY
        assert bar.postfix[-1][1]["loss"] == f"{h['train_loss']:.4f}"
        assert float(bar.postfix[-1][1]["lr"]) == pytest.approx(h["lr"])
    assert [h["lr"] for h in m["history"]] == pytest.approx([0.05, 0.005])


def test_each_run_in_one_process_gets_the_device_its_config_asks_for(monkeypatch):
    # Accelerate's process state outlives a run: after a run on another device (here faked as the
    # state a CUDA run leaves behind) a device=cpu run must still land on the CPU, not there
    from accelerate.state import AcceleratorState, PartialState
    try:
        accelerator.make_accelerator(_cfg("device=cpu"))
        PartialState._shared_state["device"] = torch.device("meta")
        acc = accelerator.make_accelerator(_cfg("device=cpu"))
        assert acc.device.type == "cpu" and PartialState().device.type == "cpu"
        # an environment that forces another device is named, not followed silently
        AcceleratorState._reset_state(reset_partial_state=True)
        monkeypatch.setenv("ACCELERATE_TORCH_DEVICE", "meta")
        with pytest.raises(engine.TrainingError, match="ACCELERATE_"):
            accelerator.make_accelerator(_cfg("device=cpu"))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)  # the next test starts from a clean process state


def test_a_step_the_fp16_scaler_skipped_does_not_advance_the_schedule(tmp_path, monkeypatch):
    # fp16's scaler skips a step with inf gradients; the schedule must wait for the real steps
    # (faked here on the CPU: every step reported as skipped leaves the lr where it started)
    from accelerate.optimizer import AcceleratedOptimizer
    monkeypatch.setattr(AcceleratedOptimizer, "step_was_skipped", property(lambda self: True))
    m = engine.train(_cfg("train.epochs=2", "train.schedule=step", "train.milestones=[1]"), tmp_path / "r",
                     progress=False)
    assert [h["lr"] for h in m["history"]] == [0.05, 0.05]
