#!/usr/bin/env python
"""Metric speed benchmark (class discrimination, FAISS vs torch k-NN); see fastkd/bench/metrics.py."""
import sys

from fastkd.bench.metrics import main
from fastkd.errors import exit_status_reporting_errors

if __name__ == "__main__":
    sys.exit(exit_status_reporting_errors(lambda: main(sys.argv[1:]), prog="bench_metrics"))
