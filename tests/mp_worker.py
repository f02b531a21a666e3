"""Run by test_multiprocess.py under `accelerate launch` with 2 processes (CPU and gloo, or 2 GPUs)."""
import json
import sys
from pathlib import Path

import torch

from fastkd import config as C
from fastkd.train import engine
from fastkd.data import load_splits
from fastkd.pipelines import build_pipeline
from fastkd.pipelines.spec import make_spec

out = Path(sys.argv[1])
cfg = C.build(overrides=["data.name=sample", "data.limit_train=256", "data.limit_test=101", "model=resnet8",
                         "train.epochs=2", "train.batch_size=32", "train.lr=0.05", "augment=crop_flip+cutmix",
                         "train.select=last", "data.eval_batch_size=40"])

trainer = engine.Trainer(cfg, out / "teacher", progress=False)
acc = trainer.acc
teacher_metrics = trainer.run()

# 1. shards: every process's training indices for an epoch, gathered
data = load_splits(cfg.data)
pipe = build_pipeline("tensor", data["train"], make_spec("none"), train=True, batch_size=32, device=acc.device,
                      seed=cfg.seed, process_index=acc.process_index, num_processes=acc.num_processes)
pipe.set_epoch(1)
mine = torch.cat([b.index for b in pipe])
train_indices = acc.gather(mine).tolist()

# 2. gradients synchronised: identical parameters on both processes after training on different data
flat = torch.cat([p.detach().flatten() for p in trainer.bare_model.parameters()])
params = acc.gather(flat.unsqueeze(0))

# 2b. per-image outputs gathered to the main process only
from fastkd.train.evaluate import evaluate  # noqa: E402
eval_pipe = build_pipeline("tensor", data["test"], make_spec("none"), train=False, batch_size=40, device=acc.device,
                           seed=cfg.seed, process_index=acc.process_index, num_processes=acc.num_processes)
gathered = evaluate(trainer.bare_model, eval_pipe, acc, collect=True, gather_to="main").outputs
has_outputs = acc.gather(torch.tensor([gathered is not None and len(gathered["index"]) == 101], device=acc.device))

# 3. distillation under the same launch
student_metrics = engine.train(C.build(overrides=[f"{k}={v}" for k, v in [
    ("data.name", "sample"), ("data.limit_train", 256), ("data.limit_test", 101), ("model", "lenet"),
    ("train.epochs", 1), ("train.batch_size", 32), ("augment", "none"), ("distill.teacher", out / "teacher")]]),
    out / "student", kind="student", progress=False)

if acc.is_main_process:
    (out / "result.json").write_text(json.dumps({
        "num_processes": acc.num_processes, "train_indices": train_indices, "device_type": acc.device.type,
        "outputs_on_ranks": [bool(v) for v in has_outputs.tolist()],
        "params_equal": bool(torch.equal(params[0], params[1])), "teacher": teacher_metrics, "student": student_metrics,
        "per_process_batches": len(pipe)}))
acc.wait_for_everyone()
torch.distributed.destroy_process_group()  # closed here, not left to the interpreter's exit
