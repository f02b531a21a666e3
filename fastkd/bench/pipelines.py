"""Throughput benchmark: loader alone, teacher step and KD step, per data pipeline.

Compares fastkd's ``tensor`` pipeline with the per-sample DataLoader a user would otherwise write
(``dataloader`` backend: PIL decode + numpy augmentation in worker processes, MixUp/CutMix on
the batch), and with the bare step on one pre-made device batch (the ceiling). Prints a table
and writes JSON. Run ``fastkd bench --help``.
"""
from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from ..fields import DEVICES
from .. import models
from ..run import runinfo
from ..config import DataConfig
from ..data import load_splits
from ..data.loading import sample_path
from ..train.losses import kd_loss, soft_cross_entropy
from ..pipelines import build_pipeline
from ..pipelines.spec import make_spec
from ..data.beton import read_listing
from ..pipelines import BACKENDS


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forever(pipe):
    epoch = 0
    while True:
        pipe.set_epoch(epoch)
        yield from pipe
        epoch += 1


def _whole_epoch(pipe, device, epoch: int = 1000) -> tuple[float, float]:
    """(seconds to the first batch, images/s over the whole epoch) for an epoch that follows a
    complete one, as in training, so per-epoch costs count: DALI's pipeline for the epoch, FFCV's
    traversal, DataLoader workers refilling their queues."""
    for e in (epoch, epoch + 1):
        pipe.set_epoch(e)
        start, first, count = time.perf_counter(), None, 0
        for batch in pipe:
            count += len(batch)
            if first is None:
                _sync(device)
                first = time.perf_counter() - start
        _sync(device)
        total = time.perf_counter() - start
    return first, count / total


