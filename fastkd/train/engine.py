"""One Accelerate training loop for teachers (cross-entropy on soft targets) and students (KD).

The same loop runs on one CPU, one GPU, or many processes under ``accelerate launch``; mixed
precision, gradient accumulation, ``channels_last`` and ``torch.compile`` are config switches.
The teacher of a distillation run is frozen, in eval mode, under autocast, and never wrapped
in DDP. Every epoch ends with a checkpoint; rerunning the same command resumes.
"""
from __future__ import annotations

import functools
import itertools
import math
import sys
import time

import torch

from ..config import Config
from ..errors import TrainingError
from ..metrics.teacher_stddev import TeacherMeanProbability, merge, moments_value
from ..pipelines import require as require_backend
from ..run import checkpoint as ckpt
from ..run import runinfo, seeding
from ..run.identity import digest
from ..run.progress import bar as progress_bar
from ..run.progress import bars_wanted
from ..run.rundir import RunDir, write_json
from ..run.runrecord import RunMetrics
from . import teacher_cache
from .accelerator import make_accelerator
from .evaluate import evaluate, save_outputs
from .objectives import objective_for
from .optim import build_optimizer, build_scheduler
from .run_identity import run_identity_of, with_absolute_paths
from .runsetup import build_run_setup
from .teacher import cached_teacher_logits, data_differences, load_teacher

PROGRESS_EVERY = 4  # steps between progress-bar refreshes (each one syncs with the device)

__all__ = ["Trainer", "TrainingError", "train"]


