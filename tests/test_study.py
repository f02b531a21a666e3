import json
import math

import numpy as np
import pytest

from fastkd.train import engine
from fastkd.config import ConfigError
from fastkd.study import load_study, run_study
from fastkd.study import runs as runs_mod
from fastkd.study.ledger import Ledger

pytestmark = pytest.mark.slow

TINY = {
    "teacher_preset": "smoke", "student_preset": "smoke",
    "common": {"data.limit_train": 192, "data.limit_test": 100, "train.epochs": 1, "train.batch_size": 32,
               "data.eval_batch_size": 100},
    "teacher": {"augment": "none"}, "student": {"augment": "none"},
    "teachers": ["resnet8"], "augments": ["none", "mixup"], "students": ["lenet"], "distill": {"kd": {}},
    "scratch": True, "knn_k": 5, "cd_variants": ["paper", "clean"],
}


def _study(**kw):
    return load_study(extra=TINY | kw)


def _starts(run_dir):
    return sum(" start:" in line for line in (run_dir / "train.log").read_text().splitlines())


def test_grid_ledger_report_and_significance(tmp_path):
    records = run_study(_study(seeds=2), tmp_path, progress=False)
    assert len(records) == 10 and all(r["status"] == "done" for r in records)
    ids = [r["id"] for r in records]
    assert "teacher-resnet8-mixup-s1" in ids and "student-lenet-kd-from-resnet8-mixup-s1" in ids and "scratch-lenet-s0" in ids
    for name in ("summary.md", "teachers.csv", "students.csv", "class_discrimination.csv", "knn.csv",
                 "calibration_fidelity.csv", "tables.json", "accuracy_by_augment.png", "cd_vs_student_accuracy.png",
                 "reliability.png"):
        assert (tmp_path / "report" / name).is_file(), name
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert str(tmp_path) not in summary  # no folder of this machine in a report meant to be committed
    assert "- Data: sample (content " in summary and "torch kernels" in summary and "threads" in summary
    tables = json.loads((tmp_path / "report" / "tables.json").read_text())
    row = next(r for r in tables["students"] if r["augment"] == "mixup")
    accs = [r["metrics"]["test_accuracy"] for r in records if r["id"].startswith("student-lenet-kd-from-resnet8-mixup")]
    assert row["test_accuracy"] == pytest.approx(np.mean(accs))
    assert row["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    ref = next(r for r in tables["students"] if r["augment"] == "none" and r["distill"] == "kd")
    no_spread = row["test_accuracy_std"] == 0 and ref["test_accuracy_std"] == 0  # then the test is undefined
    assert (row["p_value"] is None or math.isnan(row["p_value"])) if no_spread else 0 <= row["p_value"] <= 1
    assert row["seeds"] == 2
    rec = next(r for r in records if r["id"] == "student-lenet-kd-from-resnet8-none-s0")
    cd = rec["analysis"]["class_discrimination"]
    assert set(cd) == {"softmax", "logits", "features"} and set(cd["softmax"]) == {"paper", "clean"}
    assert {"agreement", "kl"} <= set(rec["analysis"]["fidelity"]) and "accuracy_features" in rec["analysis"]["knn"]
    assert rec["config"]["distill"]["teacher"].endswith("runs/teacher-resnet8-none-s0")


@pytest.mark.parametrize("kill", ["mid-training", "after-run-before-record", "while-analysing"])
def test_killed_study_resumes_without_redoing_or_duplicating(tmp_path, monkeypatch, kill):
    sc = _study()
    real_loss, real_analyze = engine.Trainer._loss, runs_mod.analyze_run
    calls = {"n": 0}

    def tick(limit):
        calls["n"] += 1
        if calls["n"] == limit:
            raise KeyboardInterrupt

    if kill == "mid-training":  # 6 steps per run: call 21 is mid-way through the fourth run
        monkeypatch.setattr(engine.Trainer, "_loss", lambda self, b: (tick(6 * 3 + 3), real_loss(self, b))[1])
    elif kill == "after-run-before-record":
        monkeypatch.setattr(runs_mod, "analyze_run", lambda *a, **k: (tick(2), real_analyze(*a, **k))[1])
    else:
        monkeypatch.setattr(runs_mod, "analyze_run", lambda *a, **k: (tick(4), real_analyze(*a, **k))[1])
    with pytest.raises(KeyboardInterrupt):
        run_study(sc, tmp_path, progress=False)
    finished_before = {r["id"] for r in Ledger(tmp_path).records()}
    assert 0 < len(finished_before) < 5
    monkeypatch.setattr(engine.Trainer, "_loss", real_loss)
    monkeypatch.setattr(runs_mod, "analyze_run", real_analyze)
    records = run_study(sc, tmp_path, progress=False)
    assert len(records) == 5 and all(r["status"] == "done" for r in records)
    assert len(list((tmp_path / "ledger").glob("*.json"))) == 5 and not list((tmp_path / "ledger").glob(".*"))
    for rid in finished_before:
        assert _starts(tmp_path / "runs" / rid) == 1, f"{rid} was trained again"
    # and a third invocation does nothing at all
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ledger").glob("*.json")}
    run_study(sc, tmp_path, progress=False)
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ledger").glob("*.json")}


def test_failed_run_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    real = engine.Trainer._train_epoch

    def nan_for_mixup(self, epoch, bar):
        if self.cfg.augment == "mixup" and self.kind == "teacher":
            raise engine.TrainingError("loss became nan at epoch 1, step 3")
        return real(self, epoch, bar)

    monkeypatch.setattr(engine.Trainer, "_train_epoch", nan_for_mixup)
    records = {r["id"]: r for r in run_study(_study(), tmp_path, progress=False)}
    assert records["teacher-resnet8-mixup-s0"]["status"] == "failed"
    assert "nan" in records["teacher-resnet8-mixup-s0"]["error"]
    assert records["student-lenet-kd-from-resnet8-mixup-s0"]["status"] == "skipped"
    assert records["student-lenet-kd-from-resnet8-none-s0"]["status"] == "done"
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "teacher-resnet8-mixup-s0" in summary and "did not finish" in summary


def test_a_failure_of_the_machine_is_retried_by_a_plain_rerun_and_a_nan_is_not(tmp_path, monkeypatch):
    import errno
    from fastkd.errors import RunDirError
    real = engine.Trainer._train_epoch
    failing = {"mixup": "disk", "none": "nan"}

    def fail(self, epoch, bar):
        how = failing.get(self.cfg.augment) if self.kind == "teacher" else None
        if how == "disk":
            raise RunDirError("checkpoint: could not write: no space left on the device") from \
                OSError(errno.ENOSPC, "No space left on device")
        if how == "nan":
            raise engine.TrainingError("loss became nan at epoch 1, step 3")
        return real(self, epoch, bar)
    monkeypatch.setattr(engine.Trainer, "_train_epoch", fail)
    first = {r["id"]: r for r in run_study(_study(), tmp_path, progress=False, report=False)}
    assert first["teacher-resnet8-mixup-s0"]["environmental"] is True
    assert first["teacher-resnet8-none-s0"]["environmental"] is False
    failing.clear()  # the disk has room again; the NaN would come back, so it is not retried
    again = {r["id"]: r for r in run_study(_study(), tmp_path, progress=False, report=False)}
    assert again["teacher-resnet8-mixup-s0"]["status"] == "done"
    assert again["student-lenet-kd-from-resnet8-mixup-s0"]["status"] == "done"  # its student follows
    assert again["teacher-resnet8-none-s0"]["status"] == "failed"
    assert again["student-lenet-kd-from-resnet8-none-s0"]["status"] == "skipped"


def test_bad_study_keys_fail_before_any_run(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'seed'"):
        load_study(extra=TINY | {"seed": 3})
    with pytest.raises(ConfigError, match="study: unknown config key 'train.lrr'"):
        load_study(extra=TINY | {"common": {"train.lrr": 1}})
    with pytest.raises(ConfigError, match="available: .*demo"):
        load_study("nope")
    from fastkd.study.spec import study_preset_names
    for name in study_preset_names():  # every preset plans: its run configs are all valid
        load_study(name)
    with pytest.raises(ConfigError, match="teacher_seeds: must be between 1 and seeds \\(2\\), got 3"):
        load_study(extra=TINY | {"seeds": 2, "teacher_seeds": 3})
    with pytest.raises(ConfigError, match="--threads-per-run: must be >= 1, got 0"):
        run_study(_study(), tmp_path, threads_per_run=0)
    assert not (tmp_path / "ledger").exists()  # refused before anything was written


@pytest.mark.parametrize("names", [("a b", "a-b"), ("日本 kd", "中文 kd"), ("kd/t4", "kd:t4")])
def test_grid_names_that_become_one_run_id_are_refused_naming_both(names):
    # two distillation settings with one run id were one cell: the other was never run nor reported
    first, second = names
    with pytest.raises(ConfigError, match=f"distill: {first!r} and {second!r} both become"):
        load_study(extra=TINY | {"distill": {first: {}, second: {"distill.temperature": 2}}})


@pytest.mark.parametrize("name", ["..", "."])
def test_a_setting_name_with_no_letters_is_refused_by_its_name(name):
    with pytest.raises(ConfigError, match=f"distill: the setting name {name!r}"):
        load_study(extra=TINY | {"distill": {name: {}}})
    for nothing in ("---", "日本"):
        with pytest.raises(ConfigError, match=f"distill: the name {nothing!r} keeps nothing to name its runs by"):
            load_study(extra=TINY | {"distill": {nothing: {}}})


def test_students_of_restricts_the_grid_to_its_pairs(tmp_path):
    from fastkd.study.spec import plan
    sc = _study(teachers=["resnet8", "resnet14"], students=["lenet", "resnet8"], augments=["none"], scratch=False,
                students_of={"resnet8": ["lenet"], "resnet14": ["resnet8"]})
    pairs = sorted((r.labels["teacher_model"], r.labels["student_model"]) for r in plan(sc, tmp_path) if r.kind == "student")
    assert pairs == [("resnet14", "resnet8"), ("resnet8", "lenet")]
    everyone = _study(teachers=["resnet8", "resnet14"], students=["lenet", "resnet8"], augments=["none"], scratch=False)
    assert sum(r.kind == "student" for r in plan(everyone, tmp_path)) == 4
    with pytest.raises(ConfigError, match="students_of.resnet8: expected a teacher of the grid"):
        _study(students_of={"resnet8": ["alexnet"]})
    assert list(load_study("cifar10-distill-aug").distill)[:2] == ["kd-none", "kd-crop_flip"]  # no default kd added


def test_fewer_teacher_seeds_than_student_seeds_share_teachers(tmp_path):
    from fastkd.study.spec import plan
    runs = plan(_study(seeds=3, teacher_seeds=2, first_seed=5), tmp_path)
    teachers = sorted(r.id for r in runs if r.kind == "teacher")
    assert teachers == sorted(f"teacher-resnet8-{a}-s{s}" for a in ("none", "mixup") for s in (5, 6))
    students = {r.id: r for r in runs if r.kind == "student" and r.teacher_id}
    assert len(students) == 2 * 3  # every student seed still runs, for each teacher augmentation
    for seed, teacher_seed in ((5, 5), (6, 6), (7, 5)):  # seed 7 wraps round to the first teacher
        r = students[f"student-lenet-kd-from-resnet8-mixup-s{seed}"]
        assert r.teacher_id == f"teacher-resnet8-mixup-s{teacher_seed}" and r.labels["seed"] == seed
        assert r.config.seed == seed and r.config.distill.teacher.endswith(f"runs/teacher-resnet8-mixup-s{teacher_seed}")
    assert sum(r.labels.get("distill") == "scratch" for r in runs) == 3


def test_paper_original_selects_checkpoints_the_way_the_authors_did(tmp_path):
    from fastkd.study import plan
    runs = {r.id: r.config for r in plan(load_study("paper-original"), tmp_path)}
    select = {rid: c.train.select for rid, c in runs.items()}
    assert all(c.data.val_split == 0 for c in runs.values())  # all 50k images
    for aug in ("crop_flip", "mixup"):
        assert select[f"teacher-resnet18-{aug}-s0"] == "last"
    for aug in ("none", "cutout", "cutmix"):
        assert select[f"teacher-resnet18-{aug}-s0"] == "test_loss"
    for s in ("lenet", "alexnet"):
        assert select[f"student-{s}-kd-from-resnet18-none-s0"] == "last"
        assert select[f"student-{s}-kd-from-resnet18-mixup-s0"] == "test_loss"
    t = runs["teacher-resnet18-none-s0"].train
    assert (t.lr_decay, t.milestones) == (0.2, [59, 79, 119])


def test_demo_preset_end_to_end_through_the_cli_at_reduced_size(tmp_path, capsys):
    from fastkd.cli import main as cli_main
    out = tmp_path / "demo"
    small = ["--set", "common.data.limit_train=160", "--set", "common.data.limit_test=100", "--set",
             "teacher.train.epochs=1", "--set", "student.train.epochs=1", "--set", "common.train.batch_size=32"]
    assert cli_main(["study", "--preset", "demo", "--out", str(out), "--quiet"] + small) == 0
    records = Ledger(out).records()
    assert len(records) == 11 and all(r["status"] == "done" for r in records)
    teacher = next(r for r in records if r["id"] == "teacher-resnet8-cutmix-s0")
    assert teacher["config"]["train"]["epochs"] == 1 and teacher["config"]["data"]["name"] == "sample"
    assert teacher["config"]["augment"] == "cutmix" and teacher["metrics"]["test_examples"] == 100
    (out / "report" / "summary.md").unlink()
    assert cli_main(["report", str(out)]) == 0 and (out / "report" / "summary.md").is_file()
    assert "| lenet | - | scratch | scratch |" in capsys.readouterr().out
    assert cli_main(["metric", str(out / "runs" / "scratch-lenet-s0"), "--variants", "paper"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["class_discrimination"]["features"]) == {"paper"}


def test_ray_runs_without_gpus_train_on_the_cpu_and_gpu_tasks_get_fresh_workers():
    # Ray hides no GPU from a task that asks for none: such a run must not pick cuda:0 itself
    from fastkd.study.ray_executor import resolve_gpus_per_run, task_device, task_options
    assert task_device("auto", 0) == "cpu" and task_device("cpu", 0.5) == "cpu"
    assert task_device("auto", 0.25) == "cuda" and task_device("cuda", 1) == "cuda"
    with pytest.raises(ConfigError, match="--gpus-per-run"):
        task_device("cuda", 0)
    # the default: a GPU a run where the cluster has GPUs, none where it has none
    assert resolve_gpus_per_run(None, 8.0) == 1.0 and resolve_gpus_per_run(None, 0) == 0.0
    assert resolve_gpus_per_run(0.0, 8.0) == 0.0 and resolve_gpus_per_run(0.25, 8.0) == 0.25
    gpu = task_options(gpus_per_run=0.5, cpus_per_run=1, threads=1, max_retries=3)
    cpu = task_options(gpus_per_run=0, cpus_per_run=1, threads=2, max_retries=3)
    assert gpu["max_calls"] == 1 and gpu["num_gpus"] == 0.5 and "runtime_env" not in gpu
    assert "max_calls" not in cpu and cpu["runtime_env"]["env_vars"]["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_failure_of_the_ray_cluster_ends_in_one_line_and_a_task_bug_keeps_its_traceback():
    # killing Ray's dashboard agent mid-study ended the command in a traceback (the rerun recovered)
    ray = pytest.importorskip("ray")
    from fastkd.errors import FastkdError
    from fastkd.study.ray_executor import cluster_failures_named
    with pytest.raises(FastkdError, match=r"the Ray cluster failed \(RaySystemError: .*raylet.*run the same command"):
        with cluster_failures_named(ray):
            raise ray.exceptions.RaySystemError("the local raylet died")
    with pytest.raises(ZeroDivisionError):  # not the cluster's failure: left as it is
        with cluster_failures_named(ray):
            raise ZeroDivisionError
