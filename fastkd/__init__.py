"""fastkd: knowledge distillation x data augmentation studies on GPU-resident data pipelines."""

__version__ = "0.1.0"

# fastkd/pipelines and fastkd/kernels are links to the repository's top-level pipelines/ and
# kernels/ (docs/architecture.md, "Layout"): an ordinary subpackage to Python, installers and
# static tools alike.
