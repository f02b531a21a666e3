"""The paper's networks and the KD zoo compute their sources' functions, not just their shapes:
weights are copied layer by layer into independent float64 transcriptions and the outputs
compared; multiply-adds and initialisation statistics are checked against known values."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastkd import models


def _layers(model, kinds=(nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
    return [m for m in model.modules() if isinstance(m, kinds)]


def authors_alexnet(x, convs, fcs):
    """The authors' CIFAR AlexNet forward, written out op by op (eval mode: dropout is identity)."""
    (c1, c2, c3, c4, c5), (f1, f2, f3) = convs, fcs
    x = F.max_pool2d(F.relu(F.conv2d(x, *c1, padding=2)), 2)          # 32 -> 34 -> 17
    x = F.max_pool2d(F.relu(F.conv2d(x, *c2, padding=2)), 2)          # 17 -> 19 -> 9
    x = F.relu(F.conv2d(x, *c3, padding=1))
    x = F.relu(F.conv2d(x, *c4, padding=1))
    x = F.relu(F.conv2d(x, *c5, padding=1))
    x = F.max_pool2d(x, kernel_size=3, stride=2).flatten(1)           # 9 -> 4: 256 * 16 = 4096
    x = F.relu(F.linear(x, *f1))
    x = F.relu(F.linear(x, *f2))
    return F.linear(x, *f3)


def repdistiller_vgg(x, blocks, fc):
    """RepDistiller's VGG forward: conv-BN-ReLU blocks, pools after blocks 0-2, after block 3 only
    when the input is 64 px, then global average pooling and the classifier (BN in eval mode)."""
    h = x.shape[2]
    for i, block in enumerate(blocks):
        for conv, bn in block:
            x = F.conv2d(x, *conv, padding=1)
            x = F.batch_norm(x, bn["mean"], bn["var"], bn["weight"], bn["bias"], training=False, eps=1e-5)
            x = F.relu(x)
        if i < 3 or (i == 3 and h == 64):
            x = F.max_pool2d(x, 2)
    return F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), *fc)


def _wb(m):
    return (m.weight.detach().double(), m.bias.detach().double())


def test_alexnet_is_the_authors_network():
    torch.manual_seed(0)
    net = models.create("alexnet", 10).double().eval()
    convs = [_wb(m) for m in _layers(net, nn.Conv2d)]
    fcs = [_wb(m) for m in _layers(net, nn.Linear)]
    assert [c[0].shape[:2] for c in convs] == [(64, 3), (192, 64), (384, 192), (256, 384), (256, 256)]
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), authors_alexnet(x, convs, fcs), rtol=1e-12, atol=1e-12)
    drops = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.6, 0.6]


@pytest.mark.parametrize("name,size", [("vgg8", 32), ("vgg13", 32), ("vgg8", 64)])
def test_vgg_is_repdistillers_network(name, size):
    torch.manual_seed(1)
    net = models.create(name, 100).double()
    # give batch norm non-trivial running statistics first
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, size, size, dtype=torch.float64))
    net.eval()
    convs, bns = _layers(net, nn.Conv2d), _layers(net, nn.BatchNorm2d)
    per_stage = {"vgg8": [1, 1, 1, 1, 1], "vgg13": [2, 2, 2, 2, 2]}[name]
    blocks, i = [], 0
    for n in per_stage:
        blocks.append([(_wb(convs[i + j]), {"mean": bns[i + j].running_mean.double(), "var": bns[i + j].running_var.double(),
                                             "weight": bns[i + j].weight.detach().double(),
                                             "bias": bns[i + j].bias.detach().double()}) for j in range(n)])
        i += n
    x = torch.randn(3, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), repdistiller_vgg(x, blocks, _wb(net.head)), rtol=1e-10, atol=1e-12)


def multiply_adds(model, size=32) -> float:
    """Multiply-adds of the convolutions and linear layers for one image, counted with hooks."""
    total = [0]

    def conv(m, inp, out):
        total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inp, out):
        total[0] += m.in_features * m.out_features
    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in _layers(model, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total[0]


@pytest.mark.parametrize("name,k,macs", [("alexnet", 10, 227.7e6), ("vgg8", 100, 96.2e6), ("vgg13", 100, 284.9e6)])
def test_multiply_adds_match_the_published_networks(name, k, macs):
    assert multiply_adds(models.create(name, k)) == pytest.approx(macs, abs=0.05e6)


@pytest.mark.parametrize("name", ["resnet18", "lenet", "alexnet"])
def test_paper_networks_use_pytorchs_default_init(name):
    # nn.Conv2d / nn.Linear defaults: weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with
    # a = sqrt(5)), so std = bound / sqrt(3); batch norm 1 and 0
    torch.manual_seed(0)
    net = models.create(name, 10)
    assert "default" in net.init_rule
    for m in _layers(net, (nn.Conv2d, nn.Linear)):
        fan_in = m.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)
        w = m.weight.detach()
        assert w.abs().max() <= bound + 1e-7
        if w.numel() >= 20000:
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    for m in _layers(net, nn.BatchNorm2d):
        assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_kd_zoo_follows_repdistillers_init():
    torch.manual_seed(0)
    res = models.create("resnet56", 100)
    big = [m for m in _layers(res, nn.Conv2d) if m.weight.numel() >= 30000]
    for m in big:  # kaiming normal, fan_out, ReLU gain
        std = math.sqrt(2 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1]))
        assert m.weight.std().item() == pytest.approx(std, rel=0.05)
    vgg = models.create("vgg13", 100)
    assert vgg.head.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(vgg.head.bias == 0)
    assert all(torch.all(m.bias == 0) for m in _layers(vgg, nn.Conv2d))
    wrn = models.create("wrn_40_2", 100)
    assert torch.all(wrn.head.bias == 0)
