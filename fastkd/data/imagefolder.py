"""ImageFolder trees (``root/<split>/<class>/<image>``), on disk or inside a tar archive."""
from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .arrays import DataError
from .decode import IMAGE_EXTENSIONS, MAX_PIXELS, decode_all
from .walk import TreeProblem, link_target_problem, refuse, walk_files


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _image_files(class_dir: Path, split_dir: Path, on_problem) -> list[str]:
    """Image files below ``class_dir``, following folder links that stay inside it (fastkd.data.walk).

    A link that leaves the class folder (``up -> ..`` would pull every other class in under this
    label), loops, or repeats files already listed is handed to ``on_problem``. Dangling links are
    listed: they fail to decode and are then named, or skipped and counted with
    data.on_corrupt=skip, like any unreadable file (git-annex and DVC trees hold links to files
    not fetched yet, outside the tree).
    """
    out = []
    for path, is_link in walk_files(class_dir, within=class_dir, on_problem=on_problem):
        if not is_image(path):
            continue
        why = link_target_problem(path, class_dir, split_dir) if is_link else None
        if why:
            on_problem(TreeProblem(path, why))
            continue
        out.append(path)
    return sorted(out)


def _check_class_link(d: Path, split_dir: Path) -> None:
    """A class folder that links into its own split would add duplicates as an extra class."""
    if not d.is_symlink():
        return
    target, split = d.resolve(), split_dir.resolve()
    if target == split or split in target.parents or target in split.parents:
        raise DataError(f"{d}: this class folder is a link to {target}, inside the same split (or above it); "
                        "it would repeat those images as an extra class. Remove the link")


