"""The FFCV backend and `fastkd data convert` (CI builds FFCV 1.0.2 from source)."""
import builtins
import os
import sys

import numpy as np
import pytest
import torch

from fastkd.config import DataConfig
from fastkd.data import DataError, load_splits
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec


# ---- FFCV itself ------------------------------------------------------------------------------
ffcv = pytest.importorskip("ffcv")


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    from fastkd.data.beton import convert
    out = tmp_path_factory.mktemp("beton")
    splits = load_splits(DataConfig(name="sample", limit_train=320, limit_test=70))
    convert(splits, out / "raw", name="sample", storage="raw", num_workers=2)
    convert(splits, out / "jpeg", name="sample", storage="jpeg", jpeg_quality=90, num_workers=2)
    return out, splits


def _ffcv(data, augment="none", train=False, **kw):
    kw = {"batch_size": 32, "device": "cpu", "seed": 0, "num_workers": 2} | kw
    return build_pipeline("ffcv", data, make_spec(augment, **kw.pop("params", {})), train=train, **kw)


def _tensor(data, **kw):
    kw = {"device": "cpu"} | kw
    return build_pipeline("tensor", data, make_spec("none"), train=False, batch_size=32, seed=0, **kw)


def test_raw_round_trip_is_exact_and_jpeg_within_rounding(betons, device):
    out, splits = betons
    raw = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")
    assert raw["train"].classes == splits["train"].classes and np.array_equal(raw["test"].labels, splits["test"].labels)
    n = 0
    for a, b in zip(_ffcv(raw["test"], device=device), _tensor(splits["test"], device=device)):
        assert a.images.device.type == a.labels.device.type == device
        assert a.images.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a.index, b.index) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.images, b.images)
        n += len(a)
    assert n == 70
    jpg = load_splits(DataConfig(backend="ffcv", path=str(out / "jpeg")), reads="beton")
    std = torch.tensor(splits["test"].std).view(1, 3, 1, 1) * 255
    diffs = [((a.images - b.images) * std).abs() for a, b in zip(_ffcv(jpg["test"]), _tensor(splits["test"]))]
    # re-encoding at quality 90: measured mean error about 1-2 grey levels
    assert torch.cat([d.flatten() for d in diffs]).mean() < 4.0


