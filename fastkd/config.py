"""Typed, validated run configs: defaults <- preset <- YAML file <- ``--set key=value`` overrides.

Every key is a dataclass field; an unknown key or a bad value fails before any work, naming the
key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it and the allowed values."""


@dataclass
class DataConfig:
    name: str = "sample"  # sample | cifar10 | cifar100 | imagefolder
    path: str | None = None  # archive, extracted folder, or ImageFolder root
    backend: str = "tensor"  # tensor (data on the device) | dataloader (per-sample CPU workers) | dali | ffcv
    dali_decode: str = "auto"  # dali: auto (GPU "mixed" decode when there is a GPU) | cpu | mixed
    ffcv_order: str = "fastkd"  # ffcv training order: fastkd (shared with all backends) | random | quasi_random
    os_cache: bool = True  # ffcv: read the .beton through the page cache (False: FFCV's own reads)
    batches_ahead: int = 3  # ffcv: batches prepared ahead of the training step
    download: bool = False  # CIFAR archives: fetch (with MD5 check) into cache_dir when absent
    cache_dir: str | None = None  # downloads and decoded-image cache (default ~/.cache/fastkd)
    val_split: float = 0  # held-out validation from train: fraction (<1) or count (>=1); 0 = none
    split_seed: int = 0  # fixes the validation split independently of the run seed
    limit_train: int | None = None  # stratified subset for quick runs
    limit_test: int | None = None
    image_size: int | None = None  # resize + centre-crop ImageFolder images of mixed sizes
    on_corrupt: str = "error"  # error | skip
    mean: list[float] | None = None  # override the normalisation statistics
    std: list[float] | None = None
    num_workers: int = 4  # dataloader backend only
    eval_batch_size: int = 1024


@dataclass
class AugConfig:
    pad: int = 4
    flip: bool = True
    cutout_size: int = 16
    cutout_holes: int = 1
    cutout_after_normalize: bool = True
    mixup_alpha: float = 1.0
    cutmix_alpha: float = 1.0
    cutmix_prob: float = 1.0
    per_sample: bool = False
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 250
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw
    schedule: str = "step"  # step | cosine | linear | constant
    milestones: list[int] = field(default_factory=lambda: [60, 80, 120])  # epochs, for step
    lr_decay: float = 0.1  # step factor
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0  # cosine/linear floor as a fraction of lr
    precision: str = "no"  # no | bf16 | fp16
    grad_accum: int = 1
    channels_last: bool = True
    compile: bool = False
    drop_last: bool = True
    max_steps_per_epoch: int | None = None  # cap for smoke tests and benchmarks
    eval_every: int = 1  # epochs between evaluations (validation split, else test)
    select: str = "last"  # last | val_acc | val_loss | test_loss (the paper's, leaks test data)
    sync_bn: bool = False
    save_train_outputs: bool = False  # also save logits/features of the (unaugmented) training set
    grad_clip: float | None = None


@dataclass
class DistillConfig:
    teacher: str | None = None  # a run directory written by `fastkd train`
    temperature: float = 20.0
    gamma: float = 0.5  # weight of the KD term; 0 trains the student from scratch
    reduction: str = "batchmean"  # batchmean (Hinton) | mean (the paper's: also / num_classes)


@dataclass
class TrackConfig:
    trackers: list[str] = field(default_factory=list)  # e.g. [tensorboard] or [wandb]; off by default
    project: str = "fastkd"


@dataclass
class Config:
    model: str = "resnet18"
    augment: str = "crop_flip"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    track: TrackConfig = field(default_factory=TrackConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of the resolved config: equal configs, equal runs."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "data.name": ("sample", "cifar10", "cifar100", "imagefolder"),
    "data.backend": ("tensor", "dataloader", "dali", "ffcv"),
    "data.ffcv_order": ("fastkd", "random", "quasi_random"),
    "data.dali_decode": ("auto", "cpu", "mixed"),
    "data.on_corrupt": ("error", "skip"),
    "train.optimizer": ("sgd", "adamw"),
    "train.schedule": ("step", "cosine", "linear", "constant"),
    "train.precision": ("no", "bf16", "fp16"),
    "train.select": ("last", "val_acc", "val_loss", "test_loss"),
    "distill.reduction": ("batchmean", "mean"),
}
POSITIVE = ("train.epochs", "train.batch_size", "train.grad_accum", "train.eval_every", "data.eval_batch_size",
            "distill.temperature")
