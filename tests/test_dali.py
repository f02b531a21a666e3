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
    lazy = load_splits(DataConfig(name="imagefolder", path=str(root)), reads="files")
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


def _cpu_batches(pipe):
    return [b.to("cpu") for b in pipe]


def test_identity_matches_pil_decode_order_and_labels(jpeg_tree, device):
    lazy, full = _lists(jpeg_tree)
    assert lazy["train"].images.shape == (60, 0, 0, 3)  # listed, not decoded
    pipe = _dali(lazy["test"], device=device)
    assert pipe.decode == ("mixed" if device == "cuda" else "cpu")
    first = next(iter(pipe))
    assert all(t.device.type == device for t in (first.images, first.targets, first.labels, first.index))
    assert first.images.is_contiguous(memory_format=torch.channels_last)
    d = _cpu_batches(pipe)
    t = list(build_pipeline("tensor", full["test"], make_spec("none"), train=False, batch_size=8, device="cpu", seed=0))
    assert sum(len(b) for b in d) == 21 and len(d) == len(t) == 3
    err = torch.cat([(_raw(a.images, lazy["test"]) - _raw(b.images, lazy["test"])).abs().flatten() for a, b in zip(d, t)])
    for a, b in zip(d, t):
        assert torch.equal(a.index, b.index) and torch.equal(a.labels, b.labels)
    if device == "cpu":
        # DALI's CPU decoder and PIL both use libjpeg-turbo: measured identical up to float rounding
        assert err.max() < 0.01
    else:
        # nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo's: bound the typical error
        print(f"mixed decode vs PIL: mean {err.mean():.3f}, max {err.max():.1f} grey levels")
        assert err.mean() < 1.5 and err.quantile(0.99) < 8


def test_in_memory_arrays_through_external_source(device):
    data = load_splits(DataConfig(name="sample", limit_test=50))["test"]
    for a, b in zip(_dali(data, batch_size=16, device=device),
                    build_pipeline("tensor", data, make_spec("none"), train=False, batch_size=16, device=device, seed=0)):
        assert a.images.device.type == a.labels.device.type == device
        torch.testing.assert_close(a.images, b.images, rtol=0, atol=1e-5)
        assert torch.equal(a.index, b.index) and torch.equal(a.labels, b.labels)


def test_graphs_run_on_the_dynamic_executor():
    # run(stream) hands GPU outputs over on torch's stream only with the dynamic executor, which
    # DALI before 1.51 does not choose by default
    data = load_splits(DataConfig(name="sample", limit_test=20))["test"]
    graph = _dali(data, batch_size=8)._graph(np.arange(len(data.labels)), epoch=0)
    assert graph.exec_dynamic is True


def test_crop_flip_outputs_are_zero_padded_crops(jpeg_tree, device):
    from test_augment import _find_crop
    lazy, full = _lists(jpeg_tree)
    if device == "cpu":
        src = torch.from_numpy(full["train"].images).permute(0, 3, 1, 2)
    else:  # compare with the same decoder's unaugmented output (nvJPEG differs from PIL slightly)
        src = torch.zeros(60, 3, 12, 10, dtype=torch.uint8)
        for b in _cpu_batches(_dali(lazy["train"], device=device)):
            src[b.index] = _raw(b.images, lazy["train"]).round().clamp(0, 255).to(torch.uint8)
    offsets = set()
    for b in _cpu_batches(_dali(lazy["train"], "crop_flip", train=True, params={"pad": 2}, device=device)):
        raw = _raw(b.images, lazy["train"]).round().clamp(0, 255).to(torch.uint8)
        for img, i in zip(raw, b.index.tolist()):
            hits = _find_crop(img, src[i], 2)
            assert hits, "every output must be a (flipped) crop of its zero-padded source"
            offsets.add(hits[0])
    assert len({(y, x) for y, x, _ in offsets}) > 10 and {f for *_, f in offsets} == {True, False}


