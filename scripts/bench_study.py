#!/usr/bin/env python
"""Wall time of a study grid (default: the demo) run three ways in one go: sequentially with the
teacher-output cache (the default), sequentially with the teacher run live in every step, and on
a local Ray cluster: one run per CPU with one thread each, and one run per CPU with this
machine's default thread count (the sequential executor's arithmetic, so the same results). Each
variant runs in its own fresh folder. Prints a table and writes JSON (ratios against the
sequential, cached run, and which runs' test accuracies differ from it)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastkd import runinfo

THREADS = str(torch.get_num_threads())  # what a sequential run uses here
VARIANTS = {
    "sequential, teacher cache": [],
    "sequential, live teacher": ["--set", "student.distill.cache_teacher=off"],
    "ray (1 CPU per run), teacher cache": ["--executor", "ray", "--cpus-per-run", "1"],
    f"ray (1 CPU, {THREADS} threads per run), teacher cache": ["--executor", "ray", "--cpus-per-run", "1",
                                                              "--threads-per-run", THREADS],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="demo", help="study preset (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="study overrides for every variant (e.g. common.data.limit_train=1000)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", default=f"bench-results/study-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastkd-bench-study-") as scratch:
        for i, name in enumerate(args.variants):
            cmd = [sys.executable, "-m", "fastkd", "study", "--preset", args.preset, "--out", f"{scratch}/{i}", "--quiet"]
            cmd += [a for o in args.overrides for a in ("--set", o)] + VARIANTS[name]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            ledger = {p.stem: json.loads(p.read_text()) for p in Path(f"{scratch}/{i}/ledger").glob("*.json")}
            accuracy = {k: r["metrics"]["test_accuracy"] for k, r in ledger.items() if r["status"] == "done"}
            rows.append({"variant": name, "seconds": seconds, "command": " ".join(cmd[1:]), "runs": len(ledger),
                         "test_accuracy": accuracy})
            print(f"{name:<40}{seconds:>9.1f} s", flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_first"] = base / r["seconds"]
        # the same grid's results: runs whose test accuracy differs from the first variant's, and by how much
        diffs = [abs(a - rows[0]["test_accuracy"].get(k, float("nan"))) for k, a in r["test_accuracy"].items()]
        r["runs_differing"] = sum(d > 0 for d in diffs)
        r["max_accuracy_difference"] = max(diffs, default=0.0)
    print(f"\n{'variant':<40}{'wall time':>11}{'speed-up':>10}{'runs':>6}{'differing':>11}{'max acc diff':>14}")
    for r in rows:
        print(f"{r['variant']:<40}{r['seconds']:>9.1f} s{r['speedup_vs_first']:>9.2f}x{r['runs']:>6}"
              f"{r['runs_differing']:>11}{100 * r['max_accuracy_difference']:>12.2f} pt")
    print(f"(speed-up and differences against '{rows[0]['variant']}')")
    runinfo.write_bench_json(args.json, rows, preset=args.preset, overrides=args.overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
