"""Speed of the latent-space metrics on synthetic features: class discrimination (clean, paper)
and k-NN purity through FAISS (exact and IVF), the torch brute force and what ``backend="auto"``
picks, for N points of D dimensions in 10 classes, on the host and (when there is one) on the GPU
in the same run, with the device's speed-up over the host. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse

import torch

from ..fields import DEVICES
from ..run import runinfo
from ..metrics import class_discrimination, knn_purity
from ..metrics.knn import _faiss
from .common import devices, timed


def _features(n, d, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    centres = torch.randn(10, d, generator=g)
    x = centres[y] + 2.0 * torch.randn(n, d, generator=g)
    return x.to(device), y.to(device)


def run(args) -> dict:
    has_faiss = _faiss() is not None
    rows = []
    for device in devices(args.device):
        rows += _rows(args, device, has_faiss)
    _speedups(rows)
    return {"devices": [str(d) for d in devices(args.device)], "faiss": has_faiss, "k": args.k,
            "environment": runinfo.environment(), "results": rows}


def _speedups(rows: list) -> None:
    """On each device row, the host's time over the device's for the same measure and size."""
    host = {(r["n"], r["d"]): r for r in rows if r.get("device") == "cpu"}
    for r in rows:
        h = host.get((r["n"], r["d"]))
        if r.get("device", "cpu") != "cpu" and h is not None:
            r["speedup_vs_host"] = {k[:-2]: h[k] / r[k] for k in r if k.endswith("_s") and k in h and r[k] > 0}


def _rows(args, device, has_faiss) -> list:
    rows = []
    for n in args.sizes:
        for d in args.dims:
            if n * d * 4 > args.max_bytes:
                rows.append({"device": str(device), "n": n, "d": d,
                             "skipped": f"features exceed --max-bytes {args.max_bytes}"})
                continue
            x, y = _features(n, d, device)
            row = {"device": device.type, "n": n, "d": d}
            row["cd_clean_s"] = timed(lambda: class_discrimination(x, y, "clean"), device)
            if n * d * 8 <= args.max_bytes:
                row["cd_paper_s"] = timed(lambda: class_discrimination(x, y, "paper"), device)
            if n <= args.max_knn_n:
                row["knn_torch_s"] = timed(lambda: knn_purity(x, y, args.k, backend="torch"), device)
                row["knn_auto_s"] = timed(lambda: knn_purity(x, y, args.k, backend="auto"), device)
                if has_faiss:
                    row["knn_faiss_flat_s"] = timed(lambda: knn_purity(x, y, args.k, backend="faiss"), device)
                    row["faiss_speedup_vs_torch"] = row["knn_torch_s"] / row["knn_faiss_flat_s"]
            if has_faiss and n >= args.ivf_from:
                row["knn_faiss_ivf_s"] = timed(lambda: knn_purity(x, y, args.k, backend="faiss", index="ivf"), device)
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _line(r: dict) -> str:
    where = f"{r['device']:<5}"
    if "skipped" in r:
        return f"{where} N={r['n']:>8} D={r['d']:>5}  skipped: {r['skipped']}"
    cells = [f"{k[:-2]} {v:.3f}s" for k, v in r.items() if k.endswith("_s")]
    if "faiss_speedup_vs_torch" in r:
        cells.append(f"faiss/torch {r['faiss_speedup_vs_torch']:.2f}x")
    return f"{where} N={r['n']:>8} D={r['d']:>5}  " + "  ".join(cells)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_metrics", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 1_000_000])
    p.add_argument("--dims", type=int, nargs="+", default=[10, 512, 2048])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--max-knn-n", type=int, default=50_000, help="exact k-NN only up to this N (it is N^2 D)")
    p.add_argument("--ivf-from", type=int, default=1_000_000, help="also time the FAISS IVF index from this N")
    p.add_argument("--max-bytes", type=float, default=6e9, help="skip sizes whose float32 features exceed this")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto: the host, and the GPU too when there is one")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    runinfo.write_bench_result(run(args), args.json, "metrics")
    return 0
