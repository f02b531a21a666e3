"""Which samples each process sees, per epoch: shared by every backend."""
from __future__ import annotations

import torch

from fastkd.run.seeding import generator


def shard_indices(n: int, *, epoch: int, seed: int, rank: int, world: int, shuffle: bool) -> torch.Tensor:
    """Indices of process ``rank`` of ``world`` for one epoch.

    Training (``shuffle``): one permutation per epoch, identical on every process (seeded by seed
    and epoch only), cut into ``world`` equal contiguous blocks of n // world, so shards are
    disjoint and every process runs the same number of steps (DDP needs that); the n % world
    samples left over change from epoch to epoch.
    Evaluation: contiguous, unequal-by-at-most-one blocks covering all n samples exactly once.
    Drawn on the CPU, always: a CUDA generator gives another permutation from the same seed, and
    a run resumed on another kind of device must replay the same order.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world of {world}")
    if shuffle:
        perm = torch.randperm(n, generator=generator(seed, "shuffle", epoch))
        per = n // world
        return perm[rank * per:(rank + 1) * per]
    lo, hi = n * rank // world, n * (rank + 1) // world
    return torch.arange(lo, hi)


def batch_slices(count: int, batch_size: int, drop_last: bool):
    """(start, stop) of each batch over ``count`` items."""
    stop = count - count % batch_size if drop_last else count
    return [(s, min(s + batch_size, count)) for s in range(0, stop, batch_size)]
