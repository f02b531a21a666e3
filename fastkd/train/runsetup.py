"""Everything a run needs before its first step, built one way for training and for evaluation:
the data in the form the backend reads, the pipelines, the model (and a student's teacher)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .. import models
from ..config import Config, ConfigError
from ..data import load_splits
from fastkd.pipelines import Layout, backend_reads, build_pipeline
from fastkd.pipelines.spec import AugmentSpec, make_spec


@dataclass
class RunSetup:
    classes: list[str]
    data_sizes: dict[str, int]
    skipped: dict[str, list]
    spec: AugmentSpec
    model: torch.nn.Module  # bare, on the device
    eval_pipes: dict = field(default_factory=dict)
    train_pipe: object | None = None
    teacher: torch.nn.Module | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def pipeline_layout(cfg: Config, acc, *, batch_size: int, drop_last: bool | None = None) -> Layout:
    """The process layout every backend of this run shares."""
    return Layout(device=acc.device, seed=cfg.seed, batch_size=batch_size, rank=acc.process_index,
                  world=acc.num_processes, drop_last=drop_last, channels_last=cfg.train.channels_last,
                  num_workers=cfg.data.num_workers, image_size=cfg.data.image_size,
                  max_pixels=cfg.data.max_pixels, on_corrupt=cfg.data.on_corrupt)


def backend_options(cfg: Config):
    """The run's ``data.<backend>`` section (None for a backend without options)."""
    return getattr(cfg.data, cfg.data.backend, None)


def check_input_size(model_name: str, model, data) -> None:
    """Networks with a fixed-size flatten (LeNet, AlexNet) take only the size they were built for."""
    need = getattr(model, "input_size", None)
    if need is None or not data.decoded:
        return
    h, w = data.images.shape[1:3]
    if (h, w) != (need, need):
        raise ConfigError(f"model: {model_name} takes {need}x{need} images (its classifier has a fixed input size), "
                          f"the data's are {w}x{h}; set data.image_size={need} or choose a model with global "
                          "pooling (e.g. resnet18)")


def build_run_setup(cfg: Config, acc, *, train: bool = True, eval_sets=("val", "test"), progress: bool = False,
                    teacher_loader=None) -> RunSetup:
    """Data, pipelines and model for ``cfg`` on ``acc``'s device. ``train=False`` builds no
    training pipeline (evaluation). ``teacher_loader(num_classes, classes=...)`` returns a
    student's frozen teacher."""
    data = load_splits(cfg.data, progress=progress, reads=backend_reads(cfg.data.backend))
    train_set = data["train"]
    classes = list(train_set.classes)
    spec = make_spec(cfg.augment, **dataclasses.asdict(cfg.aug))
    options = backend_options(cfg)
    eval_layout = pipeline_layout(cfg, acc, batch_size=cfg.data.eval_batch_size)
    eval_pipes = {name: build_pipeline(cfg.data.backend, data[name], make_spec("none"), train=False, layout=eval_layout,
                                       options=options) for name in eval_sets if name in data}
    train_pipe = None
    if train:
        layout = pipeline_layout(cfg, acc, batch_size=cfg.train.batch_size, drop_last=cfg.train.drop_last)
        train_pipe = build_pipeline(cfg.data.backend, train_set, spec, train=True, layout=layout, options=options)
    model = models.create(cfg.model, len(classes))
    check_input_size(cfg.model, model, train_set)
    if cfg.train.sync_bn and acc.num_processes > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(acc.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = teacher_loader(len(classes), classes=classes) if teacher_loader is not None else None
    if teacher is not None and cfg.train.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return RunSetup(classes=classes, data_sizes={k: len(v) for k, v in data.items()},
                    skipped={k: v.skipped for k, v in data.items() if v.skipped}, spec=spec, model=model,
                    eval_pipes=eval_pipes, train_pipe=train_pipe, teacher=teacher)
