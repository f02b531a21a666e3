import numpy as np
import torch

from helpers import seeded
from fastkd.kernels import augment as K


def _find_crop(out, img, pad):
    """Loop reference: which (oy, ox, flipped) crop of the zero-padded image equals ``out``."""
    c, h, w = img.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    hits = []
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            crop = padded[:, oy:oy + h, ox:ox + w]
            if torch.equal(out, crop):
                hits.append((oy, ox, False))
            if torch.equal(out, crop.flip(-1)):
                hits.append((oy, ox, True))
    return hits


def test_crop_flip_outputs_are_padded_crops_and_cover_all_offsets(device):
    x = torch.randint(1, 256, (400, 3, 8, 8), dtype=torch.uint8, generator=seeded("cpu", 0))
    out = K.crop_flip(x.to(device), pad=2, generator=seeded(device, 0))
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.device.type == device
    out = out.cpu()
    seen = set()
    for i in range(len(x)):
        hits = _find_crop(out[i], x[i], 2)
        assert hits, f"sample {i} is not a crop of its padded input"
        seen.add(hits[0])
    assert {(oy, ox) for oy, ox, _ in seen} == {(a, b) for a in range(5) for b in range(5)}
    assert {f for *_, f in seen} == {True, False}


def test_crop_flip_without_flip_or_pad():
    x = torch.randn(5, 3, 6, 6)
    assert torch.equal(K.crop_flip(x, pad=0, flip=False), x)


def test_cutout_zeroes_one_clipped_square(device):
    x = torch.rand(300, 3, 16, 16) + 1.0  # no zeros before cutout
    out = K.cutout(x.to(device), size=8, generator=seeded(device, 1)).cpu()
    for i in range(len(x)):
        zero = (out[i] == 0).all(0)
        assert torch.equal(out[i][:, ~zero], x[i][:, ~zero])
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert len(rows) <= 8 and len(cols) <= 8
    # centres uniform over the image: some holes are clipped at the border, most are full squares
    areas = (out == 0).all(1).sum((1, 2))
    assert (areas == 64).float().mean() > 0.2 and (areas < 64).any()


def test_cutout_holes_accumulate():
    out = K.cutout(torch.ones(200, 1, 32, 32), size=4, holes=3, generator=torch.Generator().manual_seed(0))
    assert ((out == 0).sum((1, 2, 3)) > 16).any()


def test_normalize_matches_float64_formula_and_layout(device):
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    out = K.normalize(x.to(device), mean, std)
    assert out.is_contiguous(memory_format=torch.channels_last)
    out = out.cpu()
    m, s = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (mean, std))
    ref = (x.double() / 255 - m) / s
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


def test_one_hot_smoothing():
    y = K.one_hot(torch.tensor([2, 0]), 4, smoothing=0.2)
    np.testing.assert_allclose(y.numpy(), [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]], rtol=1e-6)


def test_cutout_keeps_the_memory_format_it_was_given(device):
    # a channels_last batch that comes back contiguous costs every following conv a layout copy
    x = torch.randn(8, 3, 12, 12, device=device).contiguous(memory_format=torch.channels_last)
    out = K.cutout(x, size=4, generator=seeded(device, 0))
    assert out.is_contiguous(memory_format=torch.channels_last)
    holes = (out == 0) & (x != 0)
    assert holes.any() and torch.equal(out[~holes], x[~holes])  # only the holes changed
    plain = K.cutout(x.contiguous(), size=4, generator=seeded(device, 0))
    assert plain.is_contiguous() and torch.equal(plain, out)


def test_normalize_takes_prebuilt_channel_constants_with_the_same_result(device):
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=seeded("cpu", 1)).to(device)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    ref = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64, device=device).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64, device=device).view(1, 3, 1, 1)
    built = K.normalize(x, K.channel_constants(mean, device), K.channel_constants(std, device))
    torch.testing.assert_close(built, ref.float())
    assert torch.equal(built, K.normalize(x, mean, std))
