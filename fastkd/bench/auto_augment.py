"""Speed of the automatic augmentation policies (AutoAugment's CIFAR-10 policy, RandAugment,
TrivialAugment-wide) as fastkd runs them, batched on the batch's device, against the baseline a
user would otherwise run: the same policy image by image with PIL (as torchvision-style transforms
do in DataLoader workers), in one process. Host and (when there is one) GPU in the same run; the
PIL rate is per process, so on W workers it scales at most W-fold. Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import functools
import random

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from ..config import DataConfig
from ..data import load_splits
from ..fields import DEVICES
from ..kernels import auto_augment as A
from ..run import runinfo
from .common import devices, timed

POLICIES = {"autoaugment": A.auto_augment, "randaugment": A.rand_augment, "trivialaugment": A.trivial_augment}

_PIL = {
    "identity": lambda im, v: im,
    "shear_x": lambda im, v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0)),
    "shear_y": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, v, 1, 0)),
    "translate_x": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, v, 0, 1, 0)),
    "translate_y": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v)),
    "rotate": lambda im, v: im.rotate(v),
    "brightness": lambda im, v: ImageEnhance.Brightness(im).enhance(v),
    "color": lambda im, v: ImageEnhance.Color(im).enhance(v),
    "contrast": lambda im, v: ImageEnhance.Contrast(im).enhance(v),
    "sharpness": lambda im, v: ImageEnhance.Sharpness(im).enhance(v),
    "posterize": lambda im, v: ImageOps.posterize(im, int(v)),
    "solarize": lambda im, v: ImageOps.solarize(im, v),
    "autocontrast": lambda im, v: ImageOps.autocontrast(im),
    "equalize": lambda im, v: ImageOps.equalize(im),
    "invert": lambda im, v: ImageOps.invert(im),
}


@functools.lru_cache(maxsize=None)
def _magnitude(name: str, level: int, bins: int, size: int, wide: bool) -> float:
    """The policy's magnitude as a Python float, computed once: the baseline's timed loop should
    pay for PIL's work, not for building a tensor per operation."""
    return A.magnitude(name, torch.tensor([float(level)]), bins, size, wide=wide).item()


def _pil_value(name: str, level: int, bins: int, size: int, rng: random.Random, wide=False) -> float:
    m = _magnitude(name, level, bins, size, wide)
    if name in A.SIGNED and rng.random() < 0.5:
        m = -m
    return 1.0 + m if name in A.ENHANCE else m


def pil_policy(name: str, im: Image.Image, rng: random.Random) -> Image.Image:
    """One image through the policy, with PIL: the per-image baseline."""
    size = im.size[0]
    if name == "autoaugment":
        for op, p, level in rng.choice(A.CIFAR10_POLICY):
            if rng.random() < p:
                im = _PIL[op](im, _pil_value(op, level or 0, A.AUTO_AUGMENT_BINS, size, rng))
        return im
    if name == "randaugment":
        for _ in range(A.RAND_AUGMENT_OPS):  # the batched policy's defaults, which the benchmark times
            op = rng.choice(A.SPACE)
            im = _PIL[op](im, _pil_value(op, A.RAND_AUGMENT_LEVEL, A.RAND_AUGMENT_BINS, size, rng))
        return im
    op = rng.choice(A.SPACE)
    return _PIL[op](im, _pil_value(op, rng.randrange(A.RAND_AUGMENT_BINS), A.RAND_AUGMENT_BINS, size, rng, wide=True))


def _images(args) -> np.ndarray:
    if args.data:
        cfg = DataConfig(name="imagefolder", path=args.data, limit_train=args.images)
    else:
        cfg = DataConfig(name="sample", limit_train=args.images)
    return load_splits(cfg)["train"].images  # (N, H, W, C) uint8


def _rate(fn, count: int, repeats: int, device) -> float:
    """Images per second of the fastest of ``repeats`` timed calls, after one warm-up call."""
    fn()
    return count / min(timed(fn, device) for _ in range(repeats))


def _line(row: dict) -> str:
    """A result row as printed: rates in images per second, the ``_vs_pil`` ratios as speed-ups."""
    def cell(key, value):
        if key.endswith("_vs_pil"):
            return f"{key} {value:.2f}x"
        return f"{key} {value:,.0f}" if key.endswith("_img_s") else f"{key} {value}"
    return "  ".join(cell(k, v) for k, v in row.items())


def run(args) -> dict:
    images = _images(args)
    pil_images = [Image.fromarray(im) for im in images[: args.pil_images]]
    rows = []
    for name, policy in POLICIES.items():
        rng = random.Random(0)
        pil = _rate(lambda: [pil_policy(name, im, rng) for im in pil_images], len(pil_images), args.repeats,
                    torch.device("cpu"))
        row = {"policy": name, "pil_per_image_img_s": pil}
        for device in devices(args.device):
            x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)
            g = torch.Generator(device=device).manual_seed(0)
            batches = [x[i:i + args.batch_size] for i in range(0, len(x) - args.batch_size + 1, args.batch_size)]
            rate = _rate(lambda: [policy(b, generator=g) for b in batches], len(batches) * args.batch_size,
                         args.repeats, device)
            row[f"fastkd_{device.type}_img_s"] = rate
            row[f"fastkd_{device.type}_vs_pil"] = rate / pil
        rows.append(row)
        print(_line(row), flush=True)
    return {"images": len(images), "image_shape": list(images.shape[1:]), "batch_size": args.batch_size,
            "repeats": args.repeats, "pil_images": len(pil_images), "environment": runinfo.environment(),
            "results": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_auto_augment", description=__doc__)
    p.add_argument("--data", default=None, help="an ImageFolder tree or archive (default: the bundled sample)")
    p.add_argument("--images", type=int, default=5120, help="images for the batched runs")
    p.add_argument("--pil-images", type=int, default=1024, help="images for the per-image PIL baseline")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: the host, and the GPU too when there is one")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    runinfo.write_bench_result(run(args), args.json, "auto-augment")
    return 0
