#!/usr/bin/env python
"""Pipeline throughput benchmark; same as `fastkd bench`. Example (GPU, full CIFAR-10 JPEG tree):

    python scripts/bench_pipeline.py --data /data/cifar10-jpeg --augment crop_flip+mixup --per-sample \
        --workers 16 --steps 50 --json bench-results/h100.json
"""
import sys

from fastkd.bench.pipelines import main
from fastkd.errors import exit_status_reporting_errors

if __name__ == "__main__":
    sys.exit(exit_status_reporting_errors(lambda: main(sys.argv[1:]), prog="bench_pipeline"))
