import hashlib
import io
import pickle
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest

from fastkd.config import DataConfig
from fastkd.data import DataError, cifar, load_splits
from fastkd.data.arrays import stratified_order
from helpers import make_tree


def _batch_bytes(data, labels, key=b"labels"):
    return pickle.dumps({b"data": data, key: labels, b"batch_label": b"x"})


def make_cifar10_archive(path, n_per_batch=6, seed=0):
    """A tiny archive in the official CIFAR-10 python format; returns the arrays it holds."""
    rng = np.random.default_rng(seed)
    folder = "cifar-10-batches-py"
    members, train_x, train_y = {}, [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, n_per_batch).tolist()
        members[f"data_batch_{i}"] = _batch_bytes(x, y)
        train_x.append(x), train_y.extend(y)
    tx = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
    ty = rng.integers(0, 10, n_per_batch).tolist()
    members["test_batch"] = _batch_bytes(tx, ty)
    members["batches.meta"] = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]})
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return np.concatenate(train_x), np.array(train_y), tx, np.array(ty)


def _cfg(**kw):
    return DataConfig(**kw)


def test_cifar10_archive_reads_pixels_in_rgb_plane_order(tmp_path):
    arch = tmp_path / "tiny-cifar10.tar.gz"
    x, y, tx, ty = make_cifar10_archive(arch)
    parts = load_splits(_cfg(name="cifar10", path=str(arch)))
    tr = parts["train"]
    assert tr.images.shape == (30, 32, 32, 3) and tr.classes[3] == "c3"
    # element (n, r, c, ch) comes from row n, offset ch*1024 + r*32 + c of the batch data
    for n, r, c, ch in [(0, 0, 0, 0), (7, 5, 31, 2), (29, 31, 0, 1)]:
        assert tr.images[n, r, c, ch] == x[n, ch * 1024 + r * 32 + c]
    np.testing.assert_array_equal(tr.labels, y)
    np.testing.assert_array_equal(parts["test"].labels, ty)
    assert tr.mean == (0.4914, 0.4822, 0.4465)


def test_cifar_extracted_folder_and_cifar100_format(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 12), ("test", 4)):
        d = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / split).write_bytes(pickle.dumps({b"data": d, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}))
    parts = load_splits(_cfg(name="cifar100", path=str(tmp_path)))
    assert parts["train"].num_classes == 100 and len(parts["test"]) == 4
    np.testing.assert_array_equal(parts["train"].labels, np.arange(12))


def test_official_archive_name_is_checksum_verified(tmp_path):
    arch = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10_archive(arch)
    with pytest.raises(DataError, match="md5 does not match"):
        load_splits(_cfg(name="cifar10", path=str(tmp_path)))


def test_download_verifies_checksum_and_keeps_nothing_on_mismatch(tmp_path, monkeypatch):
    src = tmp_path / "src.tar.gz"
    make_cifar10_archive(src)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    info = cifar.CIFAR["cifar10"]
    monkeypatch.setitem(cifar.CIFAR, "cifar10", info.__class__(**{**info.__dict__, "url": src.as_uri(), "md5": "0" * 32}))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_splits(_cfg(name="cifar10", download=True, cache_dir=str(cache)))
    assert not any(cache.iterdir()), "a bad download must leave no file behind"
    monkeypatch.setitem(cifar.CIFAR, "cifar10", info.__class__(**{**info.__dict__, "url": src.as_uri(), "md5": md5}))
    parts = load_splits(_cfg(name="cifar10", download=True, cache_dir=str(cache)))
    assert len(parts["train"]) == 30 and (cache / info.archive).is_file()


def test_missing_cifar_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="data.download=true"):
        load_splits(_cfg(name="cifar10", path=str(tmp_path)))


def test_tampered_pickle_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps(SimpleNamespace(a=1)))
    with pytest.raises(DataError, match="refusing to load"):
        load_splits(_cfg(name="cifar10", path=str(folder)))


