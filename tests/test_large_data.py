"""Data sets larger than memory: trees streamed per sample by the DataLoader backend and converted
to .beton lazily, the same crops as DALI/FFCV for mixed-size images, refusals that name the size.
Trees are generated here: small JPEGs of mixed sizes."""
import numpy as np
import pytest
import torch
from PIL import Image

from fastkd.config import DataConfig
from fastkd.data import DataError, load_splits
from fastkd.data import memory
from fastkd.data.decode import EVAL_CROP_RATIO, RRC_RATIO, RRC_SCALE, random_resized_crop
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(scope="module")
def mixed_tree(tmp_path_factory):
    """240 JPEGs of sizes between 20 and 60 pixels per side, in train/ and val/."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("val", 20)):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(20, 61, 2))
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i:03d}.jpg", quality=90)
    return root


def _reference_eval(path, size):
    """Resize the shorter side to round(size * 256 / 224), centre crop size x size: written out."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        shorter = round(size / EVAL_CROP_RATIO)
        nw, nh = (shorter, round(h * shorter / w)) if w <= h else (round(w * shorter / h), shorter)
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)))


def test_dataloader_streams_a_tree_with_the_evaluation_crop(mixed_tree):
    data = load_splits(DataConfig(name="imagefolder", path=str(mixed_tree)), reads="files")
    assert not data["test"].decoded and len(data["test"]) == 60  # a listing: nothing decoded
    test = data["test"]
    pipe = build_pipeline("dataloader", test, make_spec("none"), train=False, batch_size=16, device="cpu", seed=0,
                          num_workers=0, image_size=24)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (test.mean, test.std))
    seen = 0
    for batch in pipe:
        assert batch.images.shape[1:] == (3, 24, 24)
        for row, i in enumerate(batch.index.tolist()):
            ref = torch.from_numpy(_reference_eval(test.files[i], 24).copy()).permute(2, 0, 1).float() / 255
            torch.testing.assert_close(batch.images[row], ((ref - mean[0]) / std[0]), rtol=0, atol=1e-5)
            seen += 1
    assert seen == 60


def test_streamed_and_in_memory_paths_give_the_same_batches(tmp_path):
    from helpers import make_tree
    make_tree(tmp_path, sizes=None, n=(10, 4))  # fixed-size PNGs: no crop needed
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    streamed = load_splits(cfg, reads="files")["test"]
    in_memory = load_splits(cfg)["test"]
    assert not streamed.decoded and in_memory.decoded
    kw = dict(train=False, batch_size=5, device="cpu", seed=0)
    a = list(build_pipeline("dataloader", streamed, make_spec("none"), num_workers=0, **kw))
    b = list(build_pipeline("tensor", in_memory, make_spec("none"), **kw))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.index, y.index) and torch.equal(x.labels, y.labels)
        torch.testing.assert_close(x.images, y.images, rtol=0, atol=1e-6)


def test_dataloader_training_crops_are_random_resized_and_seeded(mixed_tree):
    train = load_splits(DataConfig(name="imagefolder", path=str(mixed_tree)), reads="files")["train"]

    def epoch(e):
        p = build_pipeline("dataloader", train, make_spec("crop_flip"), train=True, batch_size=30, device="cpu",
                           seed=3, num_workers=0, image_size=16)
        p.set_epoch(e)
        return [b.images for b in p]
    a, b, c = epoch(0), epoch(0), epoch(1)
    assert all(x.shape[1:] == (3, 16, 16) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])


