#!/usr/bin/env python
"""Peak resident memory against data set size: `fastkd data convert` of an ImageFolder tree to
.beton (streamed: FFCV's writer workers decode one image at a time), one epoch of the
`dataloader` backend over the tree (streamed: its workers decode each file), and, for
comparison, the in-memory path (the whole tree decoded into one array, as the `tensor` backend
needs). Trees of small JPEGs are generated for each size. Each measurement runs in its own
process; the table shows the peak RSS of the main process and of its largest child, and the
throughput. Writes JSON."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
what, root, out = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
if what == "convert":
    from fastkd.cli import main
    assert main(["data", "convert", "--to", "beton", "--data", "imagefolder", "--path", root, "--out", out,
                 "--workers", "2"]) == 0
    n = sum(1 for _ in __import__("pathlib").Path(root).rglob("*.jpg"))
elif what == "dataloader_epoch":
    from fastkd.config import DataConfig
    from fastkd.data import load_splits
    from fastkd.pipelines import build_pipeline
    from fastkd.pipelines.spec import make_spec
    train = load_splits(DataConfig(name="imagefolder", path=root), reads="files")["train"]
    pipe = build_pipeline("dataloader", train, make_spec("crop_flip"), train=True, batch_size=256, device="cpu",
                          seed=0, num_workers=2)
    n = sum(len(b) for b in pipe)
else:  # in_memory: decode everything into one array (what the tensor backend holds)
    from fastkd.config import DataConfig
    from fastkd.data import load_splits
    data = load_splits(DataConfig(name="imagefolder", path=root, cache_dir=out))
    n = len(data["train"]) + len(data["test"])
seconds = time.perf_counter() - start
kib = lambda who: resource.getrusage(who).ru_maxrss
print(json.dumps({"images": n, "seconds": seconds, "peak_rss_main_mib": kib(resource.RUSAGE_SELF) / 1024,
                  "peak_rss_largest_child_mib": kib(resource.RUSAGE_CHILDREN) / 1024}))
"""


def make_tree(root: Path, n: int, seed: int = 0) -> None:
    from PIL import Image
    rng = np.random.default_rng(seed)
    per_class = n // 10
    for split, count in (("train", per_class * 5 // 6), ("test", per_class - per_class * 5 // 6)):
        for c in range(10):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:06d}.jpg", quality=75)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    p.add_argument("--what", nargs="+", default=["convert", "dataloader_epoch", "in_memory"],
                   choices=["convert", "dataloader_epoch", "in_memory"])
    p.add_argument("--json", default=f"bench-results/memory-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = p.parse_args(argv)
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="fastkd-bench-memory-") as scratch:
            root = Path(scratch) / "tree"
            make_tree(root, n)
            for what in args.what:
                out = Path(scratch) / f"out-{what}"
                done = subprocess.run([sys.executable, "-c", CHILD, what, str(root), str(out)], capture_output=True,
                                      text=True)
                if done.returncode:
                    print(done.stderr[-2000:], file=sys.stderr)
                    return done.returncode
                row = {"what": what, "tree_images": n} | json.loads(done.stdout.strip().splitlines()[-1])
                row["images_per_second"] = row["images"] / row["seconds"]
                rows.append(row)
                print(f"{what:<18}{n:>9,} images  main {row['peak_rss_main_mib']:>8.0f} MiB  largest child "
                      f"{row['peak_rss_largest_child_mib']:>7.0f} MiB  {row['images_per_second']:>8.0f} img/s", flush=True)
    from fastkd.run import runinfo
    runinfo.write_bench_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