NON_NEGATIVE = ("train.lr", "train.weight_decay", "train.momentum", "train.warmup_epochs", "data.val_split",
                "data.num_workers")


def _coerce(key: str, value: Any, tp) -> Any:
    """Check ``value`` against the field type ``tp`` (Optional, list, int, float, bool, str)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _merge(obj, updates: dict, prefix: str = "") -> None:
    """Apply a nested dict onto dataclass ``obj`` in place, checking every key and type."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in updates.items():
        full = prefix + str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; known keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                              f"{', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, full + ".")
        elif isinstance(current, dict) and isinstance(value, dict):  # free-form mappings merge deeply
            setattr(obj, key, merge_layers(current, value))
        else:
            setattr(obj, key, _coerce(full, value, hints[key]))


def expand_dotted(d: dict) -> dict:
    """``{"train.lr": 0.1, "data": {"name": "x"}}`` -> fully nested dict (later keys win)."""
    out: dict = {}
    for key, value in (d or {}).items():
        node = out
        parts = str(key).split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(value, dict):
            deep_update(node.setdefault(parts[-1], {}), expand_dotted(value))
        else:
            node[parts[-1]] = value
    return out


def deep_update(base: dict, update: dict) -> dict:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def merge_layers(*layers: dict) -> dict:
    """Nested merge of override dicts (dotted keys allowed), later layers winning."""
    out: dict = {}
    for layer in layers:
        deep_update(out, expand_dotted(layer))
    return out


def get_key(cfg: Config, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: Config) -> Config:
    """Check values (choices, ranges, model and augmentation names) before any work starts."""
    for key, allowed in CHOICES.items():
        value = get_key(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}: invalid value {value!r}; allowed: {', '.join(allowed)}")
    for key in POSITIVE:
        if not get_key(cfg, key) > 0:
            raise ConfigError(f"{key}: must be > 0, got {get_key(cfg, key)!r}")
    for key in NON_NEGATIVE:
        if get_key(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {get_key(cfg, key)!r}")
    if not 0.0 <= cfg.distill.gamma <= 1.0:
        raise ConfigError(f"distill.gamma: must be in [0, 1], got {cfg.distill.gamma}")
    if cfg.train.milestones != sorted(cfg.train.milestones):
        raise ConfigError(f"train.milestones: must be increasing, got {cfg.train.milestones}")
    from fastkd import models
    from fastkd.pipelines.spec import make_spec
    if cfg.model not in models.available():
        raise ConfigError(f"model: unknown model {cfg.model!r}; known models: {', '.join(models.available())}")
    try:
        make_spec(cfg.augment, **dataclasses.asdict(cfg.aug))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


def parse_override(text: str) -> dict:
    """``"train.lr=0.1"`` -> ``{"train": {"lr": 0.1}}``; values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=0.05")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} ({exc})") from exc
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _looks_numeric(raw):
        value = raw  # e.g. a run name like 1e3abc stays a string
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _looks_numeric(raw: str) -> bool:
    try:
        float(raw)
        return True
    except ValueError:
        return False


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("fastkd.presets").iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    path = resources.files("fastkd.presets") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"--preset: unknown preset {name!r}; available: {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text()) or {}


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: {p} does not exist")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc


def build(*, preset: str | None = None, files=(), overrides=(), extra: dict | None = None) -> Config:
    """Resolve a config: defaults, then the preset, YAML files, ``extra`` and ``--set`` overrides."""
    cfg = Config()
    layers = ([load_preset(preset)] if preset else []) + [read_yaml(f) for f in files]
    layers += ([extra] if extra else []) + [parse_override(o) for o in overrides]
    for layer in layers:
        _merge(cfg, layer)
    return validate(cfg)


def from_dict(d: dict) -> Config:
    cfg = Config()
    _merge(cfg, d)
    return validate(cfg)


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Keys whose values differ between two config dicts, as 'key: a -> b' lines."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
