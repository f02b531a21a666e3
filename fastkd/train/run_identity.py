"""What a run is before it starts: the config as the run records it (absolute paths) and the
identity of the run it describes (fastkd.run.identity), read without decoding any data."""
from __future__ import annotations

import copy
import os

from ..config import Config
from ..data.fingerprint import data_fingerprint
from ..pipelines import backend_reads
from ..run.identity import run_identity
from ..run.rundir import teacher_identity

# paths a run records as absolute: a relative one would be read against whatever folder a later
# command (a student of this teacher, a resume) runs in
RECORDED_PATHS = (("data", "path"), ("data", "cache_dir"), ("distill", "teacher"))


def with_absolute_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` whose recorded paths are absolute (as spelled, links not resolved)."""
    out = copy.deepcopy(cfg)
    for section, key in RECORDED_PATHS:
        node = getattr(out, section)
        value = getattr(node, key)
        if value:
            setattr(node, key, os.path.abspath(os.path.expanduser(str(value))))
    return out


def run_identity_of(cfg: Config, kind: str) -> dict:
    """The identity of the run ``cfg`` describes (reads the data's fingerprint and the
    teacher's run.json; decodes nothing)."""
    teacher = teacher_identity(cfg.distill.teacher) if kind == "student" and cfg.distill.teacher else None
    return run_identity(cfg, kind, data=data_fingerprint(cfg.data, backend_reads(cfg.data.backend)), teacher=teacher)
