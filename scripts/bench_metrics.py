#!/usr/bin/env python
"""Metric speed benchmark (class discrimination, FAISS vs torch k-NN); see fastkd/bench/metrics.py."""
import sys

from fastkd.bench.metrics import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
