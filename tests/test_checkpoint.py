import pytest
import torch

from fastkd.run import checkpoint as ck
from fastkd import models


def test_roundtrip_and_wrong_model_or_classes_are_refused(tmp_path):
    m = models.create("resnet8", 10)
    p = tmp_path / "w.safetensors"
    ck.save_weights(m, p, model_name="resnet8", num_classes=10)
    m2 = models.create("resnet8", 10)
    ck.load_weights(m2, p, model_name="resnet8", num_classes=10)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ck.CheckpointError, match="for model 'resnet8', not 'resnet20'"):
        ck.load_weights(models.create("resnet20", 10), p, model_name="resnet20", num_classes=10)
    with pytest.raises(ck.CheckpointError, match="10-class head, the data set has 100"):
        ck.load_weights(models.create("resnet8", 100), p, model_name="resnet8", num_classes=100)


def test_weights_without_metadata_still_checked_by_shape(tmp_path):
    from safetensors.torch import save_file
    p = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in models.create("lenet", 10).state_dict().items()}, str(p))
    with pytest.raises(ck.CheckpointError, match="do not fit model 'resnet8'"):
        ck.load_weights(models.create("resnet8", 10), p, model_name="resnet8", num_classes=10)


def test_corrupt_checkpoint_is_named(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="bad.safetensors"):
        ck.load_weights(models.create("lenet", 10), p, model_name="lenet", num_classes=10)
