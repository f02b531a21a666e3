"""Walking a data tree without trusting it: directory links are followed, but a link back to a
folder the walk is inside (a loop), a folder reached a second time, or (with ``within``) a link
that leads out of the folder being listed is a :class:`TreeProblem`, never followed; and the
number of entries is bounded, so ``data.path=/proc/self`` or two ``..`` links end in one clear
line instead of a walk that never finishes.

Folders are known by (device, inode), as ``find -L`` does, not by path spelling.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from .arrays import DataError

MAX_ENTRIES = 20_000_000  # files and folders one walk may list (ImageNet-21k has ~14M images)


class TreeProblem(NamedTuple):
    path: str  # the link (or folder) at fault
    reason: str  # what is wrong with it, as a phrase: "links to X, a folder it is inside (a loop)"


def refuse(problem: TreeProblem) -> None:
    """The default handler: one line naming the link."""
    raise DataError(f"{problem.path}: {problem.reason}; remove or fix the link (or set data.on_corrupt=skip to leave "
                    "it out)")


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def walk_files(top: Path, *, within: Path | None = None, on_problem: Callable[[TreeProblem], None] = refuse,
               limit: int = MAX_ENTRIES) -> Iterator[tuple[str, bool]]:
    """``(path, is_link)`` of every file below ``top``, in sorted depth-first order.

    ``within``: links to folders must stay inside it (file links are the caller's to judge, see
    :func:`link_target_problem`). ``on_problem`` is called for each folder not followed; the
    default raises a DataError naming it.
    """
    top = Path(top)
    visited: set[tuple[int, int]] = set()
    inside = os.path.realpath(within) if within is not None else None
    count = 0

    def walk(folder: str, ancestors: frozenset) -> Iterator[tuple[str, bool]]:
        nonlocal count
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:  # unreadable folder: its files cannot be listed, and decoding names them if listed
            return
        for entry in entries:
            count += 1
            if count > limit:
                raise DataError(f"{top}: more than {limit:,} files and folders below it; is data.path the data "
                                "set's root (the folder holding train/ and test/)?")
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if not is_dir:
                yield entry.path, is_link
                continue
            try:
                key = _key(entry.stat(follow_symlinks=True))
            except OSError:
                continue
            problem = None
            if key in ancestors:
                problem = f"links to {os.path.realpath(entry.path)}, a folder it is inside (a loop)"
            elif key in visited:
                problem = f"leads to {os.path.realpath(entry.path)}, whose files are already listed"
            elif is_link and inside is not None and not _is_inside(os.path.realpath(entry.path), inside):
                problem = f"leads to {os.path.realpath(entry.path)}, outside {within}"
            if problem:
                on_problem(TreeProblem(entry.path, problem))
                continue
            visited.add(key)
            yield from walk(entry.path, ancestors | {key})

    try:
        root_key = _key(os.stat(top))
    except OSError as exc:
        raise DataError(f"{top}: cannot be read ({exc.strerror or exc})") from exc
    visited.add(root_key)
    yield from walk(str(top), frozenset({root_key}))


def _is_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def link_target_problem(link: str, own_folder: Path, split_folder: Path) -> str | None:
    """Why a file link inside a class folder must not be listed: its target is an image of another
    class folder of the same split (it would be relabelled) or of its own (listed twice). Links to
    files outside the split (git-annex, DVC stores) are fine."""
    target = os.path.realpath(link)
    split, own = os.path.realpath(split_folder), os.path.realpath(own_folder)
    if not os.path.isfile(target) or not _is_inside(target, split):  # dangling or a loop: decoding names it
        return None
    if not _is_inside(target, own):
        return f"links to {target}, an image of another class folder (it would be relabelled)"
    return f"links to {target}, an image already listed in its class folder"
