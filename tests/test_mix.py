import pytest
import torch
import torch.nn.functional as F

from helpers import seeded
from fastkd.kernels import mix


def _batch(n=16, k=10, h=12, w=10, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    y = F.one_hot(torch.randint(0, k, (n,), generator=g), k).float()
    return x.to(device), y.to(device)


def _cpu(*tensors):
    return [t.cpu() if isinstance(t, torch.Tensor) else type(t)(*(v.cpu() for v in t)) for t in tensors]


@pytest.mark.parametrize("per_sample", [False, True])
def test_mixup_is_convex_combination_with_partner(per_sample, device):
    x, y = _batch(device=device)
    x0, y0 = x.clone(), y.clone()
    out = mix.mixup(x, y, 0.4, per_sample=per_sample, generator=seeded(device, 1), return_params=True)
    assert all(t.device.type == device for t in (*out[:2], *out[2]))
    assert torch.equal(x, x0) and torch.equal(y, y0), "inputs must be left unchanged"
    x, y, (xo, yo, p) = *_cpu(x, y), _cpu(*out)
    assert sorted(p.perm.tolist()) == list(range(16))
    lam = p.lam.double().view(-1, 1, 1, 1)
    ref = lam * x.double() + (1 - lam) * x.double()[p.perm]
    torch.testing.assert_close(xo.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(yo.double(), lam.view(-1, 1) * y.double() + (1 - lam.view(-1, 1)) * y.double()[p.perm])
    assert torch.allclose(yo.sum(1), torch.ones(16))
    assert (p.lam.unique().numel() > 1) == per_sample


def _partner_share(xo, x, partner):
    """Boolean map of pixels taken from the partner; asserts every pixel comes from one of the two."""
    from_self = (xo == x).all(0)
    from_partner = (xo == partner).all(0)
    assert torch.all(from_self | from_partner)
    return from_partner & ~from_self


@pytest.mark.parametrize("per_sample", [False, True])
def test_cutmix_pastes_one_box_and_targets_match_pixel_share(per_sample, device):
    x, y = _batch(n=32, h=16, w=20, device=device)
    x0 = x.clone()
    out = mix.cutmix(x, y, 1.0, per_sample=per_sample, generator=seeded(device, 3), return_params=True)
    assert torch.equal(x, x0)
    x, y, (xo, yo, p) = *_cpu(x, y), _cpu(*out)
    boxes = []
    for i in range(32):
        j = int(p.perm[i])
        if j == i:
            assert torch.equal(xo[i], x[i])
            continue
        taken = _partner_share(xo[i], x[i], x[j])
        share = taken.double().mean().item()
        assert abs((1 - p.lam[i].item()) - share) < 1e-6, "lam must be recomputed from the pasted area"
        torch.testing.assert_close(yo[i], p.lam[i] * y[i] + (1 - p.lam[i]) * y[j])
        if taken.any():  # the pasted region is one axis-aligned rectangle
            rows, cols = taken.any(1).nonzero().flatten(), taken.any(0).nonzero().flatten()
            box = taken[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            assert box.all() and box.sum() == taken.sum()
            boxes.append((rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()))
    if not per_sample:
        assert len(set(boxes)) <= 1, "one box per batch"
    else:
        assert len(set(boxes)) > 1


def test_cutmix_box_follows_reference_geometry(device):
    # lam = 0.75 -> cut = int(16 * 0.5) = 8 -> box [c - 4, c + 4) clipped; centre drawn uniformly
    lam = torch.full((2000,), 0.75, device=device)
    y1, y2, x1, x2 = _cpu(*mix.cutmix_boxes(lam, 16, 16, generator=seeded(device, 0)))
    assert torch.all(y2 - y1 <= 8) and torch.all(x2 - x1 <= 8)
    full = (y2 - y1) == 8  # unclipped boxes: centre in [4, 12]
    assert set((y1[full] + 4).tolist()) == set(range(4, 13))
    # clipped boxes: centres near the border, e.g. centre 0 gives rows [0, 4)
    assert set((y2 - y1)[~full].tolist()) == {4, 5, 6, 7}


def test_cutmix_prob_zero_is_identity_and_per_sample_prob_mixes_some(device):
    x, y = _batch(device=device)
    xo, yo = mix.cutmix(x, y, 1.0, prob=0.0, generator=seeded(device, 0))
    assert torch.equal(xo, x) and torch.equal(yo, y)
    _, _, p = mix.cutmix(x, y, 1.0, prob=0.5, per_sample=True, generator=seeded(device, 0), return_params=True)
    assert (p.lam == 1).any() and (p.lam < 1).any()


@pytest.mark.parametrize("kernel", [mix.mixup, mix.cutmix])
def test_mixing_is_reproducible_from_generator(kernel, device):
    x, y = _batch(device=device)
    a, b, c = (kernel(x, y, 1.0, per_sample=True, generator=seeded(device, s)) for s in (9, 9, 10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_bad_inputs_are_named():
    x, y = _batch()
    with pytest.raises(ValueError, match="N, K"):
        mix.mixup(x, y[:, 0], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        mix.cutmix(x, y, 0.0)
