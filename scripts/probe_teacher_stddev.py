#!/usr/bin/env python
"""Rank augmentations for distillation by the teacher alone: T. stddev (Wang et al. 2022) of a
finished teacher run under each view, over N epochs of the training stream a student run would
see, no student trained. Prints a table and writes JSON.

    python scripts/probe_teacher_stddev.py --teacher runs/t --preset paper-student \\
        --set data.name=imagefolder --data /data/cifar10 --views none crop_flip crop_flip+mixup --epochs 10
"""
import argparse
import sys

from fastkd import config as C
from fastkd.errors import exit_status_reporting_errors
from fastkd.run import runinfo
from fastkd.train.probe import probe_teacher_stddev


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="probe_teacher_stddev", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="a finished fastkd teacher run folder")
    p.add_argument("--preset", default="paper-student")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (repeatable)")
    p.add_argument("--data", default=None, help="shorthand for --set data.path=PATH")
    p.add_argument("--views", nargs="+", required=True, help="augment strings, e.g. none crop_flip crop_flip+cutmix")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    base = args.set + [f"distill.teacher={args.teacher}"] + ([f"data.path={args.data}"] if args.data else [])
    rows = []
    for view in args.views:
        cfg = C.build(preset=args.preset, overrides=base + [f"augment={view}"])
        row = probe_teacher_stddev(cfg, epochs=args.epochs, device=args.device)
        rows.append(row)
        print(f"{view:<32} T. stddev {row['value']:.5f}  ({row['chunks']} chunks of {row['chunk_size']})", flush=True)
    if args.json:
        runinfo.write_bench_json(args.json, rows, teacher=args.teacher, overrides=base)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status_reporting_errors(lambda: main(sys.argv[1:]), prog="probe_teacher_stddev"))
