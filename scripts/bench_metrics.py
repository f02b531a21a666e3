#!/usr/bin/env python
"""Metric speed benchmark (class discrimination, FAISS vs torch k-NN); see fastkd/bench_metrics.py."""
import sys

from fastkd.bench_metrics import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
