#!/usr/bin/env python
"""Speed of the automatic augmentation policies, batched vs per-image PIL; see fastkd/bench/auto_augment.py."""
import sys

from fastkd.bench.auto_augment import main
from fastkd.errors import exit_status_reporting_errors

if __name__ == "__main__":
    sys.exit(exit_status_reporting_errors(lambda: main(sys.argv[1:]), prog="bench_auto_augment"))
