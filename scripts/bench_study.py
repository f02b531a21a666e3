#!/usr/bin/env python
"""Wall time of a study grid (default: the demo) run several ways in one go, each in a fresh
folder: sequentially with the teacher-output cache (the default; the baseline), sequentially with
the teacher run live in every step, sequentially with one torch thread per run, and on a local Ray
cluster with one CPU per run, both with one thread per run and with this machine's default thread
count. On the CPU a run's results depend on its thread count (the order weight gradients are
summed in), so each variant is compared with the sequential variant of the same thread count:
its speed-up over it and the runs whose test accuracy differs from it. Prints a table and
writes JSON."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastkd.run import runinfo

THREADS = str(torch.get_num_threads())  # what a sequential run uses here
BASE = f"sequential ({THREADS} threads), teacher cache"
SEQ_1 = "sequential, 1 thread per run"
# variant -> (its command-line options, the sequential variant with the same arithmetic)
VARIANTS = {
    BASE: ([], BASE),
    "sequential, live teacher": (["--set", "student.distill.cache_teacher=off"], BASE),
    SEQ_1: (["--threads-per-run", "1"], BASE),
    "ray, 1 CPU + 1 thread per run": (["--executor", "ray", "--cpus-per-run", "1", "--threads-per-run", "1"], SEQ_1),
    f"ray, 1 CPU + {THREADS} threads per run": (["--executor", "ray", "--cpus-per-run", "1",
                                                 "--threads-per-run", THREADS], BASE),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="demo", help="study preset (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="study overrides for every variant (e.g. common.data.limit_train=1000)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="which to run (a variant's reference runs too, first)")
    p.add_argument("--json", default=f"bench-results/study-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = p.parse_args(argv)
    names = list(dict.fromkeys(n for v in args.variants for n in (VARIANTS[v][1], v)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastkd-bench-study-") as scratch:
        for i, name in enumerate(names):
            cmd = [sys.executable, "-m", "fastkd", "study", "--preset", args.preset, "--out", f"{scratch}/{i}", "--quiet"]
            cmd += [a for o in args.overrides for a in ("--set", o)] + VARIANTS[name][0]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            ledger = {p.stem: json.loads(p.read_text()) for p in Path(f"{scratch}/{i}/ledger").glob("*.json")}
            accuracy = {k: r["metrics"]["test_accuracy"] for k, r in ledger.items() if r["status"] == "done"}
            rows.append({"variant": name, "reference": VARIANTS[name][1], "seconds": seconds,
                         "command": " ".join(cmd[1:]), "runs": len(ledger), "test_accuracy": accuracy})
            print(f"{name:<42}{seconds:>9.1f} s", flush=True)
    by_name = {r["variant"]: r for r in rows}
    for r in rows:
        ref = by_name[r["reference"]]
        r["speedup_vs_baseline"] = by_name[BASE]["seconds"] / r["seconds"] if BASE in by_name else None
        r["speedup_vs_reference"] = ref["seconds"] / r["seconds"]
        # the same grid's results: runs whose test accuracy differs from the reference's, and by how much
        diffs = [abs(a - ref["test_accuracy"].get(k, float("nan"))) for k, a in r["test_accuracy"].items()]
        r["runs_differing"] = sum(not d == 0 for d in diffs)  # a run missing from the reference counts (NaN)
        r["max_accuracy_difference"] = max(diffs, default=0.0)
    print(f"\n{'variant':<42}{'wall time':>11}{'vs base':>9}{'reference':>42}{'vs ref':>8}{'runs':>6}"
          f"{'differing':>11}{'max acc diff':>14}")
    for r in rows:
        vs_base = f"{r['speedup_vs_baseline']:.2f}x" if r["speedup_vs_baseline"] else "-"
        print(f"{r['variant']:<42}{r['seconds']:>9.1f} s{vs_base:>9}{r['reference']:>42}"
              f"{r['speedup_vs_reference']:>7.2f}x{r['runs']:>6}{r['runs_differing']:>11}"
              f"{100 * r['max_accuracy_difference']:>12.2f} pt")
    print(f"(base: '{BASE}'; reference: the sequential variant with the same thread count; differing: runs whose "
          "test accuracy is not the reference's)")
    runinfo.write_bench_json(args.json, rows, preset=args.preset, overrides=args.overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
