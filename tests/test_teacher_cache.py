"""Teacher outputs computed once: the same student as with a live teacher, reused by every student
of a teacher, rebuilt when the teacher or the data change, refused for a random student view."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fastkd import config as C
from fastkd.train import engine, teacher_cache
from helpers import needs_cuda

BASE = ["data.name=sample", "data.limit_train=320", "data.limit_test=100", "train.batch_size=32", "train.lr=0.05",
        "train.schedule=cosine", "data.eval_batch_size=100"]


def _cfg(*extra):
    return C.build(overrides=BASE + list(extra))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "teacher"
    engine.train(_cfg("model=resnet8", "train.epochs=1"), out, progress=False)
    return out


def _student(teacher, out, *extra):
    return engine.train(_cfg("model=lenet", "augment=none", "train.epochs=2", f"distill.teacher={teacher}",
                             "distill.temperature=4", *extra), out, kind="student", progress=False)


def test_cached_teacher_trains_the_same_student_as_a_live_one(teacher, tmp_path):
    # two trainings compared to 1e-4: on the CPU (cuDNN and TF32 promise no such agreement)
    live = _student(teacher, tmp_path / "live", "distill.cache_teacher=off", "device=cpu")
    cached = _student(teacher, tmp_path / "cached", "distill.cache_teacher=on", "device=cpu")
    assert (live["teacher_cache"], cached["teacher_cache"]) == ("off", "used")
    a, b = load_file(str(tmp_path / "live" / "model.safetensors")), load_file(str(tmp_path / "cached" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert live["test_accuracy"] == pytest.approx(cached["test_accuracy"], abs=0.02)
    files = list((teacher / "teacher_cache").glob("train-*.npy"))
    assert len(files) == 1 and np.load(files[0]).shape == (320, 10)


def test_every_student_of_a_teacher_reuses_one_pass(teacher, tmp_path, monkeypatch):
    calls = {"teacher passes": 0}
    real = engine.evaluate

    def counting(model, pipe, acc, **kw):
        if model is not None and getattr(model, "fastkd_name", "") == "resnet8" and pipe.train is False \
                and len(pipe.data) == 320:
            calls["teacher passes"] += 1
        return real(model, pipe, acc, **kw)
    monkeypatch.setattr(engine, "evaluate", counting)
    _student(teacher, tmp_path / "s1")  # auto: the view is plain, so the cache is used (built above or here)
    _student(teacher, tmp_path / "s2", "seed=3")
    assert calls["teacher passes"] <= 1
    assert "teacher cache: read 320 rows" in (tmp_path / "s2" / "train.log").read_text()


def test_other_data_or_a_retrained_teacher_or_a_damaged_key_get_their_own_table(teacher, tmp_path):
    _student(teacher, tmp_path / "a")
    before = set((teacher / "teacher_cache").glob("train-*.npy"))
    _student(teacher, tmp_path / "b", "data.limit_train=160")  # other rows
    after = set((teacher / "teacher_cache").glob("train-*.npy"))
    assert len(after - before) == 1 and np.load(next(iter(after - before))).shape == (160, 10)
    t2 = tmp_path / "t2"
    engine.train(_cfg("model=resnet8", "train.epochs=1", "seed=5"), t2, progress=False)
    _student(t2, tmp_path / "c")
    assert len(list((t2 / "teacher_cache").glob("train-*.npy"))) == 1  # its own, in its own folder
    meta = next((t2 / "teacher_cache").glob("train-*.json"))
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps(record | {"key": record["key"] | {"teacher_weights": "someone else's"}}))
    _student(t2, tmp_path / "d")
    assert "teacher cache: computed 320 rows" in (tmp_path / "d" / "train.log").read_text()
    assert json.loads(meta.read_text()) == record  # rebuilt under the right key


def test_cache_on_with_a_random_student_view_is_refused(teacher):
    with pytest.raises(C.ConfigError, match="distill.cache_teacher=on"):
        _student(teacher, teacher.parent / "x", "augment=mixup", "distill.cache_teacher=on")


def test_a_teacher_that_saves_its_train_outputs_leaves_the_cache_its_students_read(tmp_path):
    t = tmp_path / "t"
    engine.train(_cfg("model=resnet8", "train.epochs=1", "train.save_train_outputs=true"), t, progress=False)
    files = list((t / "teacher_cache").glob("train-*.npy"))
    assert len(files) == 1
    written = np.load(files[0])
    np.testing.assert_array_equal(written, np.load(t / "train_outputs.npz")["logits"])  # the same pass
    _student(t, tmp_path / "s", "train.save_train_outputs=true")
    assert "teacher cache: read 320 rows" in (tmp_path / "s" / "train.log").read_text()
    assert (tmp_path / "s" / "train_outputs.npz").is_file() and not (tmp_path / "s" / "teacher_cache").exists()
    # the student's own pass, as a reference: with the key damaged the student computes the table again
    meta = next((t / "teacher_cache").glob("train-*.json"))
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps(record | {"key": record["key"] | {"teacher_weights": "someone else's"}}))
    _student(t, tmp_path / "s2")
    log = (tmp_path / "s2" / "train.log").read_text()
    assert "not used: " in log and "records another key" in log and "teacher cache: computed 320 rows" in log
    assert json.loads(meta.read_text())["key"] == record["key"]  # the student's key is the one the teacher wrote
    np.testing.assert_allclose(np.load(files[0]), written, rtol=1e-5, atol=1e-5)


def test_a_teacher_folder_in_use_gets_no_table_until_it_is_free(tmp_path):
    from fastkd.train import teacher_cache
    from fastkd.run.lock import FolderLock
    key, logits = {"rows": 4, "teacher_weights": "w"}, np.arange(40, dtype=np.float32).reshape(4, 10)
    with FolderLock(tmp_path):  # another holder (a run retraining the teacher): the write is skipped, no error
        teacher_cache.save(tmp_path, key, logits)
        assert teacher_cache.load(tmp_path, key, 10) == (None, None)
        teacher_cache.save(tmp_path, key, logits, locked=True)  # the holder itself writes
        np.testing.assert_array_equal(teacher_cache.load(tmp_path, key, 10)[0], logits)
    teacher_cache.save(tmp_path, key | {"teacher_weights": "v"}, logits)  # free again: written under the lock
    np.testing.assert_array_equal(teacher_cache.load(tmp_path, key | {"teacher_weights": "v"}, 10)[0], logits)
    FolderLock(tmp_path).acquire().release()  # the lock was let go (acquiring raises RunLockedError otherwise)


@pytest.mark.parametrize("order", ["random", "quasi_random"])
def test_no_cache_where_training_batches_do_not_name_their_samples(order):
    # FFCV's own orders give every sample the index -1: a cached student would read row -1 for all
    base = ["augment=none", "distill.teacher=some/teacher", "data.backend=ffcv", f"data.ffcv.order={order}"]
    assert not teacher_cache.use_cache(C.build(overrides=base), "student")  # auto: a live teacher
    with pytest.raises(C.ConfigError, match="data.ffcv.order"):
        teacher_cache.use_cache(C.build(overrides=base + ["distill.cache_teacher=on"]), "student")
    assert teacher_cache.use_cache(C.build(overrides=base + ["data.ffcv.order=fastkd"]), "student")


def test_the_lookup_keeps_the_stored_dtype_and_sizes_its_home_from_free_memory():
    # a float16 table (one above HALF_ABOVE_BYTES) was widened to float32: twice the memory
    small = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert teacher_cache.stored_dtype(small) == np.float32
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (teacher_cache.HALF_ABOVE_BYTES // 4 + 1, 1), (0, 0))
    assert teacher_cache.stored_dtype(big) == np.float16
    half = small.astype(np.float16)
    t = teacher_cache.as_lookup(half, torch.device("cpu"))
    assert t.dtype == torch.float16 and torch.equal(t, torch.from_numpy(half))
    # the device keeps tables up to a quarter of its free memory (a fixed 2 GiB before)
    assert teacher_cache.fits_on_device(10 << 30, 80 << 30) and not teacher_cache.fits_on_device(30 << 30, 80 << 30)


@needs_cuda
def test_a_table_that_fits_is_gathered_on_the_device():
    table = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float16)
    t = teacher_cache.as_lookup(table, torch.device("cuda"))
    assert t.device.type == "cuda" and t.dtype == torch.float16
    index = torch.tensor([3, 0, 49], device="cuda")
    assert torch.equal(t[index].cpu(), torch.from_numpy(table[[3, 0, 49]]))


@pytest.mark.parametrize("tamper", ["another teacher's table", "columns reversed", "two bytes flipped"])
def test_a_table_changed_on_disk_is_rebuilt_never_trained_on(tmp_path, tamper):
    teacher = tmp_path / "t"  # its own: one table in its cache
    engine.train(_cfg("model=resnet8", "train.epochs=1", "train.max_steps_per_epoch=3"), teacher, progress=False)
    first = _student(teacher, tmp_path / "s1", "distill.cache_teacher=on", "device=cpu")
    table = next((teacher / "teacher_cache").glob("train-*.npy"))
    good = np.load(table)
    if tamper == "another teacher's table":
        np.save(table, np.random.default_rng(0).normal(size=good.shape).astype(good.dtype))
    elif tamper == "columns reversed":
        np.save(table, np.ascontiguousarray(good[:, ::-1]))
    else:
        raw = bytearray(table.read_bytes())
        raw[-7] ^= 0x40
        raw[-3] ^= 0x10
        table.write_bytes(bytes(raw))
    again = _student(teacher, tmp_path / "s2", "distill.cache_teacher=on", "device=cpu")
    assert "rebuilt, the file there was not used: " in (log := (tmp_path / "s2" / "train.log").read_text())
    assert "does not match the digest recorded with it (changed on disk)" in log
    np.testing.assert_array_equal(np.load(table), good)  # rebuilt to the teacher's own outputs
    a, b = load_file(str(tmp_path / "s1" / "model.safetensors")), load_file(str(tmp_path / "s2" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a) and again["test_accuracy"] == first["test_accuracy"]