def _timed(step, batches, steps: int, warmup: int, device, batch_size: int, repeats: int = 1) -> dict:
    """Images/s over ``steps`` calls of ``step(batch)`` after ``warmup`` untimed ones, measured
    ``repeats`` times: the median, every repeat, and the spread (max - min) / median."""
    for _ in range(warmup):
        step(next(batches))
    runs = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(next(batches))
        _sync(device)
        runs.append(steps * batch_size / (time.perf_counter() - start))
    median = float(sorted(runs)[len(runs) // 2])
    return {"images_per_second": median, "runs": runs, "spread": (max(runs) - min(runs)) / median}


class _Steps:
    """Teacher (CE) and KD training steps on fixed models, as the engine runs them."""

    def __init__(self, teacher_name, student_name, num_classes, device, precision, channels_last, compile_,
                 num_samples: int):
        mf = torch.channels_last if channels_last else torch.contiguous_format
        self.device = device
        self.teacher = models.create(teacher_name, num_classes).to(device, memory_format=mf)
        self.student = models.create(student_name, num_classes).to(device, memory_format=mf)
        self.frozen = models.create(teacher_name, num_classes).to(device, memory_format=mf).eval().requires_grad_(False)
        self.opt_t = torch.optim.SGD(self.teacher.parameters(), lr=0.01, momentum=0.9)
        self.opt_s = torch.optim.SGD(self.student.parameters(), lr=0.01, momentum=0.9)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        # the cached teacher's logits, one row per training sample: made once, outside every timing
        self.table = torch.randn(num_samples, num_classes, device=device)
        wrap = torch.compile if compile_ else (lambda m: m)
        self.f_teacher, self.f_student, self.f_frozen = wrap(self.teacher), wrap(self.student), wrap(self.frozen)

    def _autocast(self):
        if self.dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def teacher_step(self, batch):
        with self._autocast():
            loss = soft_cross_entropy(self.f_teacher(batch.images), batch.targets)
        loss.backward()
        self.opt_t.step()
        self.opt_t.zero_grad(set_to_none=True)

    def kd_cached_step(self, batch):
        """The KD step with the teacher's logits read from a table by sample index (the teacher
        cache of a student whose view is deterministic): no teacher forward."""
        with self._autocast():
            loss = kd_loss(self.f_student(batch.images), self.table[batch.index], batch.targets, temperature=4.0,
                           gamma=0.9)
        loss.backward()
        self.opt_s.step()
        self.opt_s.zero_grad(set_to_none=True)

    def kd_step(self, batch):
        with self._autocast():
            with torch.no_grad():
                t = self.f_frozen(batch.images)
            loss = kd_loss(self.f_student(batch.images), t, batch.targets, temperature=4.0, gamma=0.9)
        loss.backward()
        self.opt_s.step()
        self.opt_s.zero_grad(set_to_none=True)


def _installed(backend: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec({"dali": "nvidia.dali", "ffcv": "ffcv"}[backend]) is not None
    except ModuleNotFoundError:
        return False


def _beton_listing(root: Path, workers: int, scratch: Path):
    """Convert the tree to .beton files in a separate process: FFCV's writer leaves busy threads
    behind that would slow every measurement taken after it in this process."""
    import subprocess
    import sys
    out = scratch / "beton"
    subprocess.run([sys.executable, "-m", "fastkd", "data", "convert", "--data", "imagefolder", "--path", str(root),
                    "--out", str(out), "--name", "bench", "--workers", str(workers)], check=True)
    return read_listing(out)["train"]


def _data_root(path: str | None, scratch: Path) -> Path:
    if path:
        return Path(path)
    # the bundled sample unpacked, so the DataLoader baseline decodes real JPEG files per sample
    root = scratch / "sample"
    with tarfile.open(sample_path()) as tar:
        tar.extractall(root, filter="data")
    return root


def run(args) -> dict:
    # everything the benchmark unpacks or converts lives here and is removed at the end
    with tempfile.TemporaryDirectory(prefix="fastkd-bench-") as scratch:
        return _run(args, Path(scratch))


def _run(args, scratch: Path) -> dict:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    teacher = args.teacher or ("resnet18" if gpu else "resnet20")
    student = args.student or ("resnet20" if gpu else "resnet8")
    bs = args.batch_size or (512 if gpu else 128)
    precision = args.precision or ("bf16" if gpu else "no")
    root = _data_root(args.data, scratch)
    train = load_splits(DataConfig(name="imagefolder", path=str(root)), progress=True)["train"]
    spec = make_spec(args.augment, per_sample=args.per_sample)
    steps = _Steps(teacher, student, train.num_classes, device, precision, args.channels_last, args.compile, len(train))

    def pipe(backend):
        return build_pipeline(backend, sources.get(backend, train), spec, train=True, batch_size=bs, device=device, seed=0,
                              channels_last=args.channels_last, num_workers=args.workers)

    backends = args.backends or ["tensor", "dataloader"] + [b for b in ("dali", "ffcv") if _installed(b)]
    sources = {b: train for b in backends}
    if "ffcv" in backends:  # FFCV reads its own file format: convert once, untimed
        sources["ffcv"] = _beton_listing(root, args.workers, scratch)
    rows = []
    fixed = next(iter(pipe("tensor")))
    fixed_batches = iter(lambda: fixed, None)
    measures = (("teacher step", steps.teacher_step), ("kd step", steps.kd_step),
                ("kd step, cached teacher", steps.kd_cached_step))
    for what, fn in measures:
        rows.append({"pipeline": "bare (one device batch)", "measure": what,
                     **_timed(fn, fixed_batches, args.steps, args.warmup, device, bs, args.repeats)})
    for backend in backends:
        p = pipe(backend)
        label = {"dataloader": f"dataloader ({args.workers} workers)", "dali": f"dali ({args.workers} threads)",
                 "ffcv": f"ffcv ({args.workers} threads)"}.get(backend, backend)
        for what, fn in (("loader only", lambda b: None),) + measures:
            n = args.loader_steps if what == "loader only" else args.steps
            rows.append({"pipeline": label, "backend": backend, "measure": what,
                         **_timed(fn, _forever(p), n, args.warmup, device, bs, args.repeats)})
            if what == "loader only":
                loader_row = rows[-1]
        loader_row["epoch_start_s"], loader_row["whole_epoch_images_per_second"] = _whole_epoch(p, device)
    _add_ratios(rows)
    return {"config": {"teacher": teacher, "student": student, "batch_size": bs, "precision": precision,
                       "augment": spec.name, "per_sample": args.per_sample, "channels_last": args.channels_last,
                       "compile": args.compile, "workers": args.workers, "steps": args.steps, "warmup": args.warmup,
                       "repeats": args.repeats,
                       "data": str(root), "train_images": len(train), "device": str(device)},
            "environment": runinfo.environment(), "results": rows}


def _add_ratios(rows: list) -> None:
    """Each row's speed relative to the bare step and to the DataLoader baseline, same measure."""
    by = {(r.get("backend", "bare"), r["measure"]): r["images_per_second"] for r in rows}
    for r in rows:
        base = by.get(("dataloader", r["measure"]))
        bare = by.get(("bare", r["measure"]))
        if base and r.get("backend") != "dataloader":
            r["x_vs_dataloader"] = r["images_per_second"] / base
        if bare and r.get("backend"):
            r["fraction_of_bare"] = r["images_per_second"] / bare


def _of_bare(r: dict) -> str:
    """A step's share of the bare step. Above 100% it cannot be real (the bare step is the
    ceiling): it is this machine's noise, and is shown as such."""
    if "fraction_of_bare" not in r:
        return ""
    f = r["fraction_of_bare"]
    return "~100% (noise)" if f > 1.0 else f"{100 * f:.1f}%"


def format_table(result: dict) -> str:
    c = result["config"]
    lines = [f"device {c['device']}  teacher {c['teacher']}  student {c['student']}  batch {c['batch_size']}  "
             f"precision {c['precision']}  augment {c['augment']}{' (per sample)' if c['per_sample'] else ''}  "
             f"median of {c['repeats']} repeats",
             f"{'pipeline':<28}{'measure':<25}{'img/s':>10}{'spread':>8}{'vs dataloader':>15}{'of bare step':>15}"
             f"{'epoch start':>13}{'whole epoch img/s':>19}"]
    for r in result["results"]:
        vs = f"{r['x_vs_dataloader']:.2f}x" if "x_vs_dataloader" in r else ""
        start = f"{r['epoch_start_s']:.3f} s" if "epoch_start_s" in r else ""
        epoch = f"{r['whole_epoch_images_per_second']:.0f}" if "whole_epoch_images_per_second" in r else ""
        spread = f"{100 * r['spread']:.0f}%" if len(r.get("runs", [])) > 1 else ""
        lines.append(f"{r['pipeline']:<28}{r['measure']:<25}{r['images_per_second']:>10.0f}{spread:>8}{vs:>15}"
                     f"{_of_bare(r):>15}{start:>13}{epoch:>19}")
    lines.append("spread: (max - min) / median over the repeats; '~100% (noise)': measured above the bare step, "
                 "which is the ceiling")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastkd bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="ImageFolder root with train/ (default: the bundled sample, unpacked)")
    p.add_argument("--augment", default="crop_flip+mixup", help="augmentation spec (default: %(default)s)")
    p.add_argument("--per-sample", action="store_true", help="one lambda per sample for MixUp/CutMix")
    p.add_argument("--teacher", help="default resnet18 on a GPU, resnet20 on a CPU")
    p.add_argument("--student", help="default resnet20 on a GPU, resnet8 on a CPU")
    p.add_argument("--batch-size", type=int, help="default 512 on a GPU, 128 on a CPU")
    p.add_argument("--precision", choices=("no", "bf16", "fp16"), help="default bf16 on a GPU, no on a CPU")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="NCHW contiguous batches")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--backends", nargs="+", default=None, choices=BACKENDS,
                   help="default: tensor, dataloader, and dali and ffcv where installed")
    p.add_argument("--workers", type=int, default=4,
                   help="DataLoader workers, DALI and FFCV threads (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measure (default: %(default)s)")
    p.add_argument("--loader-steps", type=int, default=30, help="timed batches of the loader alone (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="times each measure is taken; the median is reported "
                   "with the spread (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="default: %(default)s")
    p.add_argument("--json", help="where to write the JSON result (default bench-results/pipeline-<time>.json)")
    return p


def main(argv=None) -> int:
    argv = [a for a in (argv or []) if a != "--"]
    args = parser().parse_args(argv)
    result = run(args)
    print(format_table(result))
    runinfo.write_bench_result(result, args.json, "pipeline")
    return 0
