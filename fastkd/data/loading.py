"""``load_splits``: one entry point from a data config to train/val/test arrays."""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..run.atomic import sweep_temporaries, write_atomic
from ..run.progress import bar
from . import cifar, imagefolder
from .arrays import DataError, ImageArrays, split_off, stratified_order
from .decode import MAX_PIXELS
from .beton import read_listing
from .decode import decode_bytes
from .memory import check_fits

DATASETS = ("sample", "cifar10", "cifar100", "imagefolder")
SAMPLE_ARCHIVE = "cifar10-sample.tar.gz"


def sample_path() -> Path:
    """The bundled CIFAR-10 sample (see fastkd/data/sample/README.md)."""
    return Path(str(resources.files("fastkd.data") / "sample" / SAMPLE_ARCHIVE))


def default_cache_dir() -> Path:
    return Path(os.environ.get("FASTKD_CACHE", Path.home() / ".cache" / "fastkd"))


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images, in [0, 1] units, float64."""
    x = images.reshape(-1, 3)
    s1 = np.zeros(3)
    s2 = np.zeros(3)
    for start in range(0, len(x), 1 << 22):  # chunks keep float64 temporaries small
        c = x[start:start + (1 << 22)].astype(np.float64) / 255.0
        s1 += c.sum(0)
        s2 += (c * c).sum(0)
    mean = s1 / len(x)
    std = np.sqrt(np.maximum(s2 / len(x) - mean ** 2, 0))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def _folder_cache_key(root: Path, cfg) -> str:
    st = root.stat()
    listing = [str(root.resolve()), st.st_size, st.st_mtime_ns, cfg.image_size, cfg.on_corrupt] + \
        ([cfg.max_pixels] if cfg.max_pixels != MAX_PIXELS else [])  # (caches of the default limit keep their name)
    if root.is_dir():  # any file added, removed or rewritten changes the key
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                try:
                    s = os.stat(p)
                except OSError:  # a dangling link or link loop: its own link counts
                    s = os.lstat(p)
                listing.append((os.path.relpath(p, root), s.st_size, s.st_mtime_ns))
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:20]


def _read_folder(root: Path, cfg, progress: bool) -> dict:
    """Decode an ImageFolder tree/archive once; later calls load the decoded arrays from the cache."""
    cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    key = _folder_cache_key(root, cfg)
    cached = cache / f"imagefolder-{key}.npz"
    if cached.is_file():
        hit = _read_cached_decode(cached, key)
        if hit is not None:
            return hit
    test_name = imagefolder.require_layout(root)
    total = imagefolder.dataset_size_hint(root) or None
    _check_decoded_size(root, total, cfg)
    out, classes = {}, None
    with bar(total=total, desc=f"decode {root.name}", unit="img", enabled=progress) as shown:
        for split, name in (("train", "train"), ("test", test_name)):
            images, labels, classes, files, skipped = imagefolder.read_split(
                root, name, classes=classes, image_size=cfg.image_size, on_corrupt=cfg.on_corrupt, progress=shown,
                max_pixels=cfg.max_pixels)
            out[split] = (images, labels, files, skipped)
    out["classes"] = classes
    try:
        cache.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(cache, only_dead=True)  # a shared folder: only files of dead writers
        arrays = {f"{s}_images": out[s][0] for s in ("train", "test")} | {f"{s}_labels": out[s][1] for s in ("train", "test")}
        meta = {"key": key, "digest": _arrays_digest(arrays), "splits": ["train", "test"], "classes": classes,
                "files": {s: out[s][2] for s in ("train", "test")}, "skipped": {s: out[s][3] for s in ("train", "test")}}
        write_atomic(cached, lambda f: np.savez(f, meta=json.dumps(meta), **arrays), error=DataError,
                     what="decoded-image cache")
    except (OSError, DataError):
        pass  # a read-only or full cache only costs a re-decode next time
    return out


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the named arrays' names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.shape}:{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _read_cached_decode(cached: Path, key: str) -> dict | None:
    """The decoded tree from its cache file, when the file records this tree's key and its arrays
    still have the digest recorded with them: another tree's cache copied over this one, or a
    damaged file, is decoded again (and said so), never used."""
    import logging
    try:
        with np.load(cached, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in z.files if name != "meta"}
    except Exception as exc:  # noqa: BLE001 -- a damaged cache entry of any kind is rebuilt
        problem = f"unreadable ({type(exc).__name__})"
    else:
        if meta.get("key") != key:
            problem = "it records another tree"
        elif meta.get("digest") != _arrays_digest(arrays):
            problem = "its images do not match the digest recorded with them"
        else:
            return {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"], meta["files"][s], meta["skipped"][s])
                    for s in meta["splits"]} | {"classes": meta["classes"]}
    logging.getLogger("fastkd").warning(f"decoded-image cache {cached} not used ({problem}): decoding again")
    return None


def _check_decoded_size(root: Path, count: int | None, cfg) -> None:
    """A tree or archive decoded into memory must fit there: estimated from its image count and
    the image size (data.image_size, upscaling included, else the first image's) before any
    decoding. An archive's count comes from its index."""
    if root.is_file():
        count = imagefolder.archive_image_count(root)
    if not count:
        return
    if cfg.image_size:
        h = w = cfg.image_size
    else:
        try:
            h, w = decode_bytes(imagefolder.first_image_bytes(root), None).shape[:2]
        except Exception:  # noqa: BLE001 -- an unreadable first file is reported by the decode itself
            return
    check_fits(count * h * w * 3, what=f"decoding {count:,} images of {w}x{h} from {root} into memory")


def _limit(data: ImageArrays, n: int | None, seed: int) -> ImageArrays:
    if not n or n >= len(data):
        return data
    return data.subset(np.sort(stratified_order(data.labels, seed)[:n]))


def _list_folder(root: Path, cfg) -> dict:
    """File lists and labels of an ImageFolder tree, without decoding (for the DALI backend)."""
    test_name = imagefolder.require_layout(root)
    train_files, train_labels, classes, train_out = imagefolder.scan_tree(root / "train", on_corrupt=cfg.on_corrupt)
    test_files, test_labels, _, test_out = imagefolder.scan_tree(root / test_name, classes, cfg.on_corrupt)
    empty = lambda n: np.zeros((n, 0, 0, 3), dtype=np.uint8)  # noqa: E731
    return {"train": (empty(len(train_files)), np.asarray(train_labels), train_files, train_out),
            "test": (empty(len(test_files)), np.asarray(test_labels), test_files, test_out), "classes": classes}


def file_channel_stats(files: list[str], limit: int = 2000, seed: int = 0):
    """Channel mean/std estimated from up to ``limit`` decoded files (any sizes)."""
    pick = np.random.default_rng(seed).permutation(len(files))[:limit]
    s1, s2, count = np.zeros(3), np.zeros(3), 0
    for i in pick:
        try:
            with open(files[i], "rb") as f:
                a = decode_bytes(f.read(), None).reshape(-1, 3).astype(np.float64) / 255.0
        except Exception:  # noqa: BLE001 -- unreadable files are the backend's to report; stats skip them
            continue
        s1 += a.sum(0)
        s2 += (a * a).sum(0)
        count += len(a)
    if not count:
        raise DataError(f"no readable image among {len(pick)} sampled files (first: {files[0] if files else '-'})")
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean ** 2, 0))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


