import math

import pytest
import torch
import torch.nn.functional as F

from fastkd.train.losses import kd_kl, kd_loss, soft_cross_entropy


def _kd_reference(s, t, y, T, gamma, per_class):
    """Float64 loop over samples and classes of gamma*T^2*KL(p_t||p_s) + (1-gamma)*CE."""
    n, k = s.shape
    kl = ce = 0.0
    for i in range(n):
        zs = [math.exp(v / T) for v in s[i].tolist()]
        zt = [math.exp(v / T) for v in t[i].tolist()]
        ps = [v / sum(zs) for v in zs]
        pt = [v / sum(zt) for v in zt]
        kl += sum(pt[c] * (math.log(pt[c]) - math.log(ps[c])) for c in range(k))
        z1 = [math.exp(v) for v in s[i].tolist()]
        ce += -sum(y[i][c].item() * math.log(z1[c] / sum(z1)) for c in range(k))
    kl /= n * (k if per_class else 1)
    return gamma * T * T * kl + (1 - gamma) * ce / n


@pytest.mark.parametrize("reduction", ["batchmean", "mean"])
@pytest.mark.parametrize("T,gamma", [(20.0, 0.5), (4.0, 0.9), (1.0, 1.0)])
def test_kd_loss_matches_float64_reference(reduction, T, gamma):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 10, generator=g) * 3, torch.randn(6, 10, generator=g) * 3
    y = F.softmax(torch.randn(6, 10, generator=g), 1)
    got = kd_loss(s, t, y, temperature=T, gamma=gamma, reduction=reduction).item()
    assert got == pytest.approx(_kd_reference(s, t, y, T, gamma, reduction == "mean"), rel=1e-5)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's reference warns about itself
def test_mean_reduction_is_batchmean_over_classes_like_kldivloss():
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    a = kd_kl(s, t, 20.0, "mean")
    torch.testing.assert_close(a * 10, kd_kl(s, t, 20.0, "batchmean"))
    # PyTorch's KLDivLoss default ("mean"), as the paper's code called it
    ref = torch.nn.KLDivLoss()(F.log_softmax(s / 20, 1), F.softmax(t / 20, 1))
    torch.testing.assert_close(a, ref)


def test_gamma_zero_is_cross_entropy_and_ignores_teacher():
    s = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    y = F.one_hot(labels, 4).float()
    torch.testing.assert_close(kd_loss(s, None, y, temperature=4, gamma=0.0), F.cross_entropy(s, labels))
    torch.testing.assert_close(soft_cross_entropy(s, y), F.cross_entropy(s, labels))


def test_kl_of_identical_distributions_is_zero():
    s = torch.randn(4, 6)
    assert kd_kl(s, s.clone(), 3.0).abs().item() < 1e-6


def test_kd_loss_takes_integer_labels_as_class_indices_never_broadcast():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(10, 10, generator=g), torch.randn(10, 10, generator=g)  # N == K: broadcasting would pass
    y = torch.randint(0, 10, (10,), generator=g)
    got = kd_loss(s, t, y, temperature=4.0, gamma=0.5)
    ref = _kd_reference(s.double(), t.double(), F.one_hot(y, 10).double(), 4.0, 0.5, False)
    assert got.item() == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="floats"):
        kd_loss(s, t, y.float(), temperature=4.0, gamma=0.5)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        kd_loss(s, t, torch.zeros(10, 3), temperature=4.0, gamma=0.5)
