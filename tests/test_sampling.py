import numpy as np
import pytest
import torch
from scipy import stats

from helpers import seeded
from fastkd.kernels import sampling


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.2, 0.2), (2.0, 5.0), (0.5, 3.0)])
def test_beta_matches_scipy_distribution(a, b, device):
    x = sampling.beta(a, b, 20000, generator=seeded(device, 123))
    assert x.device.type == device and x.dtype == torch.float64
    x = x.cpu().numpy()
    assert np.all((x >= 0) & (x <= 1))
    # Kolmogorov-Smirnov against the exact Beta CDF; a wrong sampler fails this by orders of magnitude
    assert stats.kstest(x, stats.beta(a, b).cdf).pvalue > 1e-3


def test_beta_is_determined_by_generator():
    def draw(s):
        return sampling.beta(1.0, 1.0, 100, generator=torch.Generator().manual_seed(s))
    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


def test_uniform_int_range_and_tensor_high(device):
    g = seeded(device, 0)
    x = sampling.uniform_int(9, 10000, generator=g, device=device).cpu()
    assert x.min() == 0 and x.max() == 8
    assert abs(np.bincount(x.numpy()).std() / 1111) < 0.1
    high = torch.tensor([1, 2, 3] * 100, device=device)
    y = sampling.uniform_int(high, 300, generator=g, device=device)
    assert y.device.type == device and torch.all((y >= 0) & (y < high))