class Trainer:
    def __init__(self, cfg: Config, out_dir, *, kind: str = "teacher", overwrite: bool = False, progress: bool = True):
        if kind not in ("teacher", "student"):
            raise ValueError(f"kind must be teacher or student, got {kind!r}")
        if kind == "student" and not cfg.distill.teacher and cfg.distill.gamma > 0:
            raise TrainingError("distill.teacher: a student run needs --teacher RUN_DIR (or distill.gamma=0 "
                                "for the from-scratch baseline)")
        if cfg.train.select in ("val_acc", "val_loss") and not cfg.data.val_split:
            raise TrainingError(f"train.select={cfg.train.select} needs a validation split: set data.val_split "
                                "(e.g. 5000), or train.select=last")
        cfg = with_absolute_paths(cfg)
        self.cfg, self.kind, self.progress = cfg, kind, progress
        require_backend(cfg.data.backend)  # the install hint now, not after loading the data
        self.rd = RunDir(out_dir)
        self.identity = run_identity_of(cfg, kind)  # read-only: nothing is written if the data is missing
        self.acc = make_accelerator(cfg, self.rd.path)
        self.main = self.acc.is_main_process
        self.status = "new"
        if self.main:
            self.rd.lock.acquire()  # held until run() ends: a second process on this folder is refused
            try:
                self.status = self.rd.open(self.identity, cfg.to_dict(), overwrite=overwrite,
                                           info={"seed": cfg.seed, **runinfo.environment(self.acc.num_processes)})
            except BaseException:
                if self.rd.read_marker() is None:  # refused before the folder became a run: leave no trace
                    self.rd.lock.back_out()
                else:
                    self.rd.lock.release()
                raise
        if self.main and kind == "student" and cfg.distill.teacher and self.status != "done":
            self._warn_if_data_differs()
        self.acc.wait_for_everyone()
        if not self.main:
            self.status = "done" if self.rd.is_finished() else ("resume" if self.rd.has_checkpoint() else "new")

    def _warn_if_data_differs(self) -> None:
        """A student may read other data than its teacher (the user said so), but it is named."""
        for line in data_differences(self.cfg, self.cfg.distill.teacher, self.identity["data"]):
            message = f"warning: the student's data differs from its teacher's ({line}); the class lists must still match"
            print(message, file=sys.stderr)
            self.rd.log(message)

    # ---- setup -------------------------------------------------------------------------------
    def _setup(self):
        cfg, acc = self.cfg, self.acc
        seeding.seed_everything(cfg.seed)  # same initial weights on every process
        teacher_loader = None
        if self.kind == "student" and cfg.distill.teacher:
            teacher_loader = functools.partial(load_teacher, cfg.distill.teacher, device=acc.device)
        self.cache_teacher = teacher_cache.use_cache(cfg, self.kind)
        # the train split unaugmented: for the k-NN metrics, and for computing the teacher cache
        eval_sets = ["val", "test"] + (["train"] if cfg.train.save_train_outputs or self.cache_teacher else [])
        s = build_run_setup(cfg, acc, eval_sets=eval_sets, progress=self.progress and self.main,
                            teacher_loader=teacher_loader)
        self.classes, self.num_classes, self.spec = s.classes, s.num_classes, s.spec
        self.data_sizes, self.skipped = s.data_sizes, s.skipped
        self.train_pipe, self.eval_pipes, self.teacher = s.train_pipe, s.eval_pipes, s.teacher
        steps = len(self.train_pipe)
        if cfg.train.max_steps_per_epoch:
            steps = min(steps, cfg.train.max_steps_per_epoch)
        if steps == 0:
            share = len(self.train_pipe.data) // self.acc.num_processes
            raise TrainingError(f"train.batch_size={cfg.train.batch_size} is larger than this process's share of "
                                f"the training set ({share} images: not one full batch); lower it or set "
                                "train.drop_last=false")
        self.steps_per_epoch = steps
        optimizer = build_optimizer(s.model.parameters(), cfg.train)
        self.scheduler = build_scheduler(optimizer, steps_per_epoch=math.ceil(steps / cfg.train.grad_accum), tc=cfg.train)
        self.model, self.optimizer = acc.prepare(s.model, optimizer)
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model
        # what the student is taught, summarised as Wang et al.'s T. stddev (students only)
        self.taught = TeacherMeanProbability() if self.teacher is not None and cfg.distill.gamma > 0 else None
        self.objective = objective_for(cfg, self.teacher, autocast=acc.autocast,
                                       compile_fn=torch.compile if cfg.train.compile else None,
                                       cached_logits=self._teacher_table() if self.cache_teacher else None,
                                       observe=self.taught.update if self.taught is not None else None)

    def _teacher_table(self) -> torch.Tensor:
        return cached_teacher_logits(self.cfg, self.teacher, self.eval_pipes["train"], self.acc,
                                     data=self.identity["data"], train_size=self.data_sizes["train"],
                                     num_classes=self.num_classes, log=self.rd.log if self.main else None)

    @property
    def bare_model(self):
        return self.acc.unwrap_model(self.model)

    # ---- checkpoints -------------------------------------------------------------------------
    def _weights_meta(self) -> dict:
        return dict(model_name=self.cfg.model, num_classes=self.num_classes, classes=self.classes)

    def _save_checkpoint(self, epoch: int, history: list, best: dict) -> None:
        if not self.main:
            return
        state = {"epoch": epoch, "history": history, "best": best, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": seeding.rng_state(),
                 "identity": digest(self.identity)}
        if self.acc.scaler is not None:
            state["scaler"] = self.acc.scaler.state_dict()
        if self.taught is not None:
            state["taught"] = self.taught.state()

        def write(folder):
            ckpt.save_weights(self.bare_model, folder / "model.safetensors", **self._weights_meta())
            ckpt.save_state(state, folder)
        ckpt.save_checkpoint(self.rd.checkpoints, epoch, write)

    def _resume(self) -> tuple[int, list, dict]:
        last = self.rd.last
        state = ckpt.load_state(last)
        if state.get("identity") not in (None, digest(self.identity)):
            raise ckpt.CheckpointError(f"{last}: the checkpoint belongs to another run (identity {state.get('identity')}, "
                                       f"this run is {digest(self.identity)}); pass --overwrite to restart")
        ckpt.load_weights(self.bare_model, last / "model.safetensors", model_name=self.cfg.model,
                          num_classes=self.num_classes, classes=self.classes)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and self.acc.scaler is not None:
            self.acc.scaler.load_state_dict(state["scaler"])
        seeding.set_rng_state(state["rng"])
        if self.taught is not None:
            self.taught.load(state.get("taught"), self.acc.device)
        return state["epoch"], state["history"], state["best"]

    # ---- one epoch ---------------------------------------------------------------------------
    def _loss(self, batch):
        return self.objective.loss(self.forward(batch.images), batch)

    def _train_epoch(self, epoch: int, bar) -> dict:
        acc, cfg = self.acc, self.cfg
        self.model.train()
        self.train_pipe.set_epoch(epoch)
        self.objective.set_epoch(epoch)  # methods whose weights follow a schedule (DKD's warm-up)
        loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        seen = steps = 0
        _sync(acc)
        start = time.perf_counter()
        # islice: a capped epoch draws exactly steps_per_epoch batches (none extra)
        for step, batch in enumerate(itertools.islice(self.train_pipe, self.steps_per_epoch)):
            with acc.accumulate(self.model):
                loss = self._loss(batch)
                acc.backward(loss)
                if cfg.train.grad_clip and acc.sync_gradients:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
                lr_used = self.optimizer.param_groups[0]["lr"]  # the rate this step trains with
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                # fp16: a step the scaler skipped (inf gradients) does not advance the schedule; the
                # scaler has synchronised to decide it, so reading the flag costs nothing more
                if acc.sync_gradients and not self.optimizer.step_was_skipped:
                    self.scheduler.step()
            loss_sum += loss.detach().double()
            seen += len(batch)
            steps += 1
            if bar is not None:  # only when progress is shown: no host sync in the loop otherwise
                bar.update(1)
                if step % PROGRESS_EVERY == 0 or steps == self.steps_per_epoch:  # a host sync: not every step
                    running = loss_sum.item() / steps
                    if not math.isfinite(running):
                        raise TrainingError(f"loss became {running} at epoch {epoch + 1}, step {step + 1}; "
                                            "lower train.lr or use train.grad_clip")
                    bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr_used:.3g}")
        _sync(acc)
        elapsed = time.perf_counter() - start
        total = acc.reduce(torch.tensor([loss_sum.item(), steps], dtype=torch.float64, device=acc.device), "sum")
        mean_loss = total[0].item() / max(total[1].item(), 1)
        if not math.isfinite(mean_loss):
            raise TrainingError(f"loss became {mean_loss} during epoch {epoch + 1}; lower train.lr or use train.grad_clip")
        # lr: the rate the epoch trained with (its last step's), not the next epoch's
        return {"epoch": epoch + 1, "train_loss": mean_loss, "lr": lr_used,
                "train_seconds": elapsed, "images_per_second": seen * acc.num_processes / max(elapsed, 1e-9)}

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> dict:
        try:
            if self.status == "done":
                return RunMetrics.load(self.rd.metrics).to_dict()
            return self._run()
        except torch.OutOfMemoryError as exc:
            raise TrainingError(f"out of memory on {self.acc.device} ({str(exc).splitlines()[0][:200]}); lower "
                                "train.batch_size or data.eval_batch_size, or use train.precision=bf16") from exc
        finally:
            self.rd.lock.release()

    def _run(self) -> dict:
        acc, cfg = self.acc, self.cfg
        self._setup()
        start_epoch, history, best = 0, [], {"epoch": None, "value": None}
        if self.status == "resume":
            start_epoch, history, best = self._resume()
        if self.main:
            sizes = ", ".join(f"{k} {v}" for k, v in self.data_sizes.items())
            self.rd.log(f"{'resume at epoch ' + str(start_epoch + 1) if start_epoch else 'start'}: {self.kind} "
                        f"{cfg.model} augment={cfg.augment} seed={cfg.seed}; data {cfg.data.name}"
                        f"{' at ' + str(cfg.data.path) if cfg.data.path else ''} ({sizes} images, "
                        f"{self.num_classes} classes); backend {cfg.data.backend}; device {acc.device} "
                        f"x{acc.num_processes}")
        if cfg.track.trackers:
            acc.init_trackers(cfg.track.project, config=_flat(cfg.to_dict()))
        from tqdm.auto import tqdm
        shown = self.progress and self.main and bars_wanted()
        for epoch in range(start_epoch, cfg.train.epochs):
            bar = progress_bar(total=self.steps_per_epoch, desc=f"{self.kind} {cfg.model} epoch {epoch + 1}/{cfg.train.epochs}",
                               leave=False, dynamic_ncols=True) if shown else None
            try:
                record = self._train_epoch(epoch, bar)
            finally:
                if bar is not None:
                    bar.close()
            if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
                for name in self._eval_sets():
                    r = evaluate(self.bare_model, self.eval_pipes[name], acc)
                    record[f"{name}_accuracy"], record[f"{name}_loss"] = r.accuracy, r.loss
                best = self._update_best(record, best)
            history.append(record)
            self._save_checkpoint(epoch + 1, history, best)
            if self.main:
                self.rd.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
                if self.progress:
                    tqdm.write(_epoch_line(record, cfg.train.epochs))
            if cfg.track.trackers:
                acc.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
            acc.wait_for_everyone()
        return self._finish(history, best)

    def _eval_sets(self) -> list[str]:
        sets = ["val"] if "val" in self.eval_pipes else []
        if not sets or self.cfg.train.select == "test_loss":
            sets.append("test")
        return sets

    def _update_best(self, record: dict, best: dict) -> dict:
        select = self.cfg.train.select
        if select == "last":
            return best
        key = {"val_acc": "val_accuracy", "val_loss": "val_loss", "test_loss": "test_loss"}[select]
        value = record[key]
        better = best["value"] is None or (value > best["value"] if key.endswith("accuracy") else value < best["value"])
        if better:
            best = {"epoch": record["epoch"], "value": value}
            if self.main:
                ckpt.save_weights(self.bare_model, self.rd.best, **self._weights_meta())
        return best

    def _finish(self, history: list, best: dict) -> dict:
        acc, cfg = self.acc, self.cfg
        acc.wait_for_everyone()
        if cfg.train.select != "last" and best["epoch"] is not None:
            ckpt.load_weights(self.bare_model, self.rd.best, **self._weights_meta())
        # per-image outputs are written by the main process alone: only it gathers them
        test = evaluate(self.bare_model, self.eval_pipes["test"], acc, collect=True, teacher=self.teacher,
                        gather_to="main")
        val = evaluate(self.bare_model, self.eval_pipes["val"], acc) if "val" in self.eval_pipes else None
        train_out = evaluate(self.bare_model, self.eval_pipes["train"], acc, collect=True, gather_to="main") \
            if cfg.train.save_train_outputs else None
        speeds = [h["images_per_second"] for h in history]
        record = RunMetrics(
            kind=self.kind, model=cfg.model, augment=cfg.augment, seed=cfg.seed, test_accuracy=test.accuracy,
            test_loss=test.loss, test_examples=test.count, epochs=len(history),
            selected_epoch=best["epoch"] if cfg.train.select != "last" else len(history), select=cfg.train.select,
            # the first epoch carries warm-up and compilation; report the rest when there is a rest
            images_per_second=float(sorted(speeds[1:] or speeds)[len(speeds[1:] or speeds) // 2]),
            train_seconds=sum(h["train_seconds"] for h in history), num_processes=acc.num_processes,
            data_sizes=self.data_sizes, identity=digest(self.identity), history=history,
            val_accuracy=val.accuracy if val is not None else None, val_loss=val.loss if val is not None else None,
            skipped_images={k: len(v) for k, v in self.skipped.items()} or None,
            teacher=cfg.distill.teacher if self.teacher is not None else None,
            teacher_test_accuracy=test.teacher_accuracy, agreement=test.agreement,
            teacher_cache=("used" if self.cache_teacher else "off") if self.teacher is not None else None,
            teacher_stddev=self._teacher_stddev())
        metrics = record.to_dict()
        if self.main:
            ckpt.save_weights(self.bare_model, self.rd.model, **self._weights_meta(),
                              extra={"identity": digest(self.identity)})
            self.rd.record_weights()  # checked whenever the run is read as a teacher or evaluated
            save_outputs(self.rd.outputs, test.outputs)
            if train_out is not None:
                save_outputs(self.rd.train_outputs, train_out.outputs)
                if self.kind == "teacher":
                    # the same pass is what a student of this teacher would compute first: leave it as its
                    # cache (students, which also save these outputs in a study, rarely teach: none written)
                    key = teacher_cache.cache_key(cfg, self.rd.path, self.identity["data"], self.data_sizes["train"])
                    teacher_cache.save(self.rd.path, key, train_out.outputs["logits"], locked=True)
            write_json(self.rd.metrics, metrics)  # last: its presence marks the run finished
            self.rd.log(f"finished: test_accuracy={test.accuracy:.4f} on {test.count} images")
            if not cfg.train.keep_checkpoints:  # a finished run needs only its weights, metrics and outputs
                self.rd.remove_checkpoints()
        if cfg.track.trackers:
            acc.end_training()
        acc.wait_for_everyone()
        return metrics

    def _teacher_stddev(self) -> dict | None:
        """T. stddev over every process's chunks (each process chunks its own stream of batches)."""
        if self.taught is None:
            return None
        rows = self.taught.moments(self.num_classes, self.acc.device).unsqueeze(0)
        if self.acc.num_processes > 1:
            rows = self.acc.gather(rows)
        count, m2 = merge(rows)
        return {"value": moments_value(count, m2), "chunks": count, "chunk_size": self.taught.chunk,
                "view": self.cfg.augment, "teacher_outputs": "cache" if self.cache_teacher else "live"}


def _sync(acc) -> None:
    if acc.device.type == "cuda":
        torch.cuda.synchronize(acc.device)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _epoch_line(r: dict, epochs: int) -> str:
    parts = [f"epoch {r['epoch']}/{epochs}", f"loss {r['train_loss']:.4f}", f"{r['images_per_second']:.0f} img/s"]
    for name in ("val", "test"):
        if f"{name}_accuracy" in r:
            parts.append(f"{name} acc {100 * r[f'{name}_accuracy']:.2f}%")
    return "  ".join(parts)


def train(cfg: Config, out_dir, *, kind: str = "teacher", overwrite: bool = False, progress: bool = True) -> dict:
    """Train (``kind="teacher"``) or distill (``kind="student"``) and return the run's metrics."""
    return Trainer(cfg, out_dir, kind=kind, overwrite=overwrite, progress=progress).run()