@pytest.mark.parametrize("channels_last", [True, False])  # DALI's HWC or CHW output layout
def test_cutout_in_the_graph_zeroes_a_clipped_square(device, channels_last):
    data = load_splits(DataConfig(name="sample", limit_train=64))["train"]
    areas = []
    for b in _cpu_batches(_dali(data, "cutout", train=True, batch_size=32, params={"cutout_size": 8}, device=device,
                                channels_last=channels_last)):
        assert b.images.shape == (32, 3, 32, 32)
        assert b.images.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        zero = (b.images == 0).all(1)
        for z in zero:
            rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
            assert z[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all() and len(rows) <= 8 and len(cols) <= 8
            areas.append(int(z.sum()))
    assert 64 in areas and min(areas) < 64


@pytest.mark.parametrize("augment", ["mixup", "cutmix"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_mixing_semantics_on_dali_batches(augment, per_sample, device):
    from helpers import check_mixed_batch
    data = load_splits(DataConfig(name="sample", limit_train=96))["train"]
    plain = {int(b.index[i]): b.images[i] for b in _dali(data, batch_size=96) for i in range(len(b))}
    for b in _cpu_batches(_dali(data, augment, train=True, batch_size=32, params={"per_sample": per_sample}, device=device)):
        check_mixed_batch(b, plain, data.labels, 10, augment, per_sample)


GPU_OPS = {"decoders__Image": "mixed", "Slice": "gpu", "CropMirrorNormalize": "gpu", "Erase": "gpu",
           "RandomResizedCrop": "gpu", "Resize": "gpu"}


@pytest.mark.parametrize("source,augment,train,image_size", [
    ("files", "none", False, None), ("files", "crop_flip+cutout", True, None),
    ("files", "crop_flip+cutmix", True, 32), ("files", "none", False, 32), ("arrays", "crop_flip+cutout", True, None)])
def test_gpu_graph_passes_dali_graph_checks(jpeg_tree, source, augment, train, image_size):
    """Runs without a GPU: the graph the GPU path defines (mixed decode or a .gpu() external
    source) goes through DALI's own graph construction, which rejects unknown arguments and
    operators fed from the wrong device; image work must sit on the GPU and both outputs end there."""
    lazy, _ = _lists(jpeg_tree)
    data = lazy["train"] if source == "files" else load_splits(DataConfig(name="sample", limit_train=32))["train"]
    p = _dali(data, augment, train=train, image_size=image_size)
    p.device, p.gpu, p.decode = torch.device("cuda", 0), True, "mixed"  # what a CUDA device selects
    pipe = p._graph(np.arange(len(data.labels)), epoch=0)
    pipe._build_graph()
    assert [o.device for o in pipe._graph_outputs] == ["gpu", "gpu"]
    names = {op: getattr(op._op, "schema_name", type(op._op).__name__) for op in pipe._ops}
    placed = {name: op._op.device for op, name in names.items() if name in GPU_OPS}
    assert placed and all(GPU_OPS[name] == dev for name, dev in placed.items()), placed
    assert ("decoders__Image" in placed) == (source == "files")


def test_pipeline_built_ahead_for_the_next_epoch_matches_a_fresh_one(jpeg_tree):
    lazy, _ = _lists(jpeg_tree)
    p = _dali(lazy["train"], "crop_flip+cutout", train=True)
    firsts = []
    for epoch in (0, 1, 5):  # 1 was built during 0; 5 is a jump (a resumed run): the build for 2 is dropped
        p.set_epoch(epoch)
        batches = list(p)
        assert p.prepared_epoch == epoch + 1
        fresh = _dali(lazy["train"], "crop_flip+cutout", train=True)
        fresh.set_epoch(epoch)
        for a, b in zip(batches, fresh, strict=True):
            assert torch.equal(a.index, b.index) and torch.equal(a.images, b.images)
        firsts.append(batches[0].images)
    assert not torch.equal(firsts[0], firsts[1]) and not torch.equal(firsts[1], firsts[2]), "epochs differ"
    evaluation = _dali(lazy["test"])  # evaluated again and again without set_epoch: same pipeline each time
    runs = [list(evaluation) for _ in range(2)]
    assert evaluation.prepared_epoch == 0 and len(runs[1]) == 3
    assert all(torch.equal(a.images, b.images) for a, b in zip(*runs, strict=True))


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
    lazy = load_splits(DataConfig(name="imagefolder", path=str(root), mean=[0.5] * 3, std=[0.25] * 3), reads="files")
    with pytest.raises(DataError, match="003.jpg"):
        list(_dali(lazy["test"]))


def test_training_through_the_engine(tmp_path, jpeg_tree, device):
    from fastkd import config as C
    from fastkd.train import engine
    cfg = C.build(overrides=["data.name=imagefolder", f"data.path={jpeg_tree}", "data.backend=dali", "model=lenet",
                             "augment=crop_flip+cutmix", "train.epochs=1", "train.batch_size=8", "data.image_size=32",
                             f"device={device}"])
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
    with pytest.raises(ImportError, match=r"pip install .*\[dali\]"):
        build_pipeline("dali", data, make_spec("none"), train=False, batch_size=4, device="cpu", seed=0)


@pytest.mark.parametrize("augment", ["autoaugment", "randaugment", "crop_flip+trivialaugment"])
def test_dali_runs_its_own_automatic_policies_seeded(augment):
    data = load_splits(DataConfig(name="sample", limit_train=96))["train"]
    plain = next(iter(_dali(data, "none", train=True, batch_size=96)))
    first = next(iter(_dali(data, augment, train=True, batch_size=96)))
    assert torch.equal(first.images, next(iter(_dali(data, augment, train=True, batch_size=96))).images)
    assert not torch.equal(first.images, next(iter(_dali(data, augment, train=True, batch_size=96, seed=1))).images)
    changed = ((first.images - plain.images).abs().amax(dim=(1, 2, 3)) > 1e-4).float().mean().item()
    assert changed > 0.5  # every policy alters most samples (AutoAugment leaves ~1 in 5 alone)
    raw = _raw(first.images, data)
    assert raw.min() > -0.5 and raw.max() < 255.5
