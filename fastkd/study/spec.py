"""The study grid: a typed YAML spec expanded into an ordered plan of runs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..config import Config, ConfigError, build, load_yaml, merge_into, merge_layers, read_yaml
from ..metrics.discrimination import VARIANTS
from ..config import parse_override
from ..pipelines.spec import PAPER_AUGMENTS


@dataclass
class StudyConfig:
    name: str = "study"
    teacher_preset: str = "paper-teacher"
    student_preset: str = "paper-student"
    common: dict = field(default_factory=dict)  # overrides for every run (e.g. data.path)
    teacher: dict = field(default_factory=dict)  # overrides for every teacher
    student: dict = field(default_factory=dict)  # overrides for every student (and the scratch baseline)
    teachers: list[str] = field(default_factory=lambda: ["resnet18"])
    augments: list[str] = field(default_factory=lambda: list(PAPER_AUGMENTS))
    students: list[str] = field(default_factory=lambda: ["lenet", "alexnet"])
    # named distillation settings, each a dict of student overrides, e.g.
    # {kd: {}, kd-mixup: {augment: mixup}} (augmentation during distillation: the teacher sees
    # the same mixed batch). None: Hinton KD alone, {kd: {}}. The first layer that names settings
    # replaces that default (a preset's grid of settings holds only its own), later layers merge in.
    distill: dict | None = None
    scratch: bool = True  # the student trained from scratch (distill.gamma = 0): the baseline
    # teacher model -> the student models it teaches (default: every student from every teacher),
    # e.g. {resnet32x4: [resnet8x4], vgg13: [vgg8]} for the usual CIFAR-100 pairs
    students_of: dict = field(default_factory=dict)
    # overrides for one part of the grid, applied after the ones above: per_augment[aug] for the
    # teachers trained with that augmentation, e.g. {mixup: {train.select: last}};
    # students_per_augment[aug] for the students distilled from those teachers ("scratch": the
    # from-scratch students); per_student[model] for the students of that model
    per_augment: dict = field(default_factory=dict)
    students_per_augment: dict = field(default_factory=dict)
    per_student: dict = field(default_factory=dict)
    seeds: int = 1
    # teachers per (model, augmentation); None: one per seed. Fewer teachers than seeds: the
    # students of seed s distil from teacher seed first_seed + (s - first_seed) % teacher_seeds
    # (e.g. 1 teacher, 3 student seeds when the teachers are the expensive part)
    teacher_seeds: int | None = None
    first_seed: int = 0
    knn_k: int = 10
    cd_variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    reference_augment: str = "none"  # students are compared (Welch's t-test) with this teacher's


@dataclass
class RunSpec:
    id: str
    kind: str  # teacher | student
    config: Config
    teacher_id: str | None
    labels: dict  # teacher_model, augment, student_model, distill, seed


MAX_NAME = 64  # characters of one grid name in a run id (a run id is a folder name: 255 bytes at most)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", text)


def study_preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("fastkd.presets") / "studies").iterdir() if p.name.endswith(".yaml"))


def load_study(preset: str | None = None, files=(), overrides=(), extra: dict | None = None) -> StudyConfig:
    """Resolve a study spec: defaults <- study preset <- YAML files <- extra <- ``--set`` overrides."""
    sc = StudyConfig()
    layers = []
    if preset:
        path = resources.files("fastkd.presets") / "studies" / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"--preset: unknown study preset {preset!r}; available: {', '.join(study_preset_names())}")
        layers.append(load_yaml(path.read_text(), f"study preset {preset}") or {})
    layers += [read_yaml(f) for f in files] + ([extra] if extra else []) + [parse_override(o) for o in overrides]
    for layer in layers:
        _check_setting_names(layer)
        merge_into(sc, layer)
    if sc.distill is None:
        sc.distill = {"kd": {}}
    return validate(sc)


def _check_setting_names(layer: dict) -> None:
    """A distillation setting's name is one key: a dot in it would be read as a path (``..`` became
    three empty names, then "unknown config key ''")."""
    settings = layer.get("distill") if isinstance(layer, dict) else None
    for name, value in (settings.items() if isinstance(settings, dict) else ()):
        if isinstance(value, dict) and "." in str(name):
            raise ConfigError(f"distill: the setting name {name!r} contains '.', which separates keys; name it with "
                              "letters, digits, '_' or '-' (e.g. kd_t4)")


def _check_run_names(sc: StudyConfig) -> None:
    """Every name that becomes part of a run id must leave something after sanitising, and no two
    may become the same: two cells with one run id would be one run (the other never run)."""
    for key, names in (("distill", list(sc.distill)), ("teachers", sc.teachers), ("students", sc.students),
                       ("augments", sc.augments)):
        seen: dict[str, str] = {}
        for name in names:
            slug = _slug(str(name))
            if len(slug) > MAX_NAME:
                raise ConfigError(f"{key}: the name {str(name)[:40]!r}... is {len(slug)} characters; at most {MAX_NAME} "
                                  "(it becomes part of run folder names)")
            if not slug.strip(".-"):
                raise ConfigError(f"{key}: the name {name!r} keeps nothing to name its runs by once made a run id "
                                  "(ASCII letters, digits and _ . + -); rename it, e.g. kd_t4")
            if slug in seen:
                raise ConfigError(f"{key}: {seen[slug]!r} and {name!r} both become {slug!r} in run ids (run folders "
                                  "and ledger records); rename one")
            seen[slug] = name


def validate(sc: StudyConfig) -> StudyConfig:
    if sc.seeds < 1:
        raise ConfigError(f"seeds: must be >= 1, got {sc.seeds}")
    if sc.teacher_seeds is not None and not 1 <= sc.teacher_seeds <= sc.seeds:
        raise ConfigError(f"teacher_seeds: must be between 1 and seeds ({sc.seeds}), got {sc.teacher_seeds}")
    if sc.first_seed < 0 or sc.knn_k < 1:
        raise ConfigError(f"first_seed must be >= 0 and knn_k >= 1, got {sc.first_seed} and {sc.knn_k}")
    bad = [v for v in sc.cd_variants if v not in VARIANTS]
    if bad:
        raise ConfigError(f"cd_variants: unknown {bad}; allowed: {', '.join(VARIANTS)}")
    if not isinstance(sc.distill, dict) or not all(isinstance(v, dict) for v in sc.distill.values()):
        raise ConfigError("distill: expected a mapping of setting name -> student overrides, e.g. {kd: {}}")
    if sc.reference_augment not in sc.augments:
        raise ConfigError(f"reference_augment: {sc.reference_augment!r} is not among augments {sc.augments}")
    if not sc.teachers or not sc.augments:
        raise ConfigError("teachers and augments must each name at least one entry")
    _check_run_names(sc)
    for tm, sms in sc.students_of.items():
        if tm not in sc.teachers or not isinstance(sms, list) or any(sm not in sc.students for sm in sms):
            raise ConfigError(f"students_of.{tm}: expected a teacher of the grid ({', '.join(sc.teachers)}) and a list "
                              f"of its students ({', '.join(sc.students)}), got {sms!r}")
    for key, table, known in (("per_augment", sc.per_augment, sc.augments),
                              ("students_per_augment", sc.students_per_augment, sc.augments + ["scratch"]),
                              ("per_student", sc.per_student, sc.students)):
        for name, over in table.items():
            if name not in known:
                raise ConfigError(f"{key}.{name}: not in the grid; known: {', '.join(known)}")
            if not isinstance(over, dict):
                raise ConfigError(f"{key}.{name}: expected a mapping of config overrides, got {over!r}")
    plan(sc, Path("."))  # builds every run's config now: a bad key fails before any training
    return sc


def plan(sc: StudyConfig, out: Path) -> list[RunSpec]:
    """Every run of the grid, teachers first (students depend on them)."""
    runs: list[RunSpec] = []
    seeds = range(sc.first_seed, sc.first_seed + sc.seeds)
    n_teachers = sc.teacher_seeds or sc.seeds

    def cfg(preset, *layers):
        try:
            return build(preset=preset, extra=merge_layers(*layers))
        except ConfigError as exc:
            raise ConfigError(f"study: {exc}") from exc

    for seed in seeds[:n_teachers]:
        for tm in sc.teachers:
            for aug in sc.augments:
                tid = _slug(f"teacher-{tm}-{aug}-s{seed}")
                c = cfg(sc.teacher_preset, sc.common, sc.teacher, sc.per_augment.get(aug, {}),
                        {"model": tm, "augment": aug, "seed": seed, "train": {"save_train_outputs": True}})
                runs.append(RunSpec(tid, "teacher", c, None, {"teacher_model": tm, "augment": aug, "seed": seed}))
    teachers = [r for r in runs]
    for seed in seeds:
        teacher_seed = sc.first_seed + (seed - sc.first_seed) % n_teachers
        for t in (t for t in teachers if t.labels["seed"] == teacher_seed):
            for sm in sc.students_of.get(t.labels["teacher_model"], sc.students):
                for dname, dover in sc.distill.items():
                    sid = _slug(f"student-{sm}-{dname}-from-{t.labels['teacher_model']}-{t.labels['augment']}-s{seed}")
                    c = cfg(sc.student_preset, sc.common, sc.student, dover, sc.per_student.get(sm, {}),
                            sc.students_per_augment.get(t.labels["augment"], {}),
                            {"model": sm, "seed": seed, "distill": {"teacher": str(out / "runs" / t.id)},
                             "train": {"save_train_outputs": True}})
                    runs.append(RunSpec(sid, "student", c, t.id, {**t.labels, "seed": seed, "student_model": sm,
                                                                     "distill": dname}))
        if sc.scratch:
            for sm in sc.students:
                c = cfg(sc.student_preset, sc.common, sc.student, sc.per_student.get(sm, {}),
                        sc.students_per_augment.get("scratch", {}),
                        {"model": sm, "seed": seed, "distill": {"gamma": 0.0, "teacher": None},
                         "train": {"save_train_outputs": True}})
                runs.append(RunSpec(_slug(f"scratch-{sm}-s{seed}"), "student", c, None,
                                    {"student_model": sm, "distill": "scratch", "augment": "scratch", "seed": seed}))
    return runs