def test_imagefolder_tree_exact_pixels_labels_and_order(tmp_path):
    arrays = make_tree(tmp_path)
    parts = load_splits(_cfg(name="imagefolder", path=str(tmp_path)))
    tr = parts["train"]
    assert tr.classes == ["ant", "bee", "cat"] and len(tr) == 18 and len(parts["test"]) == 9
    for img, label, f in zip(tr.images, tr.labels, tr.files):
        np.testing.assert_array_equal(img, arrays[f])
        assert tr.classes[label] in f
    # second load comes from the decoded cache and is identical
    again = load_splits(_cfg(name="imagefolder", path=str(tmp_path)))
    np.testing.assert_array_equal(again["train"].images, tr.images)


def test_corrupt_image_named_or_skipped_and_counted(tmp_path):
    make_tree(tmp_path)
    bad = tmp_path / "train" / "bee" / "999.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError) as e:
        load_splits(_cfg(name="imagefolder", path=str(tmp_path)))
    assert str(bad) in str(e.value) and "on_corrupt=skip" in str(e.value)
    parts = load_splits(_cfg(name="imagefolder", path=str(tmp_path), on_corrupt="skip"))
    assert len(parts["train"]) == 18 and parts["train"].skipped == [str(bad)]


def test_mixed_sizes_need_image_size(tmp_path):
    make_tree(tmp_path, sizes={("train", "ant", 0): (12, 16)})
    with pytest.raises(DataError, match="data.image_size"):
        load_splits(_cfg(name="imagefolder", path=str(tmp_path)))
    parts = load_splits(_cfg(name="imagefolder", path=str(tmp_path), image_size=8))
    assert parts["train"].images.shape[1:] == (8, 8, 3)


def test_not_an_imagefolder_and_empty_class(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="test/"):
        load_splits(_cfg(name="imagefolder", path=str(tmp_path)))
    (tmp_path / "test" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a").mkdir()
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(DataError, match="holds no image files"):
        load_splits(_cfg(name="imagefolder", path=str(tmp_path)))


def test_validation_split_is_stratified_disjoint_and_seeded():
    parts = load_splits(_cfg(name="sample", val_split=1000))
    tr, va = parts["train"], parts["val"]
    assert len(tr) == 4000 and len(va) == 1000
    assert np.bincount(va.labels).tolist() == [100] * 10
    assert not set(tr.files) & set(va.files)
    again = load_splits(_cfg(name="sample", val_split=0.2))
    assert again["val"].files == va.files
    other = load_splits(_cfg(name="sample", val_split=1000, split_seed=1))
    assert other["val"].files != va.files


def test_stratified_order_prefixes_are_balanced():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    order = stratified_order(labels, 0)
    assert sorted(order.tolist()) == list(range(100))
    assert np.bincount(labels[order[:10]], minlength=4).tolist() == [1, 2, 3, 4]


def test_bundled_sample_is_class_balanced_cifar10():
    parts = load_splits(_cfg(name="sample"))
    assert parts["train"].images.shape == (5000, 32, 32, 3) and len(parts["test"]) == 1000
    assert np.bincount(parts["train"].labels).tolist() == [500] * 10
    assert parts["train"].classes[0] == "airplane" and parts["train"].classes[9] == "truck"


@pytest.mark.slow
def test_full_cifar10_jpeg_tree(cifar_jpeg_tree):
    parts = load_splits(_cfg(name="imagefolder", path=str(cifar_jpeg_tree)))
    assert len(parts["train"]) == 50000 and len(parts["test"]) == 10000
    assert np.bincount(parts["test"].labels).tolist() == [1000] * 10
    # statistics of the JPEG copy stay close to the paper's CIFAR-10 normalisation
    assert np.allclose(parts["train"].mean, (0.4914, 0.4822, 0.4465), atol=0.01)