def test_crop_flip_and_raw_cutout_run_as_ffcv_operations(betons):
    from test_augment import _find_crop
    out, splits = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")["train"]
    src = torch.from_numpy(splits["train"].images).permute(0, 3, 1, 2)
    mean = torch.tensor(listing.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(listing.std).view(1, 3, 1, 1) * 255
    seen = set()
    for b in _ffcv(listing, "crop_flip", train=True):
        raw = (b.images * std + mean).round().to(torch.uint8)
        for img, i in zip(raw, b.index.tolist()):
            hits = _find_crop(img, src[i], 4)
            assert hits
            seen.add(hits[0])
    assert len(seen) > 40
    for b in _ffcv(listing, "cutout", train=True, params={"cutout_size": 8, "cutout_after_normalize": False}):
        raw = (b.images * std + mean).round()
        assert ((raw == 0).all(1).sum((1, 2)) > 0).all()


def test_epochs_are_reproducible_and_differ(betons):
    out, _ = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")["train"]

    def epoch(e, seed=0):
        p = _ffcv(listing, "crop_flip+cutmix", train=True, seed=seed)
        p.set_epoch(e)
        return torch.cat([b.images for b in p])

    a = epoch(1)
    assert torch.equal(a, epoch(1)) and not torch.equal(a, epoch(2)) and not torch.equal(a, epoch(1, seed=5))


def test_one_loader_serves_every_epoch_like_fresh_ones(betons, monkeypatch):
    """The run's Loader is compiled once; reusing it (even after an epoch left early) yields what a
    fresh pipeline, i.e. a resumed run, yields for that epoch: order and augmentation alike."""
    from fastkd.pipelines.ffcv import FfcvPipeline
    out, _ = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")["train"]
    aug = {"augment": "crop_flip+cutout", "params": {"cutout_after_normalize": False}}
    built = []
    real = FfcvPipeline._new_loader
    monkeypatch.setattr(FfcvPipeline, "_new_loader", lambda self: built.append(1) or real(self))
    reused = _ffcv(listing, train=True, **aug)
    reused.set_epoch(1)
    next(iter(reused))  # epoch 1 left after one batch
    for epoch in (2, 3):
        reused.set_epoch(epoch)
        fresh = _ffcv(listing, train=True, **aug)
        fresh.set_epoch(epoch)
        for a, b in zip(reused, fresh, strict=True):
            assert torch.equal(a.index, b.index) and torch.equal(a.images, b.images)
    assert len(built) == 3  # reused once, plus one per fresh pipeline


@pytest.mark.parametrize("augment", ["mixup", "cutmix"])
def test_mixing_semantics_on_ffcv_batches(betons, augment, device):
    from helpers import check_mixed_batch
    out, _ = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw"), limit_train=96), reads="beton")["train"]
    plain = {int(b.index[i]): b.images[i] for b in _ffcv(listing, batch_size=96) for i in range(len(b))}
    for b in _ffcv(listing, augment, train=True, params={"per_sample": True}, device=device):
        assert b.images.device.type == device
        check_mixed_batch(b.to("cpu"), plain, listing.labels, 10, augment, True)


def test_two_process_shards_disjoint_and_eval_exact(betons):
    out, _ = betons
    parts = load_splits(DataConfig(backend="ffcv", path=str(out / "raw"), val_split=20), reads="beton")
    train = [set(i for b in _ffcv(parts["train"], "crop_flip", train=True, process_index=r, num_processes=2, batch_size=30)
                 for i in b.index.tolist()) for r in range(2)]
    assert not train[0] & train[1] and len(train[0] | train[1]) == 300
    val = sorted(i for r in range(2) for b in _ffcv(parts["val"], process_index=r, num_processes=2, batch_size=7)
                 for i in b.index.tolist())
    assert val == list(range(20))


def test_ffcv_native_random_order_trains_and_reshuffles_each_epoch(betons):
    out, _ = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")["train"]
    for order in ("random", "quasi_random"):
        batches = list(_ffcv(listing, "crop_flip", train=True, order=order))
        assert len(batches) == 10 and all(len(b) == 32 for b in batches)
    p = _ffcv(listing, train=True, order="random")
    labels = []
    for epoch in (1, 2):
        p.set_epoch(epoch)
        labels.append(torch.cat([b.labels for b in p]))
    fresh = _ffcv(listing, train=True, order="random")
    fresh.set_epoch(2)
    assert not torch.equal(labels[0], labels[1]), "FFCV's own order must change from epoch to epoch"
    assert torch.equal(labels[1], torch.cat([b.labels for b in fresh])), "and be a function of the epoch"


def test_engine_and_cli_convert(tmp_path):
    from fastkd import config as C
    from fastkd.train import engine
    from fastkd.cli import main as cli_main
    assert cli_main(["data", "convert", "--to", "beton", "--data", "sample", "--out", str(tmp_path / "d" / "cifar-train.beton"),
                     "--workers", "2"]) == 0
    assert (tmp_path / "d" / "cifar-train.beton").is_file() and (tmp_path / "d" / "cifar-test.beton").is_file()
    assert cli_main(["data", "convert", "--data", "sample", "--out", str(tmp_path / "d" / "cifar-train.beton")]) == 2
    cfg = C.build(overrides=["data.backend=ffcv", f"data.path={tmp_path / 'd'}", "model=lenet", "train.epochs=1",
                             "augment=crop_flip+mixup", "data.limit_train=256", "data.limit_test=90"])
    m = engine.train(cfg, tmp_path / "r", progress=False)
    assert m["test_examples"] == 90


def test_interrupted_conversion_leaves_no_file(tmp_path, monkeypatch):
    from ffcv.writer import DatasetWriter

    from fastkd.data.beton import convert

    def dies(self, *a, **k):
        open(self.fname, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(DatasetWriter, "from_indexed_dataset", dies)
    splits = load_splits(DataConfig(name="sample", limit_train=20, limit_test=10))
    with pytest.raises(KeyboardInterrupt):
        convert(splits, tmp_path, name="x")
    assert os.listdir(tmp_path) == []


def test_bad_beton_files_are_named(tmp_path, betons):
    import shutil

    from ffcv.fields import IntField
    from ffcv.writer import DatasetWriter
    out, _ = betons
    bad = tmp_path / "bad"
    shutil.copytree(out / "raw", bad)
    beton = bad / "sample-test.beton"
    with open(beton, "r+b") as f:  # cut the file short
        f.truncate(os.path.getsize(beton) - 100)
    listing = load_splits(DataConfig(backend="ffcv", path=str(bad)), reads="beton")["test"]
    with pytest.raises(DataError, match="sample-test.beton: truncated"):
        _ffcv(listing)

    class Labels:
        def __len__(self):
            return 70

        def __getitem__(self, i):
            return (i,)

    DatasetWriter(str(beton), {"label": IntField()}, num_workers=1).from_indexed_dataset(Labels())
    with pytest.raises(DataError, match=r"fields are \['label'\]"):
        _ffcv(listing)
    with pytest.raises(DataError, match="fastkd-beton.json"):
        load_splits(DataConfig(backend="ffcv", path=str(tmp_path)), reads="beton")


def test_missing_ffcv_explains_how_to_install(monkeypatch, betons):
    out, _ = betons
    listing = load_splits(DataConfig(backend="ffcv", path=str(out / "raw")), reads="beton")["test"]
    real_import = builtins.__import__

    def no_ffcv(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name == "ffcv" or name.startswith("ffcv.")):  # not fastkd.pipelines.ffcv
            raise ImportError("No module named 'ffcv'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_ffcv)
    monkeypatch.delitem(sys.modules, "ffcv", raising=False)
    with pytest.raises(ImportError, match="libturbojpeg0-dev"):
        _ffcv(listing)
