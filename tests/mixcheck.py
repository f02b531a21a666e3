"""Checks shared by the backend tests: mixed batches against the same samples unmixed."""
import torch


def check_mixed_batch(batch, plain: dict, labels, num_classes: int, augment: str, per_sample: bool) -> None:
    """Each row of ``batch`` is its own image (from ``plain``, keyed by data-set index) mixed with
    one partner from the batch: a convex combination (MixUp) or one pasted box (CutMix), with a
    soft target matching the mixing weight; per-batch MixUp draws one weight for all rows."""
    batch_idx = batch.index.tolist()
    lams = set()
    for row in range(len(batch)):
        out, own = batch.images[row], plain[batch_idx[row]]
        if (out - own).abs().max() < 1e-5:
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
    if augment == "mixup" and len(lams) > 1:
        assert per_sample, "per-batch MixUp must use one weight for the whole batch"
