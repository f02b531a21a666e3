import pytest
import torch

from fastkd import models

# Parameter counts: the paper (docs/protocol.md) for resnet18/lenet/alexnet; the CRD/RepDistiller
# benchmark tables for the CIFAR KD zoo (100 classes); torchvision's published ImageNet models.
KNOWN = [
    ("resnet18", 10, 11_173_962), ("lenet", 10, 62_006), ("alexnet", 10, 14_859_082),
    ("resnet20", 10, 272_474), ("resnet56", 10, 855_770), ("resnet110", 10, 1_730_714),
    ("resnet8x4", 100, 1_233_540), ("resnet32x4", 100, 7_433_860),
    ("wrn_16_2", 100, 703_284), ("wrn_40_2", 100, 2_255_156), ("vgg8", 100, 3_965_028), ("vgg13", 100, 9_462_180),
    ("resnet18_imagenet", 1000, 11_689_512), ("resnet34_imagenet", 1000, 21_797_672),
    ("resnet50_imagenet", 1000, 25_557_032),
]


@pytest.mark.parametrize("name,k,count", KNOWN)
def test_parameter_counts_match_published_architectures(name, k, count):
    m = models.create(name, k)
    assert sum(p.numel() for p in m.parameters()) == count


@pytest.mark.parametrize("name", ["resnet18", "lenet", "alexnet", "resnet8", "resnet8x4", "wrn_16_2", "vgg8", "resnet32"])
def test_forward_is_head_of_features(name):
    torch.manual_seed(0)
    m = models.create(name, 7).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = m(x)
        feats = m.features(x)
        both = m.forward_with_features(x)
    assert logits.shape == (3, 7)
    assert feats.shape == (3, m.feature_dim)
    torch.testing.assert_close(m.head(feats), logits)
    torch.testing.assert_close(both[0], logits)


def test_imagenet_resnet_downsamples_by_32():
    m = models.create("resnet18_imagenet", 5).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError) as e:
        models.create("resnet19", 10)
    assert "resnet19" in str(e.value) and "resnet18" in str(e.value) and "lenet" in str(e.value)


def test_channels_last_gives_same_output():
    torch.manual_seed(0)
    m = models.create("resnet8", 10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        out = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
