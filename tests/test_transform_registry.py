"""A device augmentation is one DeviceTransform plus one registry line: a small one registered
here is accepted in `augment`, ordered, run by _finish at its stage, and refused by a backend that
cannot run it."""
import pytest
import torch

from fastkd import config as C
from fastkd.data import load_splits
from fastkd.errors import ConfigError
from fastkd.kernels import augment as K
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec, names_text
from fastkd.pipelines.transforms import DeviceTransform, register, unregister


def _invert(x, spec, gen):
    return 255 - x


def _swap_halves(x, y, spec, gen):
    """A toy mixing method: sample i takes the right half of sample i+1 (and half its label)."""
    j = torch.roll(torch.arange(x.shape[0]), -1)
    x = x.clone()
    x[..., x.shape[-1] // 2:] = x[j][..., x.shape[-1] // 2:]
    return x, 0.5 * y + 0.5 * y[j]


def _nchw(images):
    return torch.as_tensor(images).permute(0, 3, 1, 2)  # the arrays are N, H, W, C uint8


@pytest.fixture
def registered():
    register(DeviceTransform("invert", pixels=_invert))
    register(DeviceTransform("swap_halves", normalised=_swap_halves, mixing=True))
    yield
    unregister("invert")
    unregister("swap_halves")


@pytest.fixture(scope="module")
def data():
    return load_splits(C.build(overrides=["data.name=sample", "data.limit_train=40"]).data)["train"]


def test_registered_names_compose_validate_and_are_documented(registered):
    assert make_spec("invert+crop_flip").name == "crop_flip+invert"
    assert make_spec("swap_halves+invert").mix == "swap_halves"
    with pytest.raises(ValueError, match="at most one mixing method"):
        make_spec("swap_halves+mixup")
    assert "invert" in names_text() and "swap_halves" in names_text()
    assert C.build(overrides=["augment=invert"]).augment == "invert"


def test_finish_runs_each_transform_at_its_stage(registered, data):
    kw = dict(train=True, batch_size=8, device="cpu", seed=3)
    got = next(iter(build_pipeline("tensor", data, make_spec("invert+swap_halves"), **kw)))
    idx = got.index
    raw = _nchw(data.images[idx.numpy()])
    mean, std = K.channel_constants(data.mean, "cpu"), K.channel_constants(data.std, "cpu")
    x = K.normalize(255 - raw, mean, std, channels_last=True)  # the pixel stage, then normalisation
    y = K.one_hot(got.labels, data.num_classes)
    want_x, want_y = _swap_halves(x, y, None, None)  # the normalised stage
    torch.testing.assert_close(got.images, want_x)
    torch.testing.assert_close(got.targets, want_y)
    # evaluation pipelines apply nothing
    plain = next(iter(build_pipeline("tensor", data, make_spec("invert"), train=False, batch_size=8, device="cpu",
                                     seed=3)))
    torch.testing.assert_close(plain.images, K.normalize(_nchw(data.images[:8]), mean, std))


def test_a_backend_that_normalises_on_the_host_refuses_a_pixel_transform(registered, data):
    with pytest.raises(ConfigError, match="augment: invert runs on raw pixels on the device, but the "
                                          "DataLoaderPipeline backend normalises on the host"):
        build_pipeline("dataloader", data, make_spec("invert"), train=True, batch_size=8, device="cpu", seed=0)
    # a normalised-stage transform is fine there: it runs on the device after the workers
    batch = next(iter(build_pipeline("dataloader", data, make_spec("swap_halves"), train=True, batch_size=8,
                                     device="cpu", seed=0, num_workers=0)))
    assert torch.allclose(batch.targets.sum(1), torch.ones(8))
