#!/usr/bin/env python
"""Does a training step give the same gradients with 1 and 2 torch threads, and at what cost?

One forward+backward of a model on a fixed batch (128 CIFAR-sized images), run with 1 and with 2
threads, under three CPU arithmetic settings, each in a fresh process (the MKL setting is read at
start): oneDNN convolutions (torch's default), oneDNN off, and oneDNN off with MKL's strict
conditional numerical reproducibility (MKL_CBWR=AVX2,STRICT). Prints which parameters' gradients
differ bitwise between the thread counts and the step times; writes JSON. Why it matters: runs
that share a machine's cores (a study on Ray) use fewer threads each, and results equal to a
sequential run's need arithmetic that does not depend on the thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = {"onednn (default)": ({}, True), "onednn off": ({}, False),
            "onednn off + MKL_CBWR=AVX2,STRICT": ({"MKL_CBWR": "AVX2,STRICT"}, False)}


def _measure(model: str, onednn: bool, repeats: int) -> dict:
    import torch

    from fastkd import models
    torch.backends.mkldnn.enabled = onednn
    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        net = models.create(model, num_classes=10)
        x = torch.randn(128, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(2))
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters()}
        start = time.perf_counter()
        for _ in range(repeats):
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
        out[threads] = (grads, (time.perf_counter() - start) / repeats)
    differing = [n for n in out[1][0] if not torch.equal(out[1][0][n], out[2][0][n])]
    return {"parameters": len(out[1][0]), "differing": differing, "step_ms_1_thread": 1000 * out[1][1],
            "step_ms_2_threads": 1000 * out[2][1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["lenet", "resnet8"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=f"bench-results/thread-invariance-{time.strftime('%Y%m%d-%H%M%S')}.json")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "ONEDNN"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.child[0], args.child[1] == "1", args.repeats)))
        return 0
    rows = []
    for name, (env, onednn) in SETTINGS.items():
        for model in args.models:
            done = subprocess.run([sys.executable, __file__, "--child", model, "1" if onednn else "0",
                                   "--repeats", str(args.repeats)], env=os.environ | env, capture_output=True,
                                  text=True, check=True)
            rows.append({"setting": name, "model": model} | json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'setting':<36}{'model':<9}{'grads differing':>17}{'1 thread':>11}{'2 threads':>11}")
    for r in rows:
        print(f"{r['setting']:<36}{r['model']:<9}{len(r['differing']):>9} of {r['parameters']:<5}"
              f"{r['step_ms_1_thread']:>8.0f} ms{r['step_ms_2_threads']:>8.0f} ms")
    from fastkd.run import runinfo
    runinfo.write_bench_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
