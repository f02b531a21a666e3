"""The Class-Discrimination metric of Das et al. 2020 (and Schilling et al.'s GDV).

Points are z-scored per dimension (population std) and scaled by 0.5; similarity is cosine.
CD = (mean intra-class similarity - mean inter-class similarity) / sqrt(D); higher means the
classes are more separated. With unit rows u_i and class sums S_c everything is O(N * D):

    clean:  intra(c) = (|S_c|^2 - sum_i |u_i|^2) / (n_c (n_c - 1)),   inter(a, b) = S_a . S_b / (n_a n_b)

``paper`` reproduces the authors' loops exactly (docs/protocol.md): the intra sum runs j
from i, so the first n_c - 1 self-pairs (value |u_i|^2, i.e. 1) are added, normaliser
2 / (n_c (n_c - 1)); the inter sum counts only pairs whose within-class indices satisfy j > i
(dataset order) yet divides by n_a n_b; both class averages divide by L, the number of distinct
*predicted* classes. The authors ran it on softmax outputs, where argmax(X) is the prediction;
on logits or features pass the network's ``predictions`` (otherwise L counts argmax feature
dimensions and the score means nothing). With L < 2 (a network predicting one class) the paper
variant is undefined. Suffix sums of each class's rows make it O(K * N * D), not O(N^2 D).

``gdv`` is the Generalized Discrimination Value (Schilling et al., arXiv 1811.01753): the same
z-scoring, Euclidean distance instead of cosine similarity, lower = better separated. Mean
pairwise distances have no closed form, so it is computed blockwise (O(N^2 D) time, O(block^2)
memory).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._arrays import check_features

VARIANTS = ("clean", "paper", "gdv")


class CDResult(NamedTuple):
    score: float
    intra: float  # mean over classes of the intra-class term (similarity; distance for gdv)
    inter: float  # mean over class pairs of the inter-class term
    variant: str


def _column_stats(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and population std in float64, in two streamed passes (the variance from
    deviations about the mean, so a large common offset does not cancel catastrophically)."""
    s1 = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for i in range(0, len(x), block):
        s1 += x[i:i + block].double().sum(0)
    mean = s1 / len(x)
    s2 = torch.zeros_like(s1)
    for i in range(0, len(x), block):
        c = x[i:i + block].double() - mean
        s2 += (c * c).sum(0)
    std = (s2 / len(x)).sqrt()
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def _standardize(x: torch.Tensor, stats=None) -> torch.Tensor:
    """z-score each column with the population std, times 0.5 (constant columns become 0)."""
    mean, std = stats if stats is not None else _column_stats(x, len(x))
    return 0.5 * (x.double() - mean) / std


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    norm = z.norm(dim=1, keepdim=True)
    return z / torch.where(norm > 0, norm, torch.ones_like(norm))  # a zero row stays zero (similarity 0)


class UndefinedMetric(ValueError):
    """The metric has no value for these inputs (e.g. the network predicts a single class)."""


