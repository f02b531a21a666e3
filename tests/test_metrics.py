import math

import numpy as np
import pytest
import torch

from fastkd.metrics import calibration, class_discrimination, fidelity, knn_accuracy, knn_purity, knn_search
from fastkd.metrics.knn import vote


def _data(seed=0, n=(7, 12, 5, 9), d=6, shuffle=True):
    """Unequal class sizes, classes interleaved in random dataset order, some class signal."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(m, c) for c, m in enumerate(n)])
    if shuffle:
        labels = rng.permutation(labels)
    centres = rng.normal(size=(len(n), d))
    x = centres[labels] + rng.normal(scale=1.5, size=(len(labels), d))
    return x, labels


def _zscore_half(x):
    x = np.asarray(x, np.float64)
    return 0.5 * (x - x.mean(0)) / x.std(0)


def _cos(a, b):
    return float(a @ b / (math.sqrt(a @ a) * math.sqrt(b @ b)))


def authors_loops(x, labels, predictions=None):
    """A direct transcription of the authors' double loops, quirks included (docs/protocol.md);
    L counts the distinct predicted classes (argmax of x, as the authors ran it on softmax)."""
    z = _zscore_half(x)
    classes = sorted(set(labels.tolist()))
    L = len(set((np.asarray(x).argmax(1) if predictions is None else np.asarray(predictions)).tolist()))
    members = {c: [z[i] for i in range(len(z)) if labels[i] == c] for c in classes}
    intra_total = 0.0
    for c in classes:
        pts, n = members[c], len(members[c])
        s = 0.0
        for i in range(n - 1):
            for j in range(i, n):  # j from i: the self-pair (i, i) is counted
                s += _cos(pts[i], pts[j])
        intra_total += 2.0 / (n * (n - 1)) * s
    inter_total = 0.0
    for ai, a in enumerate(classes):
        for b in classes[ai + 1:]:
            pa, pb = members[a], members[b]
            s = 0.0
            for i in range(len(pa)):
                for j in range(len(pb)):
                    if j > i:
                        s += _cos(pa[i], pb[j])
            inter_total += s / (len(pa) * len(pb))
    term1 = intra_total / L
    term2 = inter_total / (L * (L - 1) / 2)
    return (term1 - term2) / math.sqrt(z.shape[1]), term1, term2


def pairwise_reference(x, labels, dist=False):
    """Float64 full pairwise matrix: the intended metric (clean, or GDV with Euclidean distances)."""
    z = _zscore_half(x)
    if dist:
        m = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    else:
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        m = u @ u.T
    classes = sorted(set(labels.tolist()))
    intra = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        sub = m[np.ix_(idx, idx)]
        intra.append(sub[np.triu_indices(len(idx), 1)].mean())
    inter = [m[np.ix_(np.flatnonzero(labels == a), np.flatnonzero(labels == b))].mean()
             for i, a in enumerate(classes) for b in classes[i + 1:]]
    t1, t2 = np.mean(intra), np.mean(inter)
    return (t1 - t2) / math.sqrt(z.shape[1]), t1, t2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_variant_reproduces_the_authors_loops(seed):
    x, y = _data(seed)
    ref = authors_loops(x, y)
    r = class_discrimination(x, y, "paper")
    assert (r.score, r.intra, r.inter) == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_paper_variant_uses_predicted_class_count():
    # features whose argmax only ever hits 2 of 6 dimensions: L = 2 in the normalisers
    x, y = _data(3, n=(6, 8, 5), d=6)
    x[:, 2:] -= 100
    assert len(set(x.argmax(1).tolist())) == 2
    assert class_discrimination(x, y, "paper").score == pytest.approx(authors_loops(x, y)[0], rel=1e-10)


@pytest.mark.parametrize("seed,block", [(0, 4096), (4, 4096), (4, 1)])  # block 1: streams 16 rows at a time
def test_clean_variant_matches_float64_pairwise_reference(seed, block):
    x, y = _data(seed, n=(30, 11, 17, 2, 25), d=10)
    r = class_discrimination(torch.tensor(x, dtype=torch.float32), torch.tensor(y), "clean", block=block)
    ref = pairwise_reference(x.astype(np.float32), y)
    assert (r.score, r.intra, r.inter) == pytest.approx(ref, rel=1e-6)


def test_clean_and_paper_differ_and_separation_raises_score():
    x, y = _data(0)
    assert class_discrimination(x, y, "clean").score != pytest.approx(class_discrimination(x, y, "paper").score)
    rng = np.random.default_rng(0)
    y2 = np.repeat(np.arange(4), 50)
    noisy = rng.normal(size=(200, 8))
    separated = noisy + 4 * np.eye(8)[y2]
    assert class_discrimination(separated, y2).score > class_discrimination(noisy, y2).score + 0.05


def test_gdv_matches_pairwise_euclidean_reference_blockwise():
    x, y = _data(5, n=(20, 13, 9), d=5)
    r = class_discrimination(x, y, "gdv", block=7)  # blocks smaller than classes exercise the tiling
    assert (r.score, r.intra, r.inter) == pytest.approx(pairwise_reference(x, y, dist=True), rel=1e-10)
    assert r.score < 0  # GDV: lower (more negative) = better separated


def test_paper_variant_on_features_takes_L_from_the_predictions():
    # 24-d "features": argmax over dimensions is not a class; the network's predictions are
    x, y = _data(6, n=(9, 7, 11, 8), d=24)
    preds = np.where(np.arange(len(y)) % 5 == 0, (y + 1) % 4, y)  # 4 predicted classes
    assert len(set(x.argmax(1).tolist())) > 4
    r = class_discrimination(x, y, "paper", predictions=preds)
    assert (r.score, r.intra, r.inter) == pytest.approx(authors_loops(x, y, preds), rel=1e-10, abs=1e-12)
    three = np.where(preds == 3, 0, preds)  # a network that never predicts class 3: L = 3
    assert class_discrimination(x, y, "paper", predictions=three).score == \
        pytest.approx(authors_loops(x, y, three)[0], rel=1e-10)


def test_single_predicted_class_is_undefined_not_a_crash():
    from fastkd.metrics.analysis import analyze_outputs
    from fastkd.metrics.discrimination import UndefinedMetric
    x, y = _data(0)
    with pytest.raises(UndefinedMetric, match="single class"):
        class_discrimination(x, y, "paper", predictions=np.zeros(len(y), int))
    logits = np.tile([[5.0, 0, 0, 0]], (len(y), 1)) + np.random.default_rng(0).normal(0, 0.01, (len(y), 4))
    a = analyze_outputs({"labels": y, "logits": logits, "features": x}, knn_k=3, cd_variants=("paper", "clean"))
    assert "single class" in a["class_discrimination"]["softmax"]["paper"]["undefined"]
    assert "score" in a["class_discrimination"]["softmax"]["clean"]


@pytest.mark.parametrize("variant", ["clean", "paper", "gdv"])
def test_common_offset_does_not_change_the_score(variant):
    x, y = _data(7, n=(12, 9, 14), d=5)
    base = class_discrimination(x, y, variant).score
    for offset in (1e6, 1e8):
        shifted = class_discrimination(x + offset, y, variant, predictions=x.argmax(1)).score
        assert shifted == pytest.approx(base, rel=1e-7), offset


def test_metric_errors():
    x, y = _data(0)
    with pytest.raises(ValueError, match="variant"):
        class_discrimination(x, y, "fancy")
    with pytest.raises(ValueError, match=">= 2 points"):
        class_discrimination(x[:8], np.r_[np.zeros(7), 1], "paper")


def brute_neighbours(base, queries, k, metric):
    b, q = np.asarray(base, np.float64), np.asarray(queries, np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        score = q @ b.T
    else:
        score = -((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_knn_search_equals_brute_force(backend, metric):
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    base, q = rng.normal(size=(300, 12)).astype(np.float32), rng.normal(size=(50, 12)).astype(np.float32)
    _, ids = knn_search(base, q, 7, metric=metric, backend=backend, chunk=16)
    np.testing.assert_array_equal(ids.numpy(), brute_neighbours(base, q, 7, metric))


def test_knn_blocks_are_sized_from_a_memory_budget(monkeypatch):
    from fastkd.metrics import knn
    # a million base points and a 1 GiB budget: 134 queries a block (a fixed 4,096 was 16 GB)
    assert knn.query_chunk(1_000_000, 1 << 30) == 134 and knn.query_chunk(10, 1 << 30) > 4096
    assert knn.query_chunk(10**12, 1) == 1  # never zero
    # a tiny budget (one query a block) gives the same neighbours as the brute force
    monkeypatch.setattr(knn, "CPU_CHUNK_BYTES", 1)
    rng = np.random.default_rng(2)
    base, q = rng.normal(size=(90, 5)).astype(np.float32), rng.normal(size=(13, 5)).astype(np.float32)
    _, ids = knn_search(base, q, 4, backend="torch")
    np.testing.assert_array_equal(ids.numpy(), brute_neighbours(base, q, 4, "cosine"))


def test_knn_purity_and_accuracy_equal_loop_references():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 240)
    x = rng.normal(size=(240, 6)) + 1.5 * np.eye(6)[y]
    k = 5
    nb = brute_neighbours(x, x, k + 1, "cosine")
    purity = np.mean([np.mean(y[[j for j in row if j != i][:k]] == y[i]) for i, row in enumerate(nb)])
    for backend in ("torch", "faiss"):
        if backend == "faiss":
            pytest.importorskip("faiss")
        assert knn_purity(x, y, k, backend=backend) == pytest.approx(purity)
    tr, te = slice(0, 180), slice(180, None)
    nb = brute_neighbours(x[tr], x[te], k, "l2")
    pred = []
    for row in nb:  # majority, ties to the class that ranks nearest
        labels = y[tr][row]
        counts = np.bincount(labels, minlength=4)
        tied = np.flatnonzero(counts == counts.max())
        pred.append(next(c for c in labels if c in tied))
    acc = np.mean(np.array(pred) == y[te])
    assert knn_accuracy(x[tr], y[tr], x[te], y[te], k, metric="l2", backend="torch") == pytest.approx(acc)


def test_vote_tie_goes_to_nearest_class():
    assert vote(torch.tensor([[2, 1, 1, 2]]), 3).item() == 2
    assert vote(torch.tensor([[2, 1, 1, 0]]), 3).item() == 1


def test_purity_ignores_self_even_with_duplicates():
    x = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    assert knn_purity(x, np.array([0, 0, 1, 1]), k=1, backend="torch") == 1.0


def test_calibration_matches_loop_reference():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3, size=(500, 10))
    y = rng.integers(0, 10, 500)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    ece, gaps = 0.0, []
    for b in range(10):
        inside = (conf > b / 10) & (conf <= (b + 1) / 10)
        if inside.any():
            gap = abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
            ece += inside.mean() * gap
            gaps.append(gap)
    nll = -np.mean(np.log(p[np.arange(500), y]))
    c = calibration(logits, y)
    assert c["ece"] == pytest.approx(ece) and c["mce"] == pytest.approx(max(gaps)) and c["nll"] == pytest.approx(nll)


def test_fidelity_against_float64_formula():
    rng = np.random.default_rng(3)
    t, s = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    pt = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    ps = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    f = fidelity(t, s)
    assert f["kl"] == pytest.approx(np.mean((pt * np.log(pt / ps)).sum(1)))
    assert f["agreement"] == pytest.approx(np.mean(t.argmax(1) == s.argmax(1)))
    assert fidelity(t, t)["kl"] == pytest.approx(0, abs=1e-12)


def test_faiss_ivf_with_all_lists_probed_is_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    base, q = rng.normal(size=(400, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    _, ids = knn_search(base, q, 5, metric="l2", backend="faiss", index="ivf", nlist=4, nprobe=4)
    np.testing.assert_array_equal(ids.numpy(), brute_neighbours(base, q, 5, "l2"))


def test_knn_without_faiss_falls_back_to_torch(monkeypatch):
    from fastkd.metrics import knn as knn_mod
    monkeypatch.setattr(knn_mod, "_faiss", lambda: None)
    rng = np.random.default_rng(6)
    base = rng.normal(size=(100, 4)).astype(np.float32)
    _, ids = knn_search(base, base[:10], 3)
    np.testing.assert_array_equal(ids.numpy(), brute_neighbours(base, base[:10], 3, "cosine"))
    with pytest.raises(ImportError, match="faiss-cpu"):
        knn_search(base, base, 3, backend="faiss")
    with pytest.raises(ValueError, match="ivf"):
        knn_search(base, base, 3, index="ivf")


def test_run_analysis_gives_the_same_numbers_on_the_device(device):
    from fastkd.metrics.analysis import analyze_outputs
    x, y = _data(2, n=(30, 25, 20), d=12)
    rng = np.random.default_rng(0)
    outputs = {"labels": y, "logits": rng.normal(size=(len(y), 3)) + 2 * np.eye(3)[y], "features": x,
               "teacher_logits": rng.normal(size=(len(y), 3))}
    on_host = analyze_outputs(outputs, knn_k=4, cd_variants=("paper", "clean"), device="cpu")
    there = analyze_outputs(outputs, knn_k=4, cd_variants=("paper", "clean"), device=device)
    ref = class_discrimination(x, y, "paper", predictions=outputs["logits"].argmax(1))
    assert there["class_discrimination"]["features"]["paper"]["score"] == pytest.approx(ref.score, rel=1e-9)
    assert there["knn"] == pytest.approx(on_host["knn"]) and there["calibration"] == pytest.approx(on_host["calibration"])
    assert there["fidelity"] == pytest.approx(on_host["fidelity"])


@pytest.mark.parametrize("variant", ["clean", "paper", "gdv"])
def test_class_discrimination_reads_its_terms_to_the_host_at_once(variant, monkeypatch):
    # one host transfer per term list, not one per class or class pair (K^2 / 2 device syncs on a GPU)
    from helpers import HostSyncCounter
    counts = {}
    for k in (3, 12):
        rng = np.random.default_rng(k)
        y = np.repeat(np.arange(k), 6)
        x = rng.normal(size=(len(y), 5)) + np.eye(5)[y % 5]
        counter = HostSyncCounter(monkeypatch)
        counter.active = True
        class_discrimination(x, y, variant, predictions=y)
        counts[k] = counter.count
        monkeypatch.undo()
    assert counts[12] == counts[3], counts
