"""Helpers shared by several test files (data the tests build themselves)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def make_tree(root, sizes=None, n=(6, 3), classes=("ant", "bee", "cat")):
    """An ImageFolder tree of PNGs (lossless, so pixels can be compared exactly)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "test"), n):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(count):
                hw = (sizes or {}).get((split, c, i), (8, 8))
                a = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i:03d}.png")
                arrays[str(d / f"{i:03d}.png")] = a
    return arrays
