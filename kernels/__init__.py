"""Batched augmentation kernels that run where the batch lives (GPU, or CPU without one).

Installed as ``fastkd.kernels``. Every kernel takes whole batches and an optional
``torch.Generator`` so that a run's randomness is fully determined by its seed.
"""
import fastkd as _fastkd

_fastkd.check_same_tree(__file__)

