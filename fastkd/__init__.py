"""fastkd: knowledge distillation x data augmentation studies on GPU-resident data pipelines."""
__version__ = "0.1.0"