def test_random_resized_crop_keeps_to_its_area_and_ratio_ranges():
    boxes = []

    class Recording:
        size = (300, 200)

        def resize(self, size, resample, box):
            boxes.append(box)
            return self

    rng = np.random.default_rng(0)
    for _ in range(500):
        random_resized_crop(Recording(), 32, rng)
    area = np.array([(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes]) / (300 * 200)
    ratio = np.array([(x2 - x1) / (y2 - y1) for x1, y1, x2, y2 in boxes])
    assert area.min() >= RRC_SCALE[0] - 0.01 and area.max() <= 1.0
    assert ratio.min() >= RRC_RATIO[0] - 0.05 and ratio.max() <= RRC_RATIO[1] + 0.05
    assert all(0 <= x1 < x2 <= 300 and 0 <= y1 < y2 <= 200 for x1, y1, x2, y2 in boxes)
    boxes.clear()
    Recording.size = (1000, 10)  # no crop of an allowed shape fits: the central fallback, ratio clamped
    random_resized_crop(Recording(), 32, rng)
    (x1, y1, x2, y2), = boxes
    assert (y1, y2) == (0, 10) and (x2 - x1) == round(10 * RRC_RATIO[1])


def test_mixed_sizes_without_image_size_are_named_by_the_streaming_path(mixed_tree):
    train = load_splits(DataConfig(name="imagefolder", path=str(mixed_tree)), reads="files")["train"]
    pipe = build_pipeline("dataloader", train, make_spec("none"), train=False, batch_size=8, device="cpu", seed=0,
                          num_workers=0)
    with pytest.raises(DataError, match="data.image_size"):
        list(pipe)


def test_in_memory_paths_refuse_what_does_not_fit_naming_the_size(mixed_tree, monkeypatch):
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 100_000)  # a 100 kB machine
    with pytest.raises(DataError, match=r"decoding 240 images of 24x24 .* needs 0.0 GiB.*data.backend=dali or ffcv"):
        load_splits(DataConfig(name="imagefolder", path=str(mixed_tree), image_size=24))
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 1 << 30)  # the sample archive decodes whole: 18 MB
    data = load_splits(DataConfig(name="sample", limit_train=200, limit_test=50))  # 0.6 MB kept
    # on the CPU the tensor backend needs no room of its own: it reads the decoded arrays in place
    pipe = build_pipeline("tensor", data["train"], make_spec("none"), train=True, batch_size=8, device="cpu", seed=0)
    assert pipe.images.data_ptr() == data["train"].images.ctypes.data
    # the streaming path needs no such room
    listing = load_splits(DataConfig(name="imagefolder", path=str(mixed_tree)), reads="files")
    assert len(listing["train"]) == 180


def test_archives_and_upscaling_are_size_checked_before_decoding(monkeypatch):
    # image_size=2000 on the bundled sample (an archive) grew past 6 GB in 20 s: ~72 GB were needed
    from fastkd import config as C
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 8 << 30)
    with pytest.raises(DataError, match=r"decoding 6,000 images of 2000x2000 from .*cifar10-sample.tar.gz .* needs 67.1 GiB"):
        load_splits(DataConfig(name="sample", image_size=2000))
    assert len(load_splits(DataConfig(name="sample", image_size=40))["train"]) == 5000  # 29 MB: fits
    with pytest.raises(C.ConfigError, match=r"data.image_size: 5000 is out of range; allowed: \[1, 4096\]"):
        C.build(overrides=["data.image_size=5000"])


def test_tree_converts_to_beton_lazily_and_reads_back(mixed_tree, tmp_path, monkeypatch):
    pytest.importorskip("ffcv")
    from fastkd.cli import main as cli_main
    from fastkd.data.decode import resize_center_crop
    import fastkd.data.loading as loading

    def no_decoding(*a, **k):
        raise AssertionError("the tree was decoded in the main process")
    monkeypatch.setattr(loading, "_read_folder", no_decoding)
    out = tmp_path / "b"
    assert cli_main(["data", "convert", "--to", "beton", "--data", "imagefolder", "--path", str(mixed_tree),
                     "--out", str(out), "--image-size", "20", "--workers", "2"]) == 0
    listing = load_splits(DataConfig(name="imagefolder", backend="ffcv", path=str(out)), reads="beton")
    ref = load_splits(DataConfig(name="imagefolder", path=str(mixed_tree)), reads="files")["test"]
    pipe = build_pipeline("ffcv", listing["test"], make_spec("none"), train=False, batch_size=20, device="cpu",
                          seed=0, num_workers=1)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (listing["test"].mean, listing["test"].std))
    for batch in pipe:
        for row, i in enumerate(batch.index.tolist()):
            with Image.open(ref.files[i]) as im:
                expect = np.asarray(resize_center_crop(im.convert("RGB"), 20))
            got = (batch.images[row] * std + mean) * 255
            np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), expect, atol=1e-3)
