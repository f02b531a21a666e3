"""Typed, validated run configs: defaults <- preset <- YAML file <- ``--set key=value`` overrides.

Every key is a dataclass field; an unknown key or a bad value fails before any work, naming the
key and what is allowed.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from . import models
from .data.decode import MAX_PIXELS
from .data.loading import DATASETS
from .distill.registry import available as kd_methods
from .distill.registry import options_classes as kd_options_classes
from .errors import ConfigError
from .fields import AT_LEAST_ONE, DEVICES, NON_NEGATIVE, POSITIVE, UNIT, UNIT_OPEN_TOP, Range, opt
from .pipelines.registry import BACKENDS, backend_reads, options_classes
from .pipelines.spec import AugParams, make_spec, names_text
from .train.losses import REDUCTIONS

__all__ = ["ConfigError", "Config", "DataConfig", "AugParams", "TrainConfig", "DistillConfig", "TrackConfig", "build",
           "from_dict", "validate", "merge_into", "load_yaml", "read_yaml", "config_reference"]


SEED = Range(0, 2 ** 63 - 1)  # torch's generators take a signed 64-bit seed
FLOAT32_MAX = 3.4028234663852886e38  # every float key ends up in float32 arithmetic somewhere


def _sections(name: str, option_classes: dict[str, type], base: type, *, later: bool = False) -> type:
    """A config section class: ``base``'s fields plus one sub-section per registered extension
    that has options, from the extension's own ``Options`` dataclass (``data.dali.decode``,
    ``distill.<method>.*``); ``later``: sections left out of identities while at their defaults."""
    sections = [(n, cls, field(default_factory=cls, metadata={"later": later}))
                for n, cls in option_classes.items() if dataclasses.fields(cls)]
    cls = dataclasses.make_dataclass(name, sections, bases=(base,))
    cls.__module__ = __name__
    return cls


@dataclass
class _DataFields:
    name: Literal[DATASETS] = "sample"  # sample = the bundled 5k CIFAR-10 subset
    path: str | None = opt(None, execution=True)  # archive, extracted folder, or ImageFolder root
    backend: str = opt("tensor", choices=lambda: BACKENDS)  # a pipeline backend (fastkd.pipelines.registry)
    download: bool = opt(False, execution=True)  # CIFAR archives: fetch (with MD5 check) into cache_dir when absent
    cache_dir: str | None = opt(None, execution=True)  # downloads and decoded-image cache (default ~/.cache/fastkd)
    val_split: float = opt(0.0, range=NON_NEGATIVE)  # held-out validation from train: fraction (<1) or count (>=1); 0 = none
    split_seed: int = opt(0, range=SEED)  # fixes the validation split independently of the run seed
    limit_train: int | None = opt(None, range=AT_LEAST_ONE)  # stratified subset for quick runs
    limit_test: int | None = opt(None, range=AT_LEAST_ONE)
    image_size: int | None = opt(None, range=Range(1, 4096))  # resize + centre-crop images of mixed sizes
    on_corrupt: Literal["error", "skip"] = "error"
    # larger images are refused (or, with on_corrupt=skip, skipped and counted) before they are decoded.
    # Execution-only, so adding it changed no run's identity; a run that skips such images records how many
    max_pixels: int = opt(MAX_PIXELS, range=AT_LEAST_ONE, execution=True)
    mean: list[float] | None = None  # override the normalisation statistics (3 values in [0, 1])
    std: list[float] | None = None  # (3 values > 0)
    num_workers: int = opt(4, range=NON_NEGATIVE, execution=True)  # dataloader workers / DALI, FFCV threads
    eval_batch_size: int = opt(1024, range=AT_LEAST_ONE, execution=True)


DataConfig = _sections("DataConfig", options_classes(), _DataFields)


@dataclass
class TrainConfig:
    epochs: int = opt(250, range=AT_LEAST_ONE)
    batch_size: int = opt(128, range=AT_LEAST_ONE)  # per process
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = opt(0.1, range=NON_NEGATIVE)
    momentum: float = opt(0.9, range=UNIT_OPEN_TOP)
    nesterov: bool = False
    weight_decay: float = opt(1e-4, range=NON_NEGATIVE)
    betas: list[float] = opt(None, range=UNIT_OPEN_TOP, factory=lambda: [0.9, 0.999])  # adamw
    schedule: Literal["step", "cosine", "linear", "constant"] = "step"
    # step schedule: the lr is multiplied by lr_decay once m epochs are complete, for each m
    # (PyTorch's MultiStepLR; "decay from 1-based epoch 60" is m = 59)
    milestones: list[int] = opt(None, range=AT_LEAST_ONE, factory=lambda: [60, 80, 120])
    lr_decay: float = opt(0.1, range=Range(0, 1, lo_open=True))  # step factor
    warmup_epochs: float = opt(0.0, range=NON_NEGATIVE)
    min_lr_ratio: float = opt(0.0, range=UNIT)  # cosine/linear floor as a fraction of lr
    precision: Literal["no", "bf16", "fp16"] = "no"
    grad_accum: int = opt(1, range=AT_LEAST_ONE)
    channels_last: bool = True
    compile: bool = opt(False, execution=True)
    drop_last: bool = True
    max_steps_per_epoch: int | None = opt(None, range=AT_LEAST_ONE)  # cap for smoke tests and benchmarks
    eval_every: int = opt(1, range=AT_LEAST_ONE)  # epochs between evaluations (validation split, else test)
    select: Literal["last", "val_acc", "val_loss", "test_loss"] = "last"  # test_loss: the paper's, leaks test data
    sync_bn: bool = False
    save_train_outputs: bool = opt(False, execution=True)  # also save outputs of the (unaugmented) training set
    keep_checkpoints: bool = opt(False, execution=True)  # keep checkpoints/ and best.safetensors once finished
    grad_clip: float | None = opt(None, range=POSITIVE)  # max gradient norm


@dataclass
class _DistillFields:
    # a run directory written by `fastkd train`; its identity counts, not its path
    teacher: str | None = opt(None, execution=True)
    method: str = opt("kd", choices=kd_methods, later=True)  # a distillation method (fastkd.distill.registry)
    temperature: float = opt(20.0, range=POSITIVE)
    gamma: float = opt(0.5, range=UNIT)  # weight of the KD term; 0 trains the student from scratch
    reduction: Literal[REDUCTIONS] = "batchmean"  # batchmean (Hinton) | mean (the paper's: also / classes)
    # teacher outputs computed once (fastkd/train/teacher_cache.py): auto = when the student's view has no
    # augmentation; on = require it; off = run the teacher live every step. Results are the same.
    cache_teacher: Literal["auto", "on", "off"] = opt("auto", execution=True)


_DISTILL_CLASSES: dict[tuple, type] = {}


def _distill_config() -> object:
    """A DistillConfig with a section for every method registered now (a method registered at run
    time gets its ``distill.<name>.*`` keys in configs built afterwards)."""
    classes = kd_options_classes()
    key = tuple((n, c) for n, c in classes.items())
    if key not in _DISTILL_CLASSES:
        _DISTILL_CLASSES[key] = _sections("DistillConfig", classes, _DistillFields, later=True)
    return _DISTILL_CLASSES[key]()


DistillConfig = type(_distill_config())


@dataclass
class TrackConfig:
    trackers: list[str] = opt(None, execution=True, factory=list)  # e.g. [tensorboard] or [wandb]; off by default
    project: str = opt("fastkd", execution=True)  # a plain name: logs go to RUN/tracking/<project>


@dataclass
class Config:
    model: str = opt("resnet18", choices=models.available)
    augment: str = opt("crop_flip", values=names_text)
    seed: int = opt(0, range=SEED)
    device: str = opt("auto", execution=True, choices=lambda: DEVICES)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugParams = field(default_factory=AugParams)  # the augmentation's own parameter type
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=_distill_config)
    track: TrackConfig = field(default_factory=TrackConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity_fields(self) -> dict:
        """The config without its execution-only fields: what changes the run's results."""
        return _without_execution(self)


