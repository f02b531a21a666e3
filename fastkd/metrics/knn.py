"""k-nearest-neighbour metrics of a latent space: label purity and k-NN classification accuracy.

Search backends: FAISS on the GPU when the installed faiss has GPU support and the data is on a
GPU, faiss-cpu otherwise, and a torch brute force (chunked matmul + top-k, on the data's device)
when faiss is absent or asked for; the brute force is also the reference the tests use.
Exact search by default; ``index="ivf"`` uses an inverted-file index for millions of points.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._arrays import as_tensor, check_features
from ..errors import MissingDependency

METRICS = ("cosine", "l2")
FAISS_GPU_MAX_K = 2048  # FAISS GPU indexes cannot return more neighbours per query
CPU_CHUNK_BYTES = 256 << 20  # the brute force's similarity block on a CPU
DEVICE_SHARE = 0.25  # ... and on a GPU: this share of the device's free memory


def _faiss():
    try:
        import faiss  # noqa: F401
        return faiss
    except ImportError:
        return None


def _faiss_has_gpu(faiss) -> bool:
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 -- a broken GPU build counts as none
        return False


def _prepare(x: torch.Tensor, metric: str) -> torch.Tensor:
    x = x.float()
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return x


def query_chunk(n_base: int, budget_bytes: int) -> int:
    """Queries per block of the brute force: a block holds a (chunk, n_base) float32 similarity
    matrix and top-k's working copy of it within ``budget_bytes`` (a fixed 4,096 queries was 16 GB
    a block at a million points)."""
    return max(1, int(budget_bytes // (2 * 4 * max(n_base, 1))))


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        return int(DEVICE_SHARE * torch.cuda.mem_get_info(device)[0])
    return CPU_CHUNK_BYTES


def _torch_search(base: torch.Tensor, queries: torch.Tensor, k: int, metric: str, chunk: int):
    """(scores, ids) of the k best base rows per query; higher score = nearer."""
    base_sq = (base * base).sum(1) if metric == "l2" else None
    out_s, out_i = [], []
    for s in range(0, len(queries), chunk):
        q = queries[s:s + chunk]
        sim = q @ base.T
        if metric == "l2":  # -(|q|^2 - 2 q.b + |b|^2): the |q|^2 term does not change the ranking
            sim = 2 * sim - base_sq
        v, i = sim.topk(k, dim=1)
        out_s.append(v)
        out_i.append(i)
    return torch.cat(out_s), torch.cat(out_i)


def _faiss_search(faiss, base: torch.Tensor, queries: torch.Tensor, k: int, metric: str, index: str, nlist, nprobe):
    b = np.ascontiguousarray(base.detach().cpu().numpy(), dtype=np.float32)
    q = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
    d = b.shape[1]
    measure = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    flat = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    idx = flat
    if index == "ivf":  # the flat index serves as the coarse quantizer
        nlist = nlist or max(1, int(4 * math.sqrt(len(b))))
        idx = faiss.IndexIVFFlat(flat, d, nlist, measure)
        idx.train(b[np.random.default_rng(0).permutation(len(b))[: max(nlist * 40, 10000)]])
        idx.nprobe = nprobe or min(16, nlist)  # FAISS default is 1; 16 keeps recall high at modest cost
    use_gpu = base.is_cuda and _faiss_has_gpu(faiss) and k <= FAISS_GPU_MAX_K
    if use_gpu:
        idx = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), base.device.index or 0, idx)
    idx.add(b)
    dist, ids = idx.search(q, k)
    scores = torch.from_numpy(dist if metric == "cosine" else -dist)
    return scores, torch.from_numpy(ids).long()


def knn_search(base, queries, k: int, *, metric: str = "cosine", backend: str = "auto", index: str = "flat",
               nlist: int | None = None, nprobe: int | None = None, chunk: int | None = None):
    """Indices (Q, k) of each query's k nearest base rows, nearest first, and their scores.

    backend: "auto" (faiss if importable, else torch; for CUDA data, faiss only when it has GPU
    support, else the torch brute force on the GPU), "faiss" or "torch". On a GPU with a k beyond
    FAISS's GPU limit the torch path (exact, chunked) is used. ``chunk``: queries per block of the
    torch path (default: sized from the device's memory, see :func:`query_chunk`).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if index not in ("flat", "ivf"):
        raise ValueError(f"index must be 'flat' or 'ivf', got {index!r}")
    base_t, q_t = as_tensor(base), as_tensor(queries)
    q_t = q_t.to(base_t.device)
    if k > len(base_t):
        raise ValueError(f"k={k} exceeds the {len(base_t)} base points")
    faiss = _faiss() if backend in ("auto", "faiss") else None
    if backend == "auto" and faiss is not None and base_t.is_cuda and not _faiss_has_gpu(faiss):
        faiss = None  # data on a GPU and a CPU-only FAISS: the torch brute force on the GPU is far faster
    if backend == "faiss" and faiss is None:
        raise MissingDependency("backend='faiss' but faiss is not installed: pip install 'fastkd[faiss-cpu]' (or faiss-gpu)")
    base_p, q_p = _prepare(base_t, metric), _prepare(q_t, metric)
    if faiss is not None and not (base_t.is_cuda and k > FAISS_GPU_MAX_K and backend != "faiss"):
        return _faiss_search(faiss, base_p, q_p, k, metric, index, nlist, nprobe)
    if index == "ivf":
        raise ValueError("index='ivf' needs faiss; install it or use index='flat'")
    chunk = chunk or query_chunk(len(base_p), _memory_budget(base_p.device))
    s, i = _torch_search(base_p, q_p, k, metric, chunk)
    return s.cpu(), i.cpu()


def _neighbours_without_self(features, k, metric, **kw) -> torch.Tensor:
    """Each point's k nearest other points: search k + 1 and drop the point itself."""
    _, ids = knn_search(features, features, k + 1, metric=metric, **kw)
    own = torch.arange(len(ids)).unsqueeze(1)
    not_self = ids != own
    # where the point itself is not among the k + 1 (duplicates), drop the farthest instead
    missing = not_self.all(1)
    not_self[missing, -1] = False
    return ids[not_self].view(len(ids), k)


def knn_purity(features, labels, k: int = 10, metric: str = "cosine", **kw) -> float:
    """Mean share of each point's k nearest neighbours (itself excluded) that share its label."""
    x, y = check_features(features, labels)
    if k < 1 or k >= len(x):
        raise ValueError(f"k must be in [1, N-1], got {k} for N={len(x)}")
    ids = _neighbours_without_self(x, k, metric, **kw)
    y = y.cpu()
    return (y[ids] == y.unsqueeze(1)).double().mean().item()


def vote(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Majority vote per row (neighbours nearest first); a tie goes to the tied class whose
    nearest member ranks first. Rank r adds 2^-(r+1) on top of its vote: all of them together
    stay below one vote, and each outweighs every rank after it."""
    k = neighbour_labels.shape[1]
    weights = 1.0 + 0.5 ** (torch.arange(k, dtype=torch.float64) + 1)
    votes = torch.zeros(len(neighbour_labels), num_classes, dtype=torch.float64)
    votes.scatter_add_(1, neighbour_labels, weights.expand_as(neighbour_labels).contiguous())
    return votes.argmax(1)


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 10, metric: str = "cosine", **kw) -> float:
    """k-NN majority-vote classification accuracy of the test points against the train points."""
    xb, yb = check_features(train_features, train_labels)
    xq, yq = check_features(test_features, test_labels)
    if xb.shape[1] != xq.shape[1]:
        raise ValueError(f"train and test features differ in dimension: {xb.shape[1]} vs {xq.shape[1]}")
    _, ids = knn_search(xb, xq, k, metric=metric, **kw)
    yb, yq = yb.cpu(), yq.cpu()
    num_classes = int(max(yb.max(), yq.max())) + 1
    pred = vote(yb[ids], num_classes)
    return (pred == yq).double().mean().item()
