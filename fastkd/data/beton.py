"""FFCV ``.beton`` files: ``fastkd data convert`` writes them, the ``ffcv`` backend reads them.

A converted data set is a directory holding ``<name>-train.beton``, ``<name>-test.beton`` and
``fastkd-beton.json`` (classes, normalisation, labels, source), so fastkd can list and split it
without opening FFCV's files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import MissingDependency, pip_hint
from ..run.atomic import write_atomic
from .arrays import DataError, ImageArrays
from .decode import open_image, resize_center_crop, to_rgb

META = "fastkd-beton.json"
STORAGE = ("raw", "jpeg")
def ffcv_hint() -> str:
    return ("the ffcv backend needs FFCV, which builds against system libraries: apt-get install pkg-config "
            f"libopencv-dev libturbojpeg0-dev (make system-deps), then {pip_hint('ffcv')}")


def ffcv_module():
    try:
        import ffcv  # noqa: F401
        return ffcv
    except ImportError:
        raise MissingDependency(ffcv_hint()) from None


class _Indexed:
    """(image HWC uint8, label) pairs as FFCV's writer reads them. A file listing (an ImageFolder
    tree) is decoded one image at a time in the writer's worker processes, so converting a tree
    larger than memory keeps memory flat; ``image_size`` resizes and centre-crops each image."""

    def __init__(self, data: ImageArrays, image_size: int | None = None):
        self.data, self.image_size = data, image_size

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        if self.data.decoded:
            return self.data.images[i], int(self.data.labels[i])
        with open_image(self.data.files[i], target=self.image_size) as im:
            im = to_rgb(im)
            if self.image_size and im.size != (self.image_size, self.image_size):
                im = resize_center_crop(im, self.image_size)
            return np.asarray(im, dtype=np.uint8), int(self.data.labels[i])


def convert(splits: dict[str, ImageArrays], out_dir, *, name: str, storage: str = "raw",
            max_resolution: int | None = None, jpeg_quality: int = 90, overwrite: bool = False,
            num_workers: int = -1, source: str = "", dataset: str | None = None,
            image_size: int | None = None) -> dict[str, Path]:
    """Write ``splits`` ("train", "test") as .beton files; returns their paths.

    Each file is written under a temporary name and renamed when complete, so an interrupted
    conversion never leaves a half-written file under the final name.
    """
    ffcv_module()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    if storage not in STORAGE:
        raise DataError(f"--storage: {storage!r} is not one of {', '.join(STORAGE)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = {s: out / f"{name}-{s}.beton" for s in ("train", "test")}
    existing = [str(p) for p in list(targets.values()) + [out / META] if p.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists; pass --overwrite to replace it")
    for split, path in targets.items():
        data = splits[split]
        if not data.decoded and not data.files:
            raise DataError(f"{split}: conversion needs decoded images or their files")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        field = RGBImageField(write_mode="raw" if storage == "raw" else "jpg", max_resolution=max_resolution,
                              jpeg_quality=jpeg_quality)
        try:
            DatasetWriter(str(tmp), {"image": field, "label": IntField()}, num_workers=num_workers).from_indexed_dataset(
                _Indexed(data, image_size), chunksize=256)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    train = splits["train"]
    meta = {"name": name, "dataset": dataset, "classes": train.classes, "mean": list(train.mean), "std": list(train.std),
            "storage": storage, "source": source, "files": {s: p.name for s, p in targets.items()},
            "labels": {s: splits[s].labels.tolist() for s in ("train", "test")},
            "image_shape": list(train.images.shape[1:]) if train.decoded else
            ([image_size, image_size, 3] if image_size else None)}
    write_atomic(out / META, json.dumps(meta), error=DataError, what="conversion listing")
    return targets


def read_listing(path, dataset: str | None = None) -> dict[str, ImageArrays]:
    """The splits of a converted directory as file-less listings (pixels stay in the .beton).
    ``dataset`` (data.name) must be the set the folder was converted from, when it says."""
    root = Path(path)
    meta_path = root / META
    if not meta_path.is_file():
        raise DataError(f"data.path: {root} holds no {META}; convert a data set first with "
                        f"`fastkd data convert --to beton ... --out {root}`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path}: unreadable ({exc}); convert the data set again") from exc
    if dataset is not None and meta.get("dataset") not in (None, dataset):
        raise DataError(f"data.name: {root} was converted from the {meta['dataset']!r} data set, not {dataset!r}; "
                        f"set data.name={meta['dataset']}")
    out = {}
    for split in ("train", "test"):
        beton = root / meta["files"][split]
        if not beton.is_file():
            raise DataError(f"{beton}: missing; convert the data set again")
        labels = np.asarray(meta["labels"][split], dtype=np.int64)
        out[split] = ImageArrays(np.zeros((len(labels), 0, 0, 3), dtype=np.uint8), labels, meta["classes"],
                                 tuple(meta["mean"]), tuple(meta["std"]), source=str(beton), rows=np.arange(len(labels)))
    return out


def check_beton(path: str, rows: np.ndarray) -> None:
    """Open a .beton with FFCV's reader; check its fields, that it holds ``rows``, and that it is
    complete (a truncated file fails here, not mid-epoch)."""
    ffcv_module()
    from ffcv.reader import Reader
    try:
        reader = Reader(path)
        reader.read_allocation_table()
    except Exception as exc:  # FFCV raises assorted errors for damaged headers
        raise DataError(f"{path}: not a readable .beton file ({type(exc).__name__}: {exc}); convert it again") from exc
    names = list(reader.field_names)
    if names[:2] != ["image", "label"]:
        raise DataError(f"{path}: fields are {names}, expected ['image', 'label'] (written by fastkd data convert)")
    if len(rows) and int(rows.max()) >= reader.num_samples:
        raise DataError(f"{path}: holds {reader.num_samples} samples, its listing needs row {int(rows.max())}; "
                        "convert it again")
    size = os.path.getsize(path)
    table_at = int(reader.header["alloc_table_ptr"])
    table = reader.alloc_table
    # fastkd's files allocate one image blob per sample, and FFCV writes the table last: a file
    # cut short loses table rows (or blob bytes the table points to)
    if (size - table_at) % 24 or len(table) < reader.num_samples or \
            (len(table) and int((table["ptr"] + table["size"]).max()) > table_at):
        raise DataError(f"{path}: truncated or damaged ({size} bytes; allocation table at {table_at} with "
                        f"{len(table)} of {reader.num_samples} entries); convert it again")
