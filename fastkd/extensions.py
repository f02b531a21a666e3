"""The table behind each extension registry (KD methods, device transforms, metrics)."""
from __future__ import annotations


class ExtensionTable(dict):
    """Named extensions, in order. The entries given at creation are built in; more may be added
    at run time (a plugin, a test), none replaced, and the built-in ones are never removed."""

    def __init__(self, what: str, entries: dict):
        super().__init__(entries)
        self.what, self.built_in = what, tuple(entries)

    def add(self, name: str, entry) -> None:
        if name in self:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self[name] = entry

    def remove(self, name: str) -> None:
        if name in self.built_in:
            raise ValueError(f"{name!r} is built in")
        self.pop(name, None)
