#!/usr/bin/env python
"""Wall time of a study grid (default: the demo) run three ways in one go: sequentially with the
teacher-output cache (the default), sequentially with the teacher run live in every step, and on
a local Ray cluster (one run per CPU). Each variant runs in its own fresh folder. Prints a table
and writes JSON (ratios against the sequential, cached run)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastkd import runinfo

VARIANTS = {
    "sequential, teacher cache": [],
    "sequential, live teacher": ["--set", "student.distill.cache_teacher=off"],
    "ray (1 CPU per run), teacher cache": ["--executor", "ray", "--cpus-per-run", "1"],
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
            rows.append({"variant": name, "seconds": seconds, "command": " ".join(cmd[1:])})
            print(f"{name:<40}{seconds:>9.1f} s", flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_first"] = base / r["seconds"]
    print(f"\n{'variant':<40}{'wall time':>11}{'vs ' + rows[0]['variant']:>42}")
    for r in rows:
        print(f"{r['variant']:<40}{r['seconds']:>9.1f} s{r['speedup_vs_first']:>41.2f}x")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "overrides": args.overrides, "results": rows,
                               "environment": runinfo.environment()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
