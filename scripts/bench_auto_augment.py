#!/usr/bin/env python
"""Speed of the automatic augmentation policies, batched vs per-image PIL; see fastkd/bench/auto_augment.py."""
import sys

from fastkd.bench.auto_augment import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
