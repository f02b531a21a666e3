"""The automatic augmentation policies (fastkd.kernels.auto_augment) and their image operations:
each operation against PIL's, each policy's draws against its definition (which operations fire
how often, at which magnitudes), seeding, and the backends that run them."""
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from fastkd.config import DataConfig
from fastkd.data import load_splits
from fastkd.errors import ConfigError
from fastkd.kernels import auto_augment as A
from fastkd.kernels import image_ops as O
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    imgs[1] = imgs[1] // 4 + 60  # a low-contrast image: autocontrast and equalize have work to do
    imgs[2] = np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))
    return imgs


PIL_REFERENCES = [
    ("brightness", lambda im, v: ImageEnhance.Brightness(im).enhance(v), (0.1, 1.4, 1.9)),
    ("color", lambda im, v: ImageEnhance.Color(im).enhance(v), (0.2, 1.7)),
    ("contrast", lambda im, v: ImageEnhance.Contrast(im).enhance(v), (0.4, 1.8)),
    ("sharpness", lambda im, v: ImageEnhance.Sharpness(im).enhance(v), (0.2, 1.9)),
    ("posterize", lambda im, v: ImageOps.posterize(im, int(v)), (2, 4, 7)),
    ("solarize", lambda im, v: ImageOps.solarize(im, v), (0, 100, 255)),
    ("autocontrast", lambda im, v: ImageOps.autocontrast(im), (0,)),
    ("equalize", lambda im, v: ImageOps.equalize(im), (0,)),
    ("invert", lambda im, v: ImageOps.invert(im), (0,)),
    ("shear_x", lambda im, v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0)), (-0.3, 0.3)),
    ("shear_y", lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, v, 1, 0)), (0.25,)),
    ("translate_x", lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, v, 0, 1, 0)), (-9, 14)),
    ("translate_y", lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v)), (7,)),
]


@pytest.mark.parametrize("name,reference,values", PIL_REFERENCES, ids=[r[0] for r in PIL_REFERENCES])
def test_each_operation_matches_pil(images, name, reference, values):
    x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2)
    for v in values:
        got = O.OPS[name](x, torch.full((len(x),), float(v)))
        want = np.stack([np.asarray(reference(Image.fromarray(im), v)) for im in images])
        diff = np.abs(got.permute(0, 2, 3, 1).numpy().astype(int) - want.astype(int))
        # PIL's grey conversion rounds in fixed point, and its autocontrast table can fall a hair
        # below an integer (255 -> 254): those two may differ by one level in a few pixels
        assert diff.max() <= (1 if name in ("color", "autocontrast") else 0), (name, v, diff.max())
        assert (diff > 0).mean() < 0.01


def test_rotation_matches_pil_but_for_pixels_on_sampling_boundaries(images):
    x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2)
    for angle in (-30.0, 20.0, 135.0):
        got = O.rotate(x, torch.full((len(x),), angle)).permute(0, 2, 3, 1).numpy()
        want = np.stack([np.asarray(Image.fromarray(im).rotate(angle)) for im in images])
        assert (got != want).any(axis=-1).mean() < 0.03, angle  # nearest neighbour ties round either way


def test_every_sample_gets_its_own_magnitude(images):
    x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2)
    m = torch.tensor([0.5, 1.0, 1.5, 0.2, 1.9, 1.0])
    got = O.brightness(x, m)
    for i in range(len(x)):
        torch.testing.assert_close(got[i:i + 1], O.brightness(x[i:i + 1], m[i:i + 1]), rtol=0, atol=0)


def test_magnitude_ranges_follow_the_definitions():
    first, last = torch.tensor([0.0]), torch.tensor([30.0])
    assert A.magnitude("rotate", last, 31, 32).item() == 30.0 and A.magnitude("rotate", first, 31, 32).item() == 0
    assert A.magnitude("rotate", last, 31, 32, wide=True).item() == 135.0
    assert A.magnitude("translate_x", last, 31, 32).item() == pytest.approx(150 / 331 * 32)
    assert A.magnitude("translate_x", last, 31, 32, wide=True).item() == 32.0
    assert A.magnitude("shear_y", torch.tensor([9.0]), 10, 32).item() == pytest.approx(0.3)
    assert A.magnitude("posterize", first, 31, 32).item() == 8
    assert A.magnitude("posterize", last, 31, 32).item() == 4
    assert A.magnitude("posterize", last, 31, 32, wide=True).item() == 2
    assert A.magnitude("solarize", first, 31, 32).item() == 255 and A.magnitude("solarize", last, 31, 32).item() == 0
    assert A.magnitude("contrast", last, 31, 32, wide=True).item() == pytest.approx(0.99)


class Recorder:
    """Stands in for the operations: records how many samples each was called on and with what."""

    def __init__(self, monkeypatch):
        self.calls = {}
        fakes = {name: self._fake(name) for name in O.OPS}
        monkeypatch.setattr(A, "OPS", fakes)

    def _fake(self, name):
        def op(x, m):
            self.calls.setdefault(name, []).append(m.clone())
            return x
        return op

    def count(self, name):
        return sum(len(m) for m in self.calls.get(name, []))

    def values(self, name):
        return torch.cat(self.calls[name]).double()


