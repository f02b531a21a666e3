"""A run's identity: what it computes, never where its files are.

    identity = digest(kind, the config without its execution-only fields,
                      the data's content fingerprint, the teacher's own identity)

Paths spelled any way (relative, absolute, through a symlink, a copied or moved folder),
worker counts, evaluation batch size, prefetch depth, trackers and the device may change between
resumes of one run; anything else is another run. ``fastkd distill --teacher runs/x/`` and
``--teacher runs/x`` therefore name the same teacher, and a retrained teacher is another one.
"""
from __future__ import annotations

import hashlib
import json

from ..config import diff

FORMAT = 1


def run_identity(cfg, kind: str, *, data: str, teacher: str | None) -> dict:
    return {"format": FORMAT, "kind": kind, "config": cfg.identity_fields(), "data": data, "teacher": teacher}


def digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def explain_difference(old: dict, new: dict, limit: int = 5) -> str:
    """What differs between two identities, for a refusal message."""
    parts = []
    if old.get("kind") != new.get("kind"):
        parts.append(f"kind {old.get('kind')} -> {new.get('kind')}")
    parts += diff(old.get("config", {}), new.get("config", {}))
    if old.get("data") != new.get("data"):
        parts.append("the data's content (files added, removed or changed)")
    if old.get("teacher") != new.get("teacher"):
        parts.append("the teacher (another or a retrained run)")
    return "; ".join(parts[:limit]) or "a format change"
