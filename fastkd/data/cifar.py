"""CIFAR-10 / CIFAR-100 in the official "python version" archive format.

Archive layout (Krizhevsky 2009): CIFAR-10 ``cifar-10-batches-py/{data_batch_1..5, test_batch,
batches.meta}``, CIFAR-100 ``cifar-100-python/{train, test, meta}``; each a pickled dict whose
``data`` is uint8 (N, 3072) in R(1024) G(1024) B(1024) row-major planes.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..run.progress import bar
from .arrays import DataError


@dataclass(frozen=True)
class CifarInfo:
    archive: str  # official file name
    url: str
    md5: str  # published checksum of the official archive
    folder: str  # top folder inside the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: bytes
    names_key: bytes
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR = {
    "cifar10": CifarInfo(
        "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
        b"labels", b"label_names",
        (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),  # the paper's normalisation
    "cifar100": CifarInfo(
        "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python",
        ("train",), ("test",), "meta", b"fine_labels", b"fine_label_names",
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Only what CIFAR's pickles contain (dicts, lists, bytes, numpy arrays): a tampered archive
    cannot run code on load."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _load_pickle(data: bytes, where: str) -> dict:
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{where}: not a CIFAR python batch file ({exc})") from exc


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str, *, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through a temporary file; keep it only if its MD5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with bar(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", enabled=progress) as shown:
                while block := resp.read(1 << 20):
                    out.write(block)
                    shown.update(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed ({exc}); download it by hand and pass data.path=FILE") from exc
    got = md5sum(part)
    if got != md5:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); the download was discarded")
    os.replace(part, dest)
    return dest


def locate(name: str, path: str | None, *, download_to: Path | None) -> Path:
    """Find the archive or extracted folder for ``name``; download it when allowed and absent."""
    info = CIFAR[name]
    candidates = []
    if path:
        p = Path(path).expanduser()
        candidates += [p, p / info.archive, p / info.folder]
    if download_to is not None:
        candidates += [download_to / info.archive]
    for c in candidates:
        if c.is_file() or (c.is_dir() and (c / info.meta).is_file()):
            return c
    if download_to is not None:
        return download(info.url, download_to / info.archive, info.md5)
    where = ", ".join(str(c) for c in candidates) or "(no data.path given)"
    if path and (Path(path).expanduser() / "train").is_dir():
        raise DataError(f"{name}: {path} holds a train/ folder: an image tree, not the {info.archive} archive; for a "
                        "tree of image files use data.name=imagefolder")
    raise DataError(f"{name}: no archive or extracted folder found at {where}; pass data.path=<{info.archive} "
                    f"or its folder>, or set data.download=true to fetch {info.url}")


def read(name: str, source: Path, *, verify: bool = True):
    """Read ``source`` (archive or extracted folder) -> dict split -> (images NHWC, labels), classes."""
    info = CIFAR[name]
    if source.is_file():
        if verify and source.name == info.archive and md5sum(source) != info.md5:
            raise DataError(f"{source}: md5 does not match the official {info.archive} ({info.md5}); "
                            "the file is corrupt or incomplete: delete it and download again")
        try:
            with tarfile.open(source) as tar:
                blobs = {}
                for m in tar.getmembers():
                    parts = Path(m.name).parts
                    if m.isfile() and len(parts) == 2 and parts[0] == info.folder:
                        blobs[parts[1]] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{source}: unreadable archive ({exc})") from exc
    else:
        blobs = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}

    def member(m):
        if m not in blobs:
            raise DataError(f"{source}: member {info.folder}/{m} is missing; not a {info.archive} archive")
        return _load_pickle(blobs[m], f"{source}:{info.folder}/{m}")

    meta = member(info.meta)
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[info.names_key]]
    splits = {}
    for split, members in (("train", info.train), ("test", info.test)):
        data, labels = [], []
        for m in members:
            d = member(m)
            for key in (b"data", info.label_key):
                if key not in d:
                    raise DataError(f"{source}:{info.folder}/{m}: field {key.decode()!r} missing")
            arr = np.asarray(d[b"data"], dtype=np.uint8)
            if arr.ndim != 2 or arr.shape[1] != 3072:
                raise DataError(f"{source}:{info.folder}/{m}: data has shape {arr.shape}, expected (N, 3072)")
            data.append(arr.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(d[info.label_key], dtype=np.int64))
        splits[split] = (np.ascontiguousarray(np.concatenate(data)), np.concatenate(labels))
    return splits, classes
