"""What a run records about its machine, read without side effects."""
import shutil

import pytest
import torch

from fastkd.run import runinfo


def test_recording_the_hardware_does_not_initialise_cuda(monkeypatch):
    # a run records its hardware before it loads data: naming the GPUs through torch would start
    # CUDA there (faked here: a machine with two GPUs whose torch names would initialise it)
    def initialises(*a, **k):
        raise AssertionError("CUDA initialised to read a GPU's name")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", initialises)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no nvidia-smi either
    info = runinfo.hardware()
    assert info["gpus"] == ["CUDA device 0", "CUDA device 1"] and info["cuda"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_names_come_from_the_driver_before_cuda_starts():
    names = runinfo.gpu_names()
    assert len(names) == torch.cuda.device_count() and all(names)
