"""Config fields with their valid range and whether they are execution-only.

Kept apart from ``fastkd.config`` so that backends (``pipelines/``) can declare their own option
dataclasses with the same rules without importing the config module.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric field; ``None`` bounds are open-ended."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


DEVICES = ("auto", "cpu", "cuda")  # where a run or a metric computes; auto = CUDA when one is visible

POSITIVE, NON_NEGATIVE, AT_LEAST_ONE = Range(0, lo_open=True), Range(0), Range(1)
UNIT, UNIT_OPEN_TOP = Range(0, 1), Range(0, 1, hi_open=True)


def opt(default, *, range: Range | None = None, execution: bool = False, factory=None, choices=None,
        values=None, later: bool = False):
    """A config field with its valid range and whether it is execution-only (may change between
    resumes without changing what the run computes: paths, workers, prefetch, trackers).

    ``choices``: a function returning the allowed values (read from a registry when the config is
    checked, so a registered extension is allowed and docs/config.md lists them); ``values``: a
    function describing the allowed values where they are composed, not listed. ``later``: a key
    added after runs were recorded; at its default it is left out of a run's identity, so those
    runs keep theirs."""
    meta = {"range": range, "execution": execution, "choices": choices, "values": values, "later": later}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)
