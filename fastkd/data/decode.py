"""Decode image files (from disk or an archive) into one uint8 array, on all cores."""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from .arrays import DataError
from ..run.child_processes import die_with_parent, worker_pool

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # data.max_pixels: a larger image is refused before its pixels are read
DRAFT_FROM_PIXELS = 16_000_000  # larger JPEGs are decoded at a reduced scale when they will be resized
_CHUNK = 1024
_PARALLEL_FROM = 4096  # below this, starting worker processes costs more than it saves


_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit greyscale (PNG ``I;16``/``I``) is scaled to 8 bits (/257) instead of
    being clipped to white as PIL's own conversion does; float images are refused."""
    if im.mode in _WIDE_GREY:
        a = np.asarray(im, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{im.mode} image with values outside 0..65535 (not a 16-bit image)")
        grey = np.round(a / 257.0).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if im.mode == "F":
        raise ValueError("floating-point image (mode F) has no defined 8-bit scale")
    return im.convert("RGB")


@contextlib.contextmanager
def open_image(source, *, max_pixels: int = MAX_PIXELS, target: int | None = None):
    """The PIL image of a path or bytes, refused when it has more than ``max_pixels`` (naming the
    limit) before its pixels are decoded: a 10000x10000 PNG cost 5 GB in a loader worker. PIL's
    own DecompressionBombWarning is never printed raw. With ``target`` (the size it will be resized
    to), a very large JPEG is decoded at a reduced scale (``Image.draft``), still at least four
    times the target on each side."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise ValueError(f"more pixels than data.max_pixels={max_pixels:,} allows ({exc})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ValueError(f"{w}x{h} is {w * h:,} pixels, more than data.max_pixels={max_pixels:,}; raise the "
                             "limit if such images are meant to be read")
        if target and w * h > DRAFT_FROM_PIXELS:
            im.draft("RGB", (4 * target, 4 * target))
        yield im


def decode_bytes(data: bytes, image_size: int | None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    with open_image(data, max_pixels=max_pixels, target=image_size) as im:
        im = to_rgb(im)
        if image_size is not None and im.size != (image_size, image_size):
            im = resize_center_crop(im, image_size)
        return np.asarray(im, dtype=np.uint8)


def resize_center_crop(im: Image.Image, size: int, crop_ratio: float = 1.0) -> Image.Image:
    """Resize the shorter side to ``round(size / crop_ratio)`` (bilinear), then take the central
    size x size crop. ``crop_ratio=224/256`` is the ImageNet evaluation transform."""
    w, h = im.size
    shorter = max(size, round(size / crop_ratio))
    scale = shorter / min(w, h)
    nw, nh = max(shorter, round(w * scale)), max(shorter, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


# Random-resized-crop as Inception training uses it (Szegedy et al. 2015) and every loader names it:
# area fraction U(0.08, 1), aspect ratio log-uniform in [3/4, 4/3], 10 attempts, else a central crop
# clamped to that ratio; DALI's fn.random_resized_crop and FFCV's decoder use the same defaults.
RRC_SCALE, RRC_RATIO, RRC_ATTEMPTS = (0.08, 1.0), (3 / 4, 4 / 3), 10
EVAL_CROP_RATIO = 224 / 256


def random_resized_crop(im: Image.Image, size: int, rng) -> Image.Image:
    w, h = im.size
    area = w * h
    lo, hi = np.log(RRC_RATIO[0]), np.log(RRC_RATIO[1])
    for _ in range(RRC_ATTEMPTS):
        target = area * rng.uniform(*RRC_SCALE)
        aspect = float(np.exp(rng.uniform(lo, hi)))
        cw, ch = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return im.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    ratio = w / h
    cw, ch = (w, int(round(w / RRC_RATIO[0]))) if ratio < RRC_RATIO[0] else \
        (int(round(h * RRC_RATIO[1])), h) if ratio > RRC_RATIO[1] else (w, h)
    x, y = (w - cw) // 2, (h - ch) // 2
    return im.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))


def _decode_chunk(sources: list, image_size: int | None, max_pixels: int = MAX_PIXELS) -> list:
    """Each source is a path (str) or the file's bytes; failures come back as error strings."""
    out = []
    for src in sources:
        try:
            data = open(src, "rb").read() if isinstance(src, str) else src
            out.append(decode_bytes(data, image_size, max_pixels))
        except Exception as exc:  # PIL raises many types for bad files
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def _fork_is_safe() -> bool:
    """Forking a process that runs CUDA or a process group's threads is unsafe, and spawn would
    re-run a user's unguarded script; so decode in forked workers only while neither exists."""
    if os.name != "posix":
        return False
    import sys
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    return not torch.cuda.is_initialized() and not (torch.distributed.is_available() and torch.distributed.is_initialized())


def decode_all(names: Sequence[str], sources: Sequence, *, image_size: int | None, on_corrupt: str,
               progress=None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode every image (``sources[i]`` is a path or bytes, ``names[i]`` its name for messages).

    Returns (images (M, H, W, 3), kept indices, skipped names). A file that cannot be decoded
    raises :class:`DataError` naming it, or, with ``on_corrupt="skip"``, is left out and listed.
    """
    chunks = [list(sources[s:s + _CHUNK]) for s in range(0, len(sources), _CHUNK)]
    workers = min(os.cpu_count() or 1, 16)
    results: list = []
    if len(sources) >= _PARALLEL_FROM and workers > 1 and _fork_is_safe():
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent,
                                   initargs=(os.getpid(),))
        with worker_pool(pool):
            for part in pool.map(_decode_chunk, chunks, [image_size] * len(chunks), [max_pixels] * len(chunks)):
                results += part
                if progress is not None:
                    progress.update(len(part))
    else:
        for chunk in chunks:
            results += _decode_chunk(chunk, image_size, max_pixels)
            if progress is not None:
                progress.update(len(chunk))
    failed = [i for i, r in enumerate(results) if isinstance(r, str)]
    if failed and on_corrupt != "skip":
        i = failed[0]
        raise DataError(f"{names[i]}: cannot decode image ({results[i]}); fix or remove the file, or set "
                        f"data.on_corrupt=skip to leave such files out ({len(failed)} unreadable in all)")
    kept = [i for i, r in enumerate(results) if not isinstance(r, str)]
    skipped = [names[i] for i in failed]
    if not kept:
        raise DataError(f"no readable image among {len(names)} files (first: {names[0] if names else '-'})")
    shapes = {results[i].shape for i in kept}
    if len(shapes) > 1:
        first: dict = {}
        for i in kept:
            first.setdefault(results[i].shape, names[i])
        examples = "; ".join(f"{s[1]}x{s[0]} e.g. {n}" for s, n in list(first.items())[:3])
        raise DataError(f"images have different sizes ({examples}); set data.image_size=N to resize "
                        "and centre-crop them to N x N")
    return np.stack([results[i] for i in kept]), kept, skipped
