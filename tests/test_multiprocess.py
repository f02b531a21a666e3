"""Two real processes under `accelerate launch`: on the CPU (gloo) everywhere, and on two GPUs
(NCCL) where a machine has them: sharding, gradient sync, exact eval."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, cwd, timeout=600, gpus=False):
    """Two processes. ``gpus=False``: CPU processes over gloo, with every GPU hidden (on a machine
    with one GPU both ranks would otherwise take cuda:0 and NCCL would fail)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port())] + args
    env = os.environ | ({} if gpus else {"CUDA_VISIBLE_DEVICES": ""})
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("gpus", [False, pytest.param(True, marks=pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"))], ids=["cpu-gloo", "2-gpu-nccl"])
def test_two_process_training_and_distillation(tmp_path, gpus):
    _launch([str(Path(__file__).with_name("mp_worker.py")), str(tmp_path)], cwd=tmp_path, gpus=gpus)
    r = json.loads((tmp_path / "result.json").read_text())
    assert r["device_type"] == ("cuda" if gpus else "cpu")
    assert r["outputs_on_ranks"] == [True, False], "per-image outputs are gathered to the main process only"
    assert r["num_processes"] == 2
    idx = r["train_indices"]
    assert len(idx) == len(set(idx)) == 256, "training shards must be disjoint and cover the set"
    assert r["params_equal"], "DDP must keep both processes' weights identical"
    for run in ("teacher", "student"):
        m = r[run]
        assert m["num_processes"] == 2 and m["test_examples"] == 101, "every test image counted once"
    o = np.load(tmp_path / "teacher" / "test_outputs.npz")
    assert np.array_equal(o["index"], np.arange(101))
    assert (o["logits"].argmax(1) == o["labels"]).mean() == pytest.approx(r["teacher"]["test_accuracy"])
    assert r["student"]["teacher_test_accuracy"] == pytest.approx(r["teacher"]["test_accuracy"])


def test_cli_under_accelerate_launch(tmp_path):
    _launch(["-m", "fastkd", "train", "--preset", "smoke", "--set", "train.epochs=1", "--set", "data.limit_test=333",
             "--out", str(tmp_path / "t"), "--quiet"], cwd=tmp_path)
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert m["num_processes"] == 2 and m["test_examples"] == 333


def test_a_process_with_no_evaluation_images_does_not_stall_the_gather(tmp_path):
    # one test image for two processes: rank 0's evaluation shard is empty, and what it sends to
    # the gather of per-image outputs must match rank 1's in dtype and shape
    _launch(["-m", "fastkd", "train", "--preset", "smoke", "--set", "train.epochs=1", "--set", "data.limit_test=1",
             "--set", "data.limit_train=64", "--set", "train.batch_size=16", "--out", str(tmp_path / "t"), "--quiet"],
            cwd=tmp_path, timeout=300)
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    o = np.load(tmp_path / "t" / "test_outputs.npz")
    assert m["test_examples"] == 1 and o["index"].tolist() == [0] and o["index"].dtype == np.int64
    assert o["logits"].shape == (1, 10) and o["features"].shape[0] == 1