def _without_execution(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("execution"):
            continue
        v = getattr(obj, f.name)
        if f.metadata.get("later") and v == _default(f):
            continue
        out[f.name] = _without_execution(v) if dataclasses.is_dataclass(v) else copy.deepcopy(v)
    return out


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _parse_number(key: str, value: str, tp):
    """A number written as text (``1e-3``, ``5E-4``, ``.5``, ``1_000``), read as Python reads it."""
    text = value.strip()
    try:
        if tp is int:
            try:
                return int(text)
            except ValueError:
                f = float(text)
                if f.is_integer():
                    return int(f)
                raise
        return float(text)
    except ValueError:
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{key}: expected {kind}, got {value!r}") from None


def _coerce(key: str, value: Any, tp) -> Any:
    """Check ``value`` against the field type ``tp`` (Optional, Literal, list, int, float, bool, str)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: invalid value {value!r}; allowed: {', '.join(map(str, args))}")
        return value
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
        if isinstance(value, str) and value.lower() in YAML11_BOOLEANS:  # yes/no/on/off still mean a switch here
            return YAML11_BOOLEANS[value.lower()]
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float) and isinstance(value, str):
        value = _parse_number(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            if abs(value) > FLOAT32_MAX:
                raise ConfigError(f"{key}: {value!r} is beyond what float32 arithmetic holds ({FLOAT32_MAX:.3g})")
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def merge_into(obj, updates: dict, prefix: str = "") -> None:
    """Apply a (nested or dotted) override mapping onto dataclass ``obj`` in place, checking
    every key and type. The one layering rule of run configs and study specs alike."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {updates!r}")
    updates = expand_dotted(updates)
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in updates.items():
        full = prefix + str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; known keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                              f"{', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge_into(current, value, full + ".")
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
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):  # "data: x" then "data.name: y"
                nxt = node[p] = {}
            node = nxt
        if isinstance(value, dict):
            target = node.setdefault(parts[-1], {})
            if not isinstance(target, dict):
                target = node[parts[-1]] = {}
            deep_update(target, expand_dotted(value))
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


