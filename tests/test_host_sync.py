"""The training step never waits for the device: the host-synchronising calls made while an epoch
trains (reading a tensor's value on the host) do not grow with the epoch's number of steps, for
every installed backend and for teachers, live-teacher and cached-teacher students.

On a CPU the calls are counted (on a CPU they cost nothing, but on a GPU each one stalls the
step); on a GPU, torch's own sync debug mode counts the synchronising CUDA operations as well.
"""
import warnings

import pytest
import torch

from fastkd import config as C
from fastkd.train import engine
from helpers import HostSyncCounter
BASE = ["data.name=sample", "data.limit_train=200", "data.limit_test=40", "train.epochs=1", "train.batch_size=8",
        "data.eval_batch_size=40", "data.num_workers=0", "train.lr=0.01"]


def _installed(backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    if backend == "ffcv":
        pytest.importorskip("ffcv")


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    pytest.importorskip("ffcv")
    from fastkd.config import DataConfig
    from fastkd.data import load_splits
    from fastkd.data.beton import convert
    out = tmp_path_factory.mktemp("beton")
    convert(load_splits(DataConfig(name="sample", limit_train=200, limit_test=40)), out, name="sample", storage="raw",
            num_workers=2)
    return out


def _syncs_while_training(monkeypatch, cfg, out, kind="teacher") -> int:
    """Host-synchronising calls made inside the epoch's step loop of one run."""
    counter = HostSyncCounter(monkeypatch)
    real_epoch = engine.Trainer._train_epoch

    def epoch(self, e, bar):
        counter.active = True
        cuda = self.acc.device.type == "cuda"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                return real_epoch(self, e, bar)
            finally:
                counter.active = False
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
                counter.count += sum("synchroniz" in str(w.message) for w in caught)
    monkeypatch.setattr(engine.Trainer, "_train_epoch", epoch)
    engine.train(cfg, out, kind=kind, progress=False)
    monkeypatch.undo()
    return counter.count


@pytest.mark.parametrize("backend", ["tensor", "dataloader", "dali", "ffcv"])
def test_teacher_step_loop_makes_no_per_step_host_sync(backend, device, tmp_path, monkeypatch, request):
    _installed(backend)
    extra = [f"data.backend={backend}", f"device={device}", "model=resnet8", "augment=crop_flip+cutmix",
             "aug.per_sample=true"]
    if backend == "ffcv":
        extra.append(f"data.path={request.getfixturevalue('beton')}")
    counts = {n: _syncs_while_training(monkeypatch, C.build(overrides=BASE + extra + [f"train.max_steps_per_epoch={n}"]),
                                       tmp_path / f"t{n}") for n in (4, 16)}
    print(f"host syncs per epoch, teacher, {backend} on {device}, at 4 and 16 steps: {counts}")  # the device check reads it
    assert counts[16] == counts[4], f"host syncs grow with the steps of an epoch: {counts}"


@pytest.mark.parametrize("cache", ["on", "off"])
def test_distillation_step_loop_makes_no_per_step_host_sync(cache, device, tmp_path, monkeypatch):
    common = BASE + [f"device={device}"]
    teacher = tmp_path / "teacher"
    engine.train(C.build(overrides=common + ["model=resnet8", "augment=none", "train.max_steps_per_epoch=2"]), teacher,
                 progress=False)
    student = common + ["model=lenet", "augment=none", f"distill.teacher={teacher}", f"distill.cache_teacher={cache}"]
    counts = {n: _syncs_while_training(monkeypatch, C.build(overrides=student + [f"train.max_steps_per_epoch={n}"]),
                                       tmp_path / f"s{n}", kind="student") for n in (4, 16)}
    print(f"host syncs per epoch, student (cache {cache}) on {device}, at 4 and 16 steps: {counts}")
    assert counts[16] == counts[4], f"host syncs grow with the steps of an epoch: {counts}"
