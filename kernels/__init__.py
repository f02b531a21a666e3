"""Batched augmentation kernels that run where the batch lives (GPU, or CPU without one).

Installed as ``fastkd.kernels``. Every kernel takes whole batches and an optional
``torch.Generator`` so that a run's randomness is fully determined by its seed.
"""
