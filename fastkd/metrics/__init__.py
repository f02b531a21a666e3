"""Metrics on a network's outputs and latent spaces, each usable on its own.

- :func:`class_discrimination` (Das et al. 2020; variants paper / clean / gdv)
- :func:`knn_purity`, :func:`knn_accuracy` (FAISS when installed, torch brute force otherwise)
- :func:`fidelity` (Stanton et al. 2021), :func:`calibration` (ECE, MCE, NLL)
"""
from .analysis import analyze_outputs, analyze_run
from .calibration import calibration, reliability_bins
from .discrimination import CDResult, class_discrimination
from .fidelity import fidelity
from .knn import knn_accuracy, knn_purity, knn_search

__all__ = ["CDResult", "class_discrimination", "knn_purity", "knn_accuracy", "knn_search", "fidelity",
           "calibration", "reliability_bins", "analyze_outputs", "analyze_run"]