def scan_tree(split_dir: Path, classes: list[str] | None = None, on_corrupt: str = "error"
              ) -> tuple[list[str], list[int], list[str], list[str]]:
    """Files, labels and class names of one split directory, sorted for a stable order, and the
    links left out (with ``on_corrupt="skip"``; otherwise the first one is refused by name)."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: not a directory; an ImageFolder tree needs {split_dir.parent}/<split>/<class>/<image>")
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    for name in found:
        _check_class_link(split_dir / name, split_dir)
    if not found:
        raise DataError(f"{split_dir}: no class sub-directories; expected {split_dir}/<class>/<image files>")
    if classes is None and len(found) < 2:
        raise DataError(f"data.path: {split_dir} has {len(found)} class ({', '.join(found)}); classification needs "
                        "at least two class folders")
    classes = classes or found
    extra = sorted(set(found) - set(classes))
    if extra:
        raise DataError(f"{split_dir}: classes {extra} are not among the training classes {classes}")
    files, labels, left_out = [], [], []
    on_problem = refuse if on_corrupt != "skip" else (lambda problem: left_out.append(problem.path))
    for label, name in enumerate(classes):
        d = split_dir / name
        if not d.is_dir():
            continue  # a class may be absent from a small test split
        images = _image_files(d, split_dir, on_problem)
        if not images:
            raise DataError(f"{d}: class {name!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        files += images
        labels += [label] * len(images)
    return files, labels, classes, left_out


def check_root(root: Path) -> None:
    """data.path of an imagefolder set: an existing folder or tar archive, else a DataError."""
    if not root.exists():
        raise DataError(f"data.path: {root} does not exist")
    if root.is_file():
        try:
            is_tar = tarfile.is_tarfile(root)
        except OSError:
            is_tar = False
        if not is_tar:
            raise DataError(f"data.path: {root} is a file but not a tar archive; an imagefolder data set is a "
                            "folder with train/ and test/ (or a .tar/.tar.gz of one)")


def open_tar(archive: Path) -> tarfile.TarFile:
    """The archive opened, or a DataError saying it is not (or no longer) a tar archive."""
    try:
        return tarfile.open(archive)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc}); data.path must be an ImageFolder root "
                        "or a .tar/.tar.gz of one") from exc


def _tar_members(archive: Path) -> list[tarfile.TarInfo]:
    try:
        with open_tar(archive) as tar:
            return tar.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: truncated or damaged archive ({exc}); download or copy it again") from exc


def scan_tar(archive: Path, split: str, classes: list[str] | None = None):
    """Like :func:`scan_tree` for a tar archive holding ``<split>/<class>/<image>`` members."""
    members = [m.name for m in _tar_members(archive) if m.isfile() and is_image(m.name)]
    by_class: dict[str, list[str]] = {}
    for name in members:
        parts = Path(name).parts
        if len(parts) >= 3 and parts[-3] == split:
            by_class.setdefault(parts[-2], []).append(name)
    if not by_class:
        raise DataError(f"{archive}: no images under {split}/<class>/ in the archive")
    classes = classes or sorted(by_class)
    files, labels = [], []
    for label, c in enumerate(classes):
        names = sorted(by_class.get(c, []))
        files += names
        labels += [label] * len(names)
    return files, labels, classes


def read_split(source: Path, split: str, *, classes=None, image_size=None, on_corrupt="error", progress=None,
               max_pixels: int = MAX_PIXELS):
    """Decode one split of a tree or tar archive -> (images, labels, classes, files, skipped)."""
    if source.is_file() and tarfile.is_tarfile(source):
        files, labels, classes = scan_tar(source, split, classes)
        try:
            with open_tar(source) as tar:
                blobs = [tar.extractfile(n).read() for n in files]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: truncated or damaged archive ({exc}); download or copy it again") from exc
        files = [f"{source}!{f}" for f in files]
        images, kept, skipped = decode_all(files, blobs, image_size=image_size, on_corrupt=on_corrupt, progress=progress,
                                           max_pixels=max_pixels)
    else:
        files, labels, classes, left_out = scan_tree(source / split, classes, on_corrupt)
        images, kept, skipped = decode_all(files, files, image_size=image_size, on_corrupt=on_corrupt,
                                           progress=progress, max_pixels=max_pixels)
        skipped = left_out + skipped
    labels = np.asarray(labels, dtype=np.int64)[kept]
    return images, labels, classes, [files[i] for i in kept], skipped


TEST_SPLITS = ("test", "val", "validation")


def require_layout(root: Path) -> str:
    """The name of the test split of an ImageFolder root (folder or archive), or a DataError
    saying what the layout must be."""
    test_name = find_split(root, TEST_SPLITS)
    if find_split(root, ("train",)) is None or test_name is None:
        raise DataError(f"{root}: an ImageFolder data set needs train/ and test/ (or val/) sub-directories, "
                        "each holding one directory per class")
    return test_name


def find_split(root: Path, candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` present as a split directory (or archive folder) of ``root``."""
    if root.is_file():
        tops = {Path(m.name).parts[0] for m in _tar_members(root) if m.name}
        return next((c for c in candidates if c in tops), None)
    return next((c for c in candidates if (root / c).is_dir()), None)


def archive_image_count(archive: Path) -> int:
    """Image members of a tar archive (from its index: nothing is decoded)."""
    return sum(1 for m in _tar_members(archive) if m.isfile() and is_image(m.name))


def first_image_bytes(root: Path) -> bytes:
    """The bytes of one training image of a tree or archive (in-memory sets share one size)."""
    if root.is_file():
        with open_tar(root) as tar:
            member = next(m for m in tar if m.isfile() and is_image(m.name) and "train" in Path(m.name).parts)
            return tar.extractfile(member).read()
    first = next(os.path.join(d, f) for d, _, fs in os.walk(root / "train") for f in fs if is_image(f))
    with open(first, "rb") as f:
        return f.read()


def dataset_size_hint(root: Path) -> int:
    """Number of image files under a tree (for progress bars); 0 for archives."""
    if root.is_file():
        return 0
    return sum(1 for _, _, fs in os.walk(root) for f in fs if is_image(f))
