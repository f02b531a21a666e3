"""Helpers shared by several test files (data the tests build themselves)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

# Device-parametrised tests: the "cuda" variant runs only where a GPU is visible (the prepared
# device check, scripts/device_check.sh); on CPU-only machines it is reported as skipped.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# Tensor methods that hand a value to the host (each a device sync on a GPU)
HOST_SYNCING = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


class HostSyncCounter:
    """Counts the host-synchronising tensor calls (``HOST_SYNCING``) made while ``active``."""

    def __init__(self, monkeypatch):
        self.count, self.active = 0, False
        for name in HOST_SYNCING:
            real = getattr(torch.Tensor, name)

            def counting(tensor, *a, _real=real, **k):
                if self.active:
                    self.count += 1
                return _real(tensor, *a, **k)
            monkeypatch.setattr(torch.Tensor, name, counting)


def seeded(device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def kill_at_loss_call(monkeypatch, n: int):
    """Make the n-th training step of the next run raise KeyboardInterrupt (a kill); returns the
    real loss method, to put back before resuming."""
    from fastkd.train import engine
    real = engine.Trainer._loss
    calls = {"n": 0}

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, batch)
    monkeypatch.setattr(engine.Trainer, "_loss", dying)
    return real


# A two-teacher grid that trains in seconds: the study tests start from it
TINY_STUDY = {"teacher_preset": "smoke", "student_preset": "smoke",
              "common": {"data.limit_train": 128, "data.limit_test": 100, "train.epochs": 1, "train.batch_size": 32,
                         "data.eval_batch_size": 100},
              "teacher": {"augment": "none"}, "student": {"augment": "none"},
              "teachers": ["resnet8"], "augments": ["none", "mixup"], "students": ["lenet"], "distill": {"kd": {}},
              "scratch": False, "knn_k": 5, "cd_variants": ["clean"]}


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


def check_mixed_batch(batch, plain: dict, labels, num_classes: int, augment: str, per_sample: bool,
                      min_mixed: float = 0.5) -> None:
    """Each row of ``batch`` is its own image (from ``plain``, keyed by data-set index) mixed with
    one partner from the batch: a convex combination (MixUp) or one pasted box (CutMix), with a
    soft target matching the mixing weight; per-batch MixUp draws one weight for all rows. At
    least ``min_mixed`` of the rows must actually be mixed: a backend that stopped mixing fails."""
    batch_idx = batch.index.tolist()
    lams = set()
    unmixed = 0
    for row in range(len(batch)):
        out, own = batch.images[row], plain[batch_idx[row]]
        if (out - own).abs().max() < 1e-5:
            unmixed += 1
            continue  # paired with itself (or an empty box): nothing to identify
        best = None
        for j in batch_idx:
            if j == batch_idx[row]:
                continue
            other = plain[j]
            if augment == "mixup":
                diff = own - other
                lam = ((out - other) * diff).sum() / (diff * diff).sum().clamp_min(1e-12)
                ok = (out - (lam * own + (1 - lam) * other)).abs().max() < 1e-4
            else:
                from_own, from_other = (out - own).abs().amax(0) < 1e-5, (out - other).abs().amax(0) < 1e-5
                ok = bool((from_own | from_other).all())
                lam = from_own.float().mean()
            if ok:
                best = (j, float(lam))
        assert best is not None, "each row must combine its own image with one partner from the batch"
        j, lam = best
        if labels[j] != labels[batch_idx[row]]:
            expect = torch.zeros(num_classes)
            expect[labels[batch_idx[row]]] += lam
            expect[labels[j]] += 1 - lam
            torch.testing.assert_close(batch.targets[row], expect, atol=2e-3, rtol=0)
            lams.add(round(lam, 3))
    assert unmixed <= (1 - min_mixed) * len(batch), f"only {len(batch) - unmixed} of {len(batch)} rows were mixed"
    if augment == "mixup" and len(lams) > 1:
        assert per_sample, "per-batch MixUp must use one weight for the whole batch"