def _within(count, n, p, sigmas=5.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_auto_augment_fires_each_operation_as_often_as_the_policy_says(monkeypatch):
    rec = Recorder(monkeypatch)
    n = 40000
    A.auto_augment(torch.zeros((n, 3, 8, 8), dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    expected = {}
    for sub in A.CIFAR10_POLICY:
        for name, p, _ in sub:
            expected[name] = expected.get(name, 0.0) + p / len(A.CIFAR10_POLICY)
    for name, p in expected.items():
        assert _within(rec.count(name), n, p), (name, rec.count(name), n * p)
    # magnitudes: translate_y appears at bins 9 and 3 only; signs are a fair coin
    ty = rec.values("translate_y")
    allowed = {round(A.magnitude("translate_y", torch.tensor([float(b)]), 10, 8).item(), 6) for b in (3, 9)}
    assert {round(v, 6) for v in ty.abs().tolist()} == allowed
    assert _within(int((ty < 0).sum()), len(ty), 0.5)
    # enhancement factors are 1 +- magnitude: sharpness at bins 1, 3, 5, 6, 9
    sharp = rec.values("sharpness")
    strengths = {round(A.magnitude("sharpness", torch.tensor([float(b)]), 10, 8).item(), 6) for b in (1, 3, 5, 6, 9)}
    assert {round(abs(v - 1), 6) for v in sharp.tolist()} == strengths


def test_rand_augment_draws_its_operations_uniformly_at_one_magnitude(monkeypatch):
    rec = Recorder(monkeypatch)
    n, ops, level = 30000, 2, 9
    A.rand_augment(torch.zeros((n, 3, 8, 8), dtype=torch.uint8), ops=ops, level=level,
                   generator=torch.Generator().manual_seed(1))
    for name in A.SPACE[1:]:  # identity is chosen but never run
        assert _within(rec.count(name), n * ops, 1 / len(A.SPACE)), name
        strength = A.magnitude(name, torch.tensor([float(level)]), 31, 8).item()
        values = rec.values(name)
        got = (values - 1).abs() if name in A.ENHANCE else values.abs()
        assert torch.allclose(got, torch.full_like(got, strength)), name
    assert "invert" not in rec.calls


def test_trivial_augment_draws_one_operation_and_a_uniform_bin(monkeypatch):
    rec = Recorder(monkeypatch)
    n = 42000
    A.trivial_augment(torch.zeros((n, 3, 8, 8), dtype=torch.uint8), generator=torch.Generator().manual_seed(2))
    assert sum(rec.count(name) for name in A.SPACE) == pytest.approx(n * 13 / 14, rel=0.03)
    for name in A.SPACE[1:]:
        assert _within(rec.count(name), n, 1 / 14), name
    rotations = rec.values("rotate").abs()
    bins = torch.round(rotations / 135.0 * 30).long()
    counts = torch.bincount(bins, minlength=31)
    assert len(counts) == 31 and _within(int(counts[0]), len(rotations), 1 / 31) and \
        _within(int(counts[30]), len(rotations), 1 / 31)
    assert rotations.max().item() == 135.0  # the wide range


@pytest.mark.parametrize("policy", [A.auto_augment, A.rand_augment, A.trivial_augment])
def test_same_seed_same_batch_and_the_cpu_and_masked_routes_agree(images, policy, monkeypatch):
    x = torch.from_numpy(np.concatenate([images] * 8)).permute(0, 3, 1, 2)
    a = policy(x, generator=torch.Generator().manual_seed(5))
    b = policy(x, generator=torch.Generator().manual_seed(5))
    c = policy(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    routed = A._apply
    monkeypatch.setattr(A, "_apply", lambda *args, **kw: routed(*args, **kw, masked=True))
    assert torch.equal(policy(x, generator=torch.Generator().manual_seed(5)), a)  # CUDA's route, on the CPU


def test_the_tensor_backend_runs_them_seeded_and_the_dataloader_refuses():
    data = load_splits(DataConfig(name="sample", limit_train=64))["train"]

    def first(augment, seed, backend="tensor"):
        pipe = build_pipeline(backend, data, make_spec(augment), train=True, batch_size=32, device="cpu", seed=seed)
        return next(iter(pipe)).images

    plain = first("crop_flip", 0)
    for name in ("autoaugment", "randaugment", "trivialaugment"):
        got = first(f"crop_flip+{name}", 0)
        assert torch.equal(got, first(f"crop_flip+{name}", 0))
        assert not torch.equal(got, plain)
    with pytest.raises(ConfigError, match="autoaugment.*normalises on the host"):
        first("autoaugment", 0, backend="dataloader")


def test_augment_strings_accept_the_policies_with_their_options():
    spec = make_spec("randaugment+crop_flip+cutmix", randaugment_ops=3, randaugment_magnitude=12)
    assert spec.transforms == ("crop_flip", "randaugment", "cutmix")
    with pytest.raises(ValueError, match="randaugment_magnitude"):
        make_spec("randaugment", randaugment_magnitude=31)