def _check_ranges(obj, prefix: str = "") -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            _check_ranges(value, key + ".")
            continue
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices():
            raise ConfigError(f"{key}: invalid value {value!r}; allowed: {', '.join(choices())}")
        rng: Range | None = f.metadata.get("range")
        if rng is None or value is None:
            continue
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            if not rng.contains(v):
                where = f"{key}[{i}]" if isinstance(value, list) else key
                raise ConfigError(f"{where}: {v!r} is out of range; allowed: {rng}")


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def validate(cfg: Config) -> Config:
    """Check values (ranges, model and augmentation names, consistency) before any work starts."""
    _check_ranges(cfg)
    d, t = cfg.data, cfg.train
    if d.val_split >= 1 and not float(d.val_split).is_integer():
        raise ConfigError(f"data.val_split: {d.val_split} is neither a fraction (< 1) nor a whole count of images")
    for key, stats, rng in (("data.mean", d.mean, UNIT), ("data.std", d.std, POSITIVE)):
        if stats is not None and (len(stats) != 3 or not all(rng.contains(v) for v in stats)):
            raise ConfigError(f"{key}: expected 3 per-channel values in {rng} (units of [0, 1] pixels), got {stats}")
    if d.name == "sample" and d.path is not None and backend_reads(d.backend) != "beton":
        raise ConfigError(f"data.path={d.path!r} is given but data.name is 'sample' (the bundled 5k-image subset, "
                          "which reads no path); set data.name to cifar10, cifar100 or imagefolder for that data")
    if t.milestones != sorted(set(t.milestones)):
        raise ConfigError(f"train.milestones: must be strictly increasing epochs, got {t.milestones}")
    if len(t.betas) != 2:
        raise ConfigError(f"train.betas: expected two values (beta1, beta2), got {t.betas}")
    if not _PLAIN_NAME.match(cfg.track.project) or cfg.track.project in (".", ".."):
        raise ConfigError(f"track.project: {cfg.track.project!r} must be a plain name (letters, digits, _ . -): tracker "
                          "logs stay inside the run folder, under tracking/<project>")
    try:
        make_spec(cfg.augment, **dataclasses.asdict(cfg.aug))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


