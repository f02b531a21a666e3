"""Run safety: what a careless or hostile user can do to a run folder, a study or a config."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fastkd import config as C
from fastkd.train import engine
from fastkd.train import run_identity
from fastkd.run.atomic import write_atomic
from fastkd.cli import main as cli_main
from fastkd.errors import CheckpointError, ConfigError, FastkdError, RunDirError, RunLockedError
from fastkd.run.lock import FolderLock
from helpers import TINY_STUDY, kill_at_loss_call

TINY = ["data.name=sample", "data.limit_train=320", "data.limit_test=100", "model=resnet8", "train.epochs=2",
        "train.batch_size=32", "train.lr=0.05", "train.schedule=cosine", "data.eval_batch_size=100"]
REPO = Path(__file__).resolve().parents[1]


def _cfg(*extra):
    return C.build(overrides=TINY + list(extra))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupted_in_epoch_2(monkeypatch, out):
    """A run of _cfg() stopped mid-way through its second epoch (its first checkpointed)."""
    real = kill_at_loss_call(monkeypatch, 12)  # 10 steps per epoch
    with pytest.raises(KeyboardInterrupt):
        engine.train(_cfg(), out, progress=False)
    monkeypatch.setattr(engine.Trainer, "_loss", real)


# ---- 1. nothing foreign is deleted ----------------------------------------------------------------
def test_a_folder_that_is_not_a_fastkd_run_is_never_modified(tmp_path):
    other = tmp_path / "someone-elses"
    (other / "checkpoints").mkdir(parents=True)
    (other / "config.yaml").write_text("lr: 3\n")
    (other / "model.safetensors").write_bytes(b"precious weights")
    (other / "train.log").write_text("their log\n")
    (other / "checkpoints" / "x.bin").write_bytes(b"x")
    before = _snapshot(other)
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="not a fastkd run folder"):
            engine.train(_cfg(), other, progress=False, overwrite=overwrite)
        assert _snapshot(other) == before and not (other / ".fastkd.lock").exists()


# ---- 2. one process per folder ---------------------------------------------------------------------
def test_a_locked_run_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "r"
    with FolderLock(out):
        with pytest.raises(RunLockedError, match=rf"in use by process {os.getpid()} on host "):
            engine.train(_cfg("train.epochs=1"), out, progress=False)
    assert engine.train(_cfg("train.epochs=1"), out, progress=False)["epochs"] == 1  # released


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fastkd.run.lock import FolderLock; "
                               f"FolderLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            engine.train(_cfg("train.epochs=1"), out, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert engine.train(_cfg("train.epochs=1"), out, progress=False)["epochs"] == 1


def test_study_folder_is_locked_too(tmp_path):
    from fastkd.study import load_study, run_study
    with FolderLock(tmp_path, what="study folder"):
        with pytest.raises(RunLockedError, match="study folder is in use"):
            run_study(load_study("demo"), tmp_path, progress=False)


# ---- 3. identity is what a run computes -----------------------------------------------------------
def test_execution_settings_may_change_between_resumes_and_paths_do_not_count(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _interrupted_in_epoch_2(monkeypatch, out)
    # a relative spelling of the folder, other workers and evaluation batch: the same run, resumed
    monkeypatch.chdir(tmp_path)
    m = engine.train(_cfg("data.num_workers=1", "data.eval_batch_size=50"), Path("./x/../r"), progress=False)
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    assert "resume at epoch 2" in (out / "train.log").read_text()
    assert "data.eval_batch_size: 100 -> 50" in (out / "train.log").read_text()
    # a setting that changes results is another run
    with pytest.raises(RunDirError, match=r"train.lr: 0.05 -> 0.01"):
        engine.train(_cfg("train.lr=0.01"), out, progress=False)


def test_teacher_is_identified_by_its_identity_not_its_path(tmp_path, monkeypatch):
    t = tmp_path / "t"
    engine.train(_cfg("train.epochs=1"), t, progress=False)
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link-to-t"
    link.symlink_to(t)
    ids = {run_identity.run_identity_of(_cfg("model=lenet", "augment=none", f"distill.teacher={p}"), "student")["teacher"]
           for p in (str(t), str(t) + "/", "t", "./t/", str(link))}
    assert len(ids) == 1
    # a retrained teacher (other seed) is another teacher
    engine.train(_cfg("train.epochs=1", "seed=1"), tmp_path / "t2", progress=False)
    other = run_identity.run_identity_of(_cfg("model=lenet", "augment=none", f"distill.teacher={tmp_path / 't2'}"), "student")
    assert other["teacher"] not in ids


STUDY = TINY_STUDY | {"augments": ["none"]}


@pytest.mark.slow
def test_study_rerun_through_another_spelling_or_a_copy_redoes_nothing(tmp_path, monkeypatch):
    import shutil
    from fastkd.study import load_study, run_study
    sc = load_study(extra=STUDY)
    first = run_study(sc, tmp_path / "a", progress=False, report=False)
    assert [r["status"] for r in first] == ["done", "done"]
    ledger = tmp_path / "a" / "ledger"
    stamp = {p.name: p.read_bytes() for p in ledger.glob("*.json")}
    calls = {"n": 0}
    real = engine.Trainer._run
    monkeypatch.setattr(engine.Trainer, "_run", lambda self: (calls.__setitem__("n", calls["n"] + 1), real(self))[1])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    for spelling in ("a", "./a/../a", str(tmp_path / "link")):
        run_study(sc, spelling, progress=False, report=False)
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    run_study(sc, tmp_path / "copy", progress=False, report=False)
    assert calls["n"] == 0
    assert {p.name: p.read_bytes() for p in ledger.glob("*.json")} == stamp


@pytest.mark.slow
def test_a_done_record_is_never_downgraded_and_finished_settings_cannot_change(tmp_path):
    from fastkd.study import load_study, run_study
    run_study(load_study(extra=STUDY), tmp_path, progress=False, report=False)
    before = (tmp_path / "ledger" / "teacher-resnet8-none-s0.json").read_bytes()
    changed = load_study(extra=STUDY | {"teacher": {"augment": "none", "train.lr": 0.01}})
    with pytest.raises(RunDirError, match=r"teacher-resnet8-none-s0 \(train.lr"):
        run_study(changed, tmp_path, progress=False, report=False)
    assert (tmp_path / "ledger" / "teacher-resnet8-none-s0.json").read_bytes() == before


# ---- 4. nothing read back executes code ----------------------------------------------------------
class _Planted:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_planted_pickle_in_a_checkpoint_is_ignored_never_executed(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _interrupted_in_epoch_2(monkeypatch, out)
    last = json.loads((out / "checkpoints" / "last.json").read_text())["folder"]
    ck = out / "checkpoints" / last
    assert {p.name for p in ck.iterdir()} == {"model.safetensors", "state.safetensors", "state.json"}
    pwned = tmp_path / "pwned"
    torch.save({"epoch": 1, "x": _Planted(pwned)}, ck / "state.pt")
    (ck / "state.json").unlink()
    # fastkd reads only safetensors and JSON: the pickle is no training state to it, so the run
    # starts again from its beginning and the planted code never runs
    m = engine.train(_cfg(), out, progress=False)
    assert not pwned.exists() and len(m["history"]) == _cfg().train.epochs


def test_training_state_roundtrips_without_pickle(tmp_path):
    from fastkd.run import checkpoint as ck
    from fastkd.run import seeding
    import random
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": seeding.rng_state(), "history": [{"epoch": 1, "loss": float("nan")}],
             "best": {"epoch": None, "value": None}}
    ck.save_state(state, tmp_path)
    back = ck.load_state(tmp_path)
    assert back["rng"]["python"] == random.getstate()
    assert np.array_equal(back["rng"]["numpy"][1], np.random.get_state()[1])
    assert torch.equal(back["rng"]["torch"], torch.get_rng_state())
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    assert np.isnan(back["history"][0]["loss"]) and back["best"] == {"epoch": None, "value": None}


# ---- 5-7. config values ------------------------------------------------------------------------------
def test_tracker_logs_cannot_leave_the_run_folder():
    for bad in ("../../x", "a/b", "..", "/tmp/x"):
        with pytest.raises(ConfigError, match="track.project"):
            C.build(overrides=[f"track.project={bad}"])
    assert C.build(overrides=["track.project=my-exp_1.2"]).track.project == "my-exp_1.2"


def test_numbers_parse_the_way_python_does(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  weight_decay: 5e-4\n  lr: 1E-3\n  epochs: 1_000\naug:\n  mixup_alpha: .5\n")
    cfg = C.build(files=[f])
    assert (cfg.train.weight_decay, cfg.train.lr, cfg.train.epochs, cfg.aug.mixup_alpha) == (5e-4, 1e-3, 1000, 0.5)
    cfg = C.build(overrides=["train.lr=1e-3", "train.weight_decay=5E-4", "train.epochs=1e2", "data.limit_train=2_000"])
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.epochs, cfg.data.limit_train) == (1e-3, 5e-4, 100, 2000)
    with pytest.raises(ConfigError, match="train.epochs: expected an integer, got '1.5e0'"):
        C.build(overrides=["train.epochs=1.5e0"])


def test_every_numeric_field_has_a_documented_range():
    import dataclasses
    import typing

    def walk(obj, prefix=""):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                yield from walk(v, f"{prefix}{f.name}.")
            else:
                yield prefix + f.name, hints[f.name], f.metadata.get("range")
    def is_numeric(tp):
        return any(t in (int, float) for t in (tp, *typing.get_args(tp), *[a for x in typing.get_args(tp)
                                                                         for a in typing.get_args(x)]))
    numeric = [(k, r) for k, tp, r in walk(C.Config()) if is_numeric(tp)]
    unranged = [k for k, r in numeric if r is None and k not in ("data.mean", "data.std")]  # checked as triples
    assert not unranged
    doc = (REPO / "docs" / "config.md").read_text()
    assert C.config_reference() in doc, "docs/config.md is out of date: regenerate it with `fastkd info --config-keys`"


def test_duplicate_yaml_key_and_binary_config_are_errors(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"key 'lr' appears twice \(lines 2 and 3\)"):
        C.build(files=[f])
    b = tmp_path / "model.bin"
    b.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not a text"):
        C.build(files=[b])


def test_study_seeds_zero_is_refused(capsys):
    assert cli_main(["study", "--preset", "demo", "--seeds", "0", "--out", "/nonexistent/x"]) == 2
    assert "seeds: must be >= 1" in capsys.readouterr().err


# ---- 8. the mean loss of a capped epoch -----------------------------------------------------------
def test_capped_epoch_draws_exactly_its_steps_and_averages_them(tmp_path, monkeypatch):
    losses, drawn = [], {"n": 0}
    real_loss = engine.Trainer._loss

    def recording(self, batch):
        loss = real_loss(self, batch)
        losses.append(loss.item())
        return loss
    monkeypatch.setattr(engine.Trainer, "_loss", recording)
    from fastkd.pipelines.tensor import TensorPipeline
    real_iter = TensorPipeline.__iter__

    def counting(self):
        for b in real_iter(self):
            if self.train:
                drawn["n"] += 1
            yield b
    monkeypatch.setattr(TensorPipeline, "__iter__", counting)
    m = engine.train(_cfg("train.epochs=1", "train.max_steps_per_epoch=3"), tmp_path / "r", progress=False)
    assert drawn["n"] == 3 and len(losses) == 3
    assert m["history"][0]["train_loss"] == pytest.approx(np.mean(losses), rel=1e-6)


# ---- 9. a full disk ---------------------------------------------------------------------------------
def test_a_failed_write_names_the_file_and_cause_and_leaves_no_partial(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(RunDirError, match=r"f.bin: could not write the file: no space left on the device"):
        write_atomic(target, full)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.slow
def test_checkpoint_write_that_fails_mid_run_keeps_the_previous_and_cleans_up(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _interrupted_in_epoch_2(monkeypatch, out)
    before = _snapshot(out / "checkpoints")
    # the same run resumed in a process that cannot write files over 64 KiB (the weights are ~300 KiB)
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
              "from fastkd.cli import main; sys.exit(main(sys.argv[1:]))")
    args = ["train", "--out", str(out), "--quiet"] + [a for o in TINY for a in ("--set", o)]
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                       env=os.environ | {"FASTKD_CACHE": os.environ["FASTKD_CACHE"]})
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in p.stderr
    assert "model.safetensors: could not write the checkpoint: file too large" in err[0]
    assert _snapshot(out / "checkpoints") == before  # the previous checkpoint, untouched
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    # and resuming where there is space finishes the run from that checkpoint
    m = engine.train(_cfg(), out, progress=False)
    assert [h["epoch"] for h in m["history"]] == [1, 2]


def test_stale_temporary_files_of_dead_writers_are_swept_on_start(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _interrupted_in_epoch_2(monkeypatch, out)
    (out / ".metrics.json.999999.tmp").write_text("{")
    (out / "checkpoints" / ".epoch-0002.999999.tmp").mkdir()
    (out / "checkpoints" / ".epoch-0002.999999.tmp" / "model.safetensors").write_bytes(b"half")
    engine.train(_cfg(), out, progress=False)
    assert not [p for p in out.rglob("*") if ".999999." in p.name]


# ---- 13, 15. class lists and reproducible bytes ------------------------------------------------------
def test_teacher_trained_on_other_classes_is_refused(tmp_path):
    from fastkd.run import checkpoint as ck
    from fastkd import models
    m = models.create("lenet", 3)
    p = tmp_path / "w.safetensors"
    ck.save_weights(m, p, model_name="lenet", num_classes=3, classes=["cat", "dog", "emu"])
    ck.load_weights(models.create("lenet", 3), p, model_name="lenet", num_classes=3, classes=["cat", "dog", "emu"])
    with pytest.raises(CheckpointError, match=r"first difference at label 0: 'cat' vs 'dog'"):
        ck.load_weights(models.create("lenet", 3), p, model_name="lenet", num_classes=3, classes=["dog", "cat", "emu"])


def test_identical_runs_write_identical_weight_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    engine.train(_cfg("train.epochs=1"), a, progress=False)
    engine.train(_cfg("train.epochs=1"), b, progress=False)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    # and the file is still ordinary safetensors
    assert set(load_file(str(a / "model.safetensors")))


# ---- error discipline -----------------------------------------------------------------------------
def test_every_user_facing_error_derives_from_one_base():
    from fastkd import errors
    for name in ("ConfigError", "DataError", "CheckpointError", "RunDirError", "TrainingError", "MissingDependency"):
        assert issubclass(getattr(errors, name), FastkdError)
    from fastkd.config import ConfigError as A
    from fastkd.data import DataError as B
    assert A is errors.ConfigError and B is errors.DataError


@pytest.mark.slow
def test_a_bug_in_a_run_is_not_swallowed_as_a_failed_record(tmp_path, monkeypatch):
    from fastkd.study import load_study, run_study

    def buggy(self, epoch, bar):
        raise RuntimeError("a programming error")
    monkeypatch.setattr(engine.Trainer, "_train_epoch", buggy)
    with pytest.raises(RuntimeError, match="a programming error"):
        run_study(load_study(extra=STUDY), tmp_path, progress=False, report=False)
    assert not list((tmp_path / "ledger").glob("*.json")) if (tmp_path / "ledger").exists() else True
