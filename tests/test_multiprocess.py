"""Two real CPU processes under `accelerate launch` (gloo): sharding, gradient sync, exact eval."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, cwd, timeout=600):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port())] + args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_process_training_and_distillation(tmp_path):
    _launch([str(Path(__file__).with_name("mp_worker.py")), str(tmp_path)], cwd=tmp_path)
    r = json.loads((tmp_path / "result.json").read_text())
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