# YAML 1.1 (PyYAML's default) reads yes/no/on/off as booleans, so `precision: no` or
# `--set train.precision=no` arrived as False. fastkd reads YAML 1.2's booleans only (true/false);
# the 1.1 words stay the strings the user typed, and a boolean key still accepts them.
YAML11_BOOLEANS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False}
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the later would silently win)
    and reads only true/false as booleans (YAML 1.2)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise ConfigError(f"{node.start_mark.name or 'YAML'}: key {key!r} appears twice (lines "
                                      f"{seen[key] + 1} and {key_node.start_mark.line + 1}); keep one")
                seen[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: let PyYAML report it
                pass
        return super().construct_mapping(node, deep=deep)


for _first in "tTfF":
    _StrictLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, ("tag:yaml.org,2002:bool", _YAML12_BOOL))


def load_yaml(text: str | bytes, where: str = "YAML") -> Any:
    """Parse YAML safely and strictly; every problem is a ConfigError naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not a text (UTF-8 YAML) file") from None
    if "\x00" in text:
        raise ConfigError(f"{where}: not a text (YAML) file (it contains NUL bytes)")
    try:
        loader = _StrictLoader(text)
        loader.name = where
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc


def parse_override(text: str) -> dict:
    """``"train.lr=0.1"`` -> ``{"train": {"lr": 0.1}}``; values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=0.05")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {text!r}: the key is empty; expected KEY=VALUE")
    value = load_yaml(raw, f"--set {key}") if raw.strip() else None
    if raw.strip() == "None":  # Python's spelling of YAML's null
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and not _looks_numeric(raw):
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
    return load_yaml(path.read_text(), f"preset {name}") or {}


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: {p} does not exist" if not p.exists() else f"--config: {p} is not a file")
    try:
        data = load_yaml(p.read_bytes(), str(p))
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {p} ({exc.strerror or exc})") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys, got {type(data).__name__}")
    return data or {}


def build(*, preset: str | None = None, files=(), overrides=(), extra: dict | None = None,
          inherit: dict | None = None) -> Config:
    """Resolve a config: defaults, then the preset, ``inherit`` (e.g. a student's settings taken
    from its teacher), YAML files, ``extra`` and ``--set`` overrides."""
    cfg = Config()
    layers = ([load_preset(preset)] if preset else []) + ([inherit] if inherit else []) + [read_yaml(f) for f in files]
    layers += ([extra] if extra else []) + [parse_override(o) for o in overrides]
    for layer in layers:
        merge_into(cfg, layer)
    return validate(cfg)


def peek(key: str, *, preset: str | None = None, files=(), overrides=(), extra: dict | None = None):
    """The value ``key`` would take, from the layers alone (no validation): for settings that
    decide another layer, e.g. the teacher whose data a student inherits."""
    layers = ([load_preset(preset)] if preset else []) + [read_yaml(f) for f in files]
    merged = merge_layers(*layers, *([extra] if extra else []), *[parse_override(o) for o in overrides])
    node = merged
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def from_dict(d: dict) -> Config:
    cfg = Config()
    merge_into(cfg, d)
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


def config_reference() -> str:
    """The Markdown table of every config key: type, default, valid values, execution-only."""
    rows = ["| key | type | default | valid values | |", "|---|---|---|---|---|"]

    def walk(obj, prefix):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, f"{prefix}{f.name}.")
                continue
            tp = hints[f.name]
            lit = [a for a in (typing.get_args(tp) if typing.get_origin(tp) is Literal else ())]
            if f.metadata.get("choices"):
                lit = list(f.metadata["choices"]())
            valid = ", ".join(map(str, lit)) if lit else (str(f.metadata.get("range")) if f.metadata.get("range") else "")
            if f.metadata.get("values"):
                valid = f.metadata["values"]()
            tname = re.sub(r"typing\.|Literal\[.*\]", "", str(tp)).replace("<class '", "").replace("'>", "")
            tname = "choice" if f.metadata.get("choices") else (tname.replace(" | ", " or ") or "choice")
            rows.append(f"| `{prefix}{f.name}` | {tname} | `{v!r}` | {valid} | "
                        f"{'execution-only' if f.metadata.get('execution') else ''} |")
    walk(Config(), "")
    return "\n".join(rows) + "\n"
