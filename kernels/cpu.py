"""numba kernels for per-sample CPU transforms (used by the FFCV backend's operations).

Randomness is a pure function of (seed, sample index, draw number) through splitmix64
(Steele et al. 2014), so results do not depend on thread scheduling or batch composition: a
seeded run is reproducible however many worker threads decode it.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@intrinsic
def _as_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return nb.types.voidptr(address), codegen


@nb.njit(inline="always")
def read_int64(address):
    """The int64 stored at ``address`` now (see ``RuntimeSeed``)."""
    return nb.carray(_as_pointer(address), 1, np.int64)[0]


class RuntimeSeed:
    """A seed that compiled kernels read when they run, from a fixed address.

    numba freezes the values a compiled function captures (closure variables, global arrays) into
    the machine code, so capturing the seed itself would force a recompile whenever it changes;
    the FFCV backend compiles its pipeline once per run and sets a new seed each epoch. Kernels
    capture ``address`` (constant) and call ``read_int64(address)``; the array is kept alive here.
    """

    def __init__(self, value: int = 0):
        self._cell = np.array([value], dtype=np.int64)
        self.address = self._cell.ctypes.data

    @property
    def value(self) -> int:
        return int(self._cell[0])

    def set(self, value: int) -> None:
        self._cell[0] = value


@nb.njit(inline="always")
def splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def draw(seed, index, k):
    """The k-th 64-bit random word of sample ``index`` under ``seed``."""
    return splitmix64(splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(index))) + np.uint64(k))


@nb.njit(inline="always")
def draw_int(seed, index, k, high):
    """Uniform integer in [0, high) (modulo bias below 2^-50 for the small ranges used here)."""
    return np.int64(draw(seed, index, k) % np.uint64(high))


@nb.njit(inline="always")
def crop_flip_draws(seed, index, pad, flip):
    """(oy, ox, flipped) of sample ``index``: offsets uniform in [0, 2 pad], flip with p = 0.5."""
    oy = draw_int(seed, index, 0, 2 * pad + 1)
    ox = draw_int(seed, index, 1, 2 * pad + 1)
    return oy, ox, flip and draw_int(seed, index, 2, 2) == 1


@nb.njit(inline="always")
def cutout_centre(seed, index, hole, height, width):
    """Centre (cy, cx) of cutout hole ``hole`` of sample ``index``, uniform over the pixels."""
    return draw_int(seed, index, 16 + 2 * hole, height), draw_int(seed, index, 17 + 2 * hole, width)


@nb.njit(inline="always")
def pad_crop_flip_one(src, dst, pad, oy, ox, flip):
    """dst (H, W, C) = the (oy, ox) window of src zero-padded by ``pad``, mirrored if ``flip``."""
    h, w, c = src.shape
    for r in range(h):
        sr = r + oy - pad
        for col in range(w):
            sc = (w - 1 - col if flip else col) + ox - pad
            if 0 <= sr < h and 0 <= sc < w:
                for ch in range(c):
                    dst[r, col, ch] = src[sr, sc, ch]
            else:
                for ch in range(c):
                    dst[r, col, ch] = 0


@nb.njit(inline="always")
def cutout_one(img, cy, cx, size, fill):
    """Set the size x size square starting at (cy - size // 2, cx - size // 2), clipped, to fill."""
    h, w, c = img.shape
    y1, x1 = max(cy - size // 2, 0), max(cx - size // 2, 0)
    y2, x2 = min(cy - size // 2 + size, h), min(cx - size // 2 + size, w)
    for r in range(y1, y2):
        for col in range(x1, x2):
            for ch in range(c):
                img[r, col, ch] = fill


# The per-batch loops of the FFCV operations. FFCV compiles the function an operation returns
# with its own parallel iterator (``loop``); the same source compiled with ``range`` is what the
# tests run, so the tested loop is the production loop. Parameters are closed over (numba bakes
# them in); the epoch's seed is read at run time from ``seed_address`` (a RuntimeSeed).
def pad_crop_flip_op(loop, pad: int, flip: bool, seed_address: int):
    """(images (N, H, W, C), dst, indices) -> dst: zero-pad, random crop, flip, per (seed, index)."""
    def pad_crop_flip(images, dst, indices):
        seed = read_int64(seed_address)
        for i in loop(images.shape[0]):
            oy, ox, f = crop_flip_draws(seed, np.int64(indices[i]), pad, flip)
            pad_crop_flip_one(images[i], dst[i], pad, oy, ox, f)
        return dst
    return pad_crop_flip


def cutout_op(loop, size: int, holes: int, seed_address: int, fill: int = 0):
    """(images, dst, indices) -> images, cut out in place: ``holes`` squares per sample."""
    def cutout(images, dst, indices):
        seed = read_int64(seed_address)
        h, w = images.shape[1], images.shape[2]
        for i in loop(images.shape[0]):
            for k in range(holes):
                cy, cx = cutout_centre(seed, np.int64(indices[i]), k, h, w)
                cutout_one(images[i], cy, cx, size, fill)
        return images
    return cutout
