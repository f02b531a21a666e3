"""Decode image files (from disk or an archive) into one uint8 array, in parallel threads."""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .arrays import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def decode_bytes(data: bytes, image_size: int | None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if image_size is not None and im.size != (image_size, image_size):
            im = resize_center_crop(im, image_size)
        return np.asarray(im, dtype=np.uint8)


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear), then take the central size x size crop."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def decode_all(names: Sequence[str], read: Callable[[str], bytes], *, image_size: int | None,
               on_corrupt: str, progress=None) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode every named image. Returns (images (M, H, W, 3), kept indices, skipped names).

    A file that cannot be decoded raises :class:`DataError` naming it, or, with
    ``on_corrupt="skip"``, is left out and reported in the skipped list.
    """
    def one(name):
        try:
            return decode_bytes(read(name), image_size)
        except Exception as exc:  # PIL raises many types for bad files
            if on_corrupt == "skip":
                return None
            raise DataError(f"{name}: cannot decode image ({type(exc).__name__}: {exc}); "
                            "fix or remove the file, or set data.on_corrupt=skip to leave such files out") from exc

    workers = min(16, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        results = []
        for arr in pool.map(one, names, chunksize=64):
            results.append(arr)
            if progress is not None:
                progress.update(1)
    kept = [i for i, a in enumerate(results) if a is not None]
    skipped = [names[i] for i, a in enumerate(results) if a is None]
    if not kept:
        raise DataError(f"no readable image among {len(names)} files (first: {names[0] if names else '-'})")
    shapes = {results[i].shape for i in kept}
    if len(shapes) > 1:
        first = {}
        for i in kept:
            first.setdefault(results[i].shape, names[i])
        examples = "; ".join(f"{s[1]}x{s[0]} e.g. {n}" for s, n in list(first.items())[:3])
        raise DataError(f"images have different sizes ({examples}); set data.image_size=N to resize "
                        "and centre-crop them to N x N")
    return np.stack([results[i] for i in kept]), kept, skipped
