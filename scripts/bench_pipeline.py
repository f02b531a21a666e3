#!/usr/bin/env python
"""Pipeline throughput benchmark; same as `fastkd bench`. Example (GPU, full CIFAR-10 JPEG tree):

    python scripts/bench_pipeline.py --data /data/cifar10-jpeg --augment crop_flip+mixup --per-sample \
        --workers 16 --steps 50 --json bench-results/h100.json
"""
import sys

from fastkd.bench.pipelines import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