def class_discrimination(features, labels, variant: str = "clean", *, predictions=None, block: int = 4096) -> CDResult:
    """Class-Discrimination score of ``features`` (N, D) with integer ``labels`` (N,).

    ``predictions`` (N class ids, optional) give the paper variant's L, the number of distinct
    predicted classes; without them L counts the distinct argmax columns of ``features`` (right
    for softmax outputs only).

    Numpy arrays or torch tensors (on any device); float64 accumulation; no N x N matrix.
    ``clean`` streams over row blocks (memory independent of N); ``paper`` and ``gdv`` hold one
    float64 copy of the features (8 N D bytes).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    x, y = check_features(features, labels)
    classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError("class discrimination needs at least two classes")
    d = x.shape[1]
    stats = _column_stats(x, block * 16)
    if variant == "clean":  # streamed: O(K * D + block * D) memory, any N
        intra, inter = _clean_terms(x, y, classes, stats, block * 16)
        L = None
    else:
        z = _standardize(x, stats)
        if variant == "gdv":
            return _gdv(z, y, classes, d, block)
        members = [torch.nonzero(y == c).flatten() for c in classes]  # dataset order within each class
        if min(len(m) for m in members) < 2:
            raise ValueError("the paper variant divides by n_c (n_c - 1): every class needs >= 2 points")
        pred = x.argmax(1) if predictions is None else torch.as_tensor(predictions).to(x.device).view(-1)
        if pred.shape != y.shape:
            raise ValueError(f"predictions must be (N,) with N={len(y)}, got shape {tuple(pred.shape)}")
        L = int(torch.unique(pred).numel())
        if L < 2:
            raise UndefinedMetric(f"undefined: the network predicts a single class (L = {L}), and the paper "
                                  "variant divides by L (L - 1) / 2")
        intra, inter = _paper_terms(_unit_rows(z), members)
    term1 = sum(intra) / (L if L is not None else len(intra))
    n_pairs = (L * (L - 1) / 2) if L is not None else len(inter)
    term2 = sum(inter) / n_pairs
    return CDResult((term1 - term2) / math.sqrt(d), term1, term2, variant)


def _clean_terms(x, y, classes, stats, block):
    k, d = len(classes), x.shape[1]
    slot = torch.searchsorted(classes, y)  # class index 0..K-1 of every point
    sums = torch.zeros(k, d, dtype=torch.float64, device=x.device)
    sq = torch.zeros(k, dtype=torch.float64, device=x.device)  # sum_i |u_i|^2 (n_c unless zero rows)
    for i in range(0, len(x), block):
        u = _unit_rows(_standardize(x[i:i + block], stats))
        sums.index_add_(0, slot[i:i + block], u)
        sq.index_add_(0, slot[i:i + block], (u * u).sum(1))
    n = torch.bincount(slot, minlength=k).double()
    # every class and pair at once, read to the host in one transfer (one sync, not one per pair)
    gram = sums @ sums.T
    several = n > 1
    intra = ((gram.diagonal() - sq) / (n * (n - 1)))[several]
    a, b = torch.triu_indices(k, k, offset=1, device=x.device)
    inter = gram[a, b] / (n[a] * n[b])
    return intra.tolist(), inter.tolist()


def _paper_terms(u, members):
    intra, inter = [], []
    rows = [u[m] for m in members]
    for r in rows:
        n = len(r)
        total = r.sum(0)
        pair_sum = (total @ total - (r * r).sum()) / 2  # sum over i < j
        self_pairs = (r[: n - 1] * r[: n - 1]).sum()  # j runs from i for i = 0 .. n-2
        intra.append(2.0 / (n * (n - 1)) * (pair_sum + self_pairs))
    # suffix[k] = sum of rows k .. n-1 of a class (zero past the end)
    suffix = [torch.cat([r.flip(0).cumsum(0).flip(0), torch.zeros_like(r[:1])]) for r in rows]
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            na, nb = len(rows[a]), len(rows[b])
            m = min(na, nb - 1)  # i with some j > i inside class b
            s = (rows[a][:m] * suffix[b][1:m + 1]).sum() if m > 0 else torch.zeros((), dtype=torch.float64,
                                                                                   device=u.device)
            inter.append(s / (na * nb))
    return _to_host(intra), _to_host(inter)


def _to_host(values: list) -> list[float]:
    """0-d tensors as floats, in one transfer (one sync, not one per class or pair)."""
    return torch.stack(values).tolist() if values else []


def _block_distance_sum(a: torch.Tensor, b: torch.Tensor, block: int, same: bool) -> torch.Tensor:
    """Sum of Euclidean distances over pairs (i in a, j in b), or over i < j when ``same``."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, len(a), block):
        ai = a[i:i + block]
        for j in range(i if same else 0, len(b), block):
            dist = torch.cdist(ai, b[j:j + block])
            if same and i == j:
                dist = torch.triu(dist, diagonal=1)
            total += dist.sum()
    return total


def _gdv(z, y, classes, d, block):
    groups = [z[y == c] for c in classes]
    intra = []
    for g in groups:
        n = len(g)
        if n > 1:
            intra.append(2.0 / (n * (n - 1)) * _block_distance_sum(g, g, block, same=True))
    inter = []
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            inter.append(_block_distance_sum(groups[a], groups[b], block, same=False) / (len(groups[a]) * len(groups[b])))
    intra, inter = _to_host(intra), _to_host(inter)
    term1, term2 = sum(intra) / len(intra), sum(inter) / len(inter)
    return CDResult((term1 - term2) / math.sqrt(d), term1, term2, "gdv")
