"""The distillation losses as a public API, under the short name the docs use
(``fastkd.losses.dkd_loss``): the training code's own functions, defined in fastkd.train.losses."""
from .train.losses import dkd_loss, kd_kl, kd_loss, lskd_loss, soft_cross_entropy, standardize_logits

__all__ = ["dkd_loss", "kd_kl", "kd_loss", "lskd_loss", "soft_cross_entropy", "standardize_logits"]
