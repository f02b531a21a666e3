"""The DALI backend in CPU mode (CI installs nvidia-dali-cuda130, which runs without a GPU)."""
import builtins
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fastkd.config import DataConfig
from fastkd.data import DataError, load_splits
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec

dali = pytest.importorskip("nvidia.dali")


@pytest.fixture(scope="module")
def jpeg_tree(tmp_path_factory):
    """A small ImageFolder tree of real JPEGs (3 classes, 12x10 images)."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 7)):
        for c in ("ant", "bee", "cat"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                base = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)  # smooth images: JPEG-friendly
                img = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))[:12, :10]
                Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=90)
    return root


def _lists(root):
    lazy = load_splits(DataConfig(name="imagefolder", path=str(root)), decode=False)
    full = load_splits(DataConfig(name="imagefolder", path=str(root)))
    for split in full:  # same normalisation for the comparison
        full[split].mean, full[split].std = lazy[split].mean, lazy[split].std
    return lazy, full


def _raw(x, data):
    """Normalised CHW float back to 0..255 pixel units."""
    mean = torch.tensor(data.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(data.std).view(1, 3, 1, 1) * 255
    return x * std + mean


def _dali(data, augment="none", train=False, **kw):
    kw = {"batch_size": 8, "device": "cpu", "seed": 0, "num_workers": 2} | kw
    return build_pipeline("dali", data, make_spec(augment, **kw.pop("params", {})), train=train, **kw)


def test_identity_matches_pil_decode_order_and_labels(jpeg_tree):
    lazy, full = _lists(jpeg_tree)
    assert lazy["train"].images.shape == (60, 0, 0, 3)  # listed, not decoded
    d = list(_dali(lazy["test"]))
    t = list(build_pipeline("tensor", full["test"], make_spec("none"), train=False, batch_size=8, device="cpu", seed=0))
    assert sum(len(b) for b in d) == 21 and len(d) == len(t) == 3
    worst = 0.0
    for a, b in zip(d, t):
        assert torch.equal(a.index, b.index) and torch.equal(a.labels, b.labels)
        worst = max(worst, (_raw(a.images, lazy["test"]) - _raw(b.images, lazy["test"])).abs().max().item())
    # DALI's CPU decoder and PIL both use libjpeg-turbo: measured identical up to float rounding
    assert worst < 0.01


def test_in_memory_arrays_through_external_source():
    data = load_splits(DataConfig(name="sample", limit_test=50))["test"]
    for a, b in zip(_dali(data, batch_size=16),
                    build_pipeline("tensor", data, make_spec("none"), train=False, batch_size=16, device="cpu", seed=0)):
        torch.testing.assert_close(a.images, b.images, rtol=0, atol=1e-5)
        assert torch.equal(a.index, b.index)


def test_crop_flip_outputs_are_zero_padded_crops(jpeg_tree):
    from test_augment import _find_crop
    lazy, full = _lists(jpeg_tree)
    src = torch.from_numpy(full["train"].images).permute(0, 3, 1, 2)
    offsets = set()
    for b in _dali(lazy["train"], "crop_flip", train=True, params={"pad": 2}):
        raw = _raw(b.images, lazy["train"]).round().clamp(0, 255).to(torch.uint8)
        for img, i in zip(raw, b.index.tolist()):
            hits = _find_crop(img, src[i], 2)
            assert hits, "every output must be a (flipped) crop of its zero-padded source"
            offsets.add(hits[0])
    assert len({(y, x) for y, x, _ in offsets}) > 10 and {f for *_, f in offsets} == {True, False}


def test_cutout_in_the_graph_zeroes_a_clipped_square():
    data = load_splits(DataConfig(name="sample", limit_train=64))["train"]
    areas = []
    for b in _dali(data, "cutout", train=True, batch_size=32, params={"cutout_size": 8}):
        zero = (b.images == 0).all(1)
        for z in zero:
            rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
            assert z[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all() and len(rows) <= 8 and len(cols) <= 8
            areas.append(int(z.sum()))
    assert 64 in areas and min(areas) < 64


@pytest.mark.parametrize("augment", ["mixup", "cutmix"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_mixing_semantics_on_dali_batches(augment, per_sample):
    from mixcheck import check_mixed_batch
    data = load_splits(DataConfig(name="sample", limit_train=96))["train"]
    plain = {int(b.index[i]): b.images[i] for b in _dali(data, batch_size=96) for i in range(len(b))}
    for b in _dali(data, augment, train=True, batch_size=32, params={"per_sample": per_sample}):
        check_mixed_batch(b, plain, data.labels, 10, augment, per_sample)


def test_two_shards_are_disjoint_and_cover(jpeg_tree):
    lazy, _ = _lists(jpeg_tree)
    train = [set(i for b in _dali(lazy["train"], "crop_flip", train=True, batch_size=5, process_index=r, num_processes=2)
                 for i in b.index.tolist()) for r in range(2)]
    assert not train[0] & train[1] and len(train[0]) == len(train[1]) == 30
    test = [i for r in range(2) for b in _dali(lazy["test"], process_index=r, num_processes=2) for i in b.index.tolist()]
    assert sorted(test) == list(range(21))


def test_corrupt_jpeg_is_named(tmp_path, jpeg_tree):
    import shutil
    root = tmp_path / "tree"
    shutil.copytree(jpeg_tree, root)
    bad = root / "test" / "bee" / "003.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    lazy = load_splits(DataConfig(name="imagefolder", path=str(root), mean=[0.5] * 3, std=[0.25] * 3), decode=False)
    with pytest.raises(DataError, match="003.jpg"):
        list(_dali(lazy["test"]))


def test_training_through_the_engine(tmp_path, jpeg_tree):
    from fastkd import config as C
    from fastkd import engine
    cfg = C.build(overrides=["data.name=imagefolder", f"data.path={jpeg_tree}", "data.backend=dali", "model=lenet",
                             "augment=crop_flip+cutmix", "train.epochs=1", "train.batch_size=8", "data.image_size=32"])
    m = engine.train(cfg, tmp_path / "r", progress=False)
    assert m["test_examples"] == 21 and m["epochs"] == 1


def test_missing_dali_explains_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_dali(name, *a, **k):
        if name.startswith("nvidia.dali"):
            raise ImportError("No module named 'nvidia.dali'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dali)
    monkeypatch.delitem(sys.modules, "nvidia.dali", raising=False)
    data = load_splits(DataConfig(name="sample", limit_test=10))["test"]
    with pytest.raises(ImportError, match=r"pip install 'fastkd\[dali\]'"):
        build_pipeline("dali", data, make_spec("none"), train=False, batch_size=4, device="cpu", seed=0)