SOURCE_FORMS = ("arrays", "files", "beton")


def load_splits(cfg, *, progress: bool = False, reads: str = "arrays") -> dict[str, ImageArrays]:
    """Read the data set named by ``cfg`` (a DataConfig) -> {"train", "test"[, "val"]}, in the
    form the consuming backend reads (its ``reads``): "arrays" decodes everything into uint8
    arrays; "files" lists an ImageFolder tree without decoding it (the backend decodes the files;
    other sources are still arrays); "beton" lists a folder written by `fastkd data convert`.
    """
    if cfg.name not in DATASETS:
        raise DataError(f"data.name: unknown data set {cfg.name!r}; allowed: {', '.join(DATASETS)}")
    if reads not in SOURCE_FORMS:
        raise ValueError(f"reads must be one of {SOURCE_FORMS}, got {reads!r}")
    if reads == "beton":  # pixels stay in the .beton files
        if not cfg.path:
            raise DataError("data.path: this backend reads the folder written by `fastkd data convert --to beton`; "
                            "set data.path to it")
        parts = read_listing(cfg.path, cfg.name)
    elif cfg.name in cifar.CIFAR:
        dl = (Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()) if cfg.download else None
        source = cifar.locate(cfg.name, cfg.path, download_to=dl)
        raw, classes = cifar.read(cfg.name, source)
        info = cifar.CIFAR[cfg.name]
        mean, std = info.mean, info.std
        parts = {s: ImageArrays(raw[s][0], raw[s][1], classes, mean, std) for s in ("train", "test")}
    else:
        if cfg.name == "sample":
            root = sample_path()
        elif not cfg.path:
            raise DataError("data.path: an imagefolder data set needs data.path=<root with train/ and test/>")
        else:
            root = Path(cfg.path).expanduser()
            imagefolder.check_root(root)
        # a tree stays a listing for backends that read files; an archive is decoded (read whole anyway)
        lazy = reads == "files" and cfg.name == "imagefolder" and root.is_dir()
        raw = _list_folder(root, cfg) if lazy else _read_folder(root, cfg, progress)
        classes = raw["classes"]
        if cfg.name == "sample":  # a CIFAR-10 subset: use CIFAR-10's statistics
            mean, std = cifar.CIFAR["cifar10"].mean, cifar.CIFAR["cifar10"].std
        elif lazy:
            mean, std = (cfg.mean, cfg.std) if cfg.mean and cfg.std else file_channel_stats(raw["train"][2])
        else:
            mean, std = channel_stats(raw["train"][0])
        parts = {s: ImageArrays(raw[s][0], raw[s][1], classes, mean, std, raw[s][2], list(raw[s][3]))
                 for s in ("train", "test")}
    if cfg.mean is not None or cfg.std is not None:
        for p in parts.values():
            p.mean, p.std = tuple(cfg.mean or p.mean), tuple(cfg.std or p.std)
    if parts["train"].num_classes < 2:
        raise DataError(f"data.path: {cfg.path or cfg.name} has {parts['train'].num_classes} class "
                        f"({', '.join(parts['train'].classes)}); classification needs at least two class folders")
    parts["train"] = _limit(parts["train"], cfg.limit_train, cfg.split_seed)
    parts["test"] = _limit(parts["test"], cfg.limit_test, cfg.split_seed)
    if cfg.val_split:
        n = int(round(cfg.val_split * len(parts["train"]))) if cfg.val_split < 1 else int(cfg.val_split)
        parts["train"], parts["val"] = split_off(parts["train"], n, cfg.split_seed)
    return parts
