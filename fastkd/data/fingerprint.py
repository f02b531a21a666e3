"""A data set's content identity, computed without decoding it.

A run's identity includes what data it trained on, never how the path to it is spelled: the
same archive or tree reached through a relative path, an absolute one, a symlink or a copy in
another folder has the same fingerprint, while a changed file changes it.

- CIFAR python archives and extracted folders: the SHA-256 of each batch file's bytes (the
  same whether inside the archive or extracted);
- ImageFolder trees and tar archives of them: each image's path below the split folder and its
  size;
- FFCV conversions: the listing ``fastkd-beton.json`` and each ``.beton`` file's size;
- the bundled sample: the archive's SHA-256.
Results are memoised per process by (real path, size, mtime), so a study pays once.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from .arrays import DataError
from .walk import TreeProblem, refuse, walk_files
from . import cifar
from .beton import META
from .cifar import CIFAR
from .imagefolder import check_root
from .imagefolder import require_layout
from .loading import sample_path, default_cache_dir

_MEMO: dict = {}


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _memo(kind: str, path: Path, compute):
    key = (kind,) + _stat_key(path)
    if key not in _MEMO:
        _MEMO[key] = compute()
    return _MEMO[key]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _digest(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(repr(item).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def _cifar(name: str, source: Path) -> str:
    info = CIFAR[name]
    wanted = set(info.train + info.test + (info.meta,))
    if source.is_file():
        def compute():
            found = {}
            try:
                with tarfile.open(source) as tar:
                    for m in tar:
                        parts = Path(m.name).parts
                        if m.isfile() and len(parts) == 2 and parts[0] == info.folder and parts[1] in wanted:
                            found[parts[1]] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise DataError(f"{source}: unreadable archive ({exc})") from exc
            return _digest(sorted(found.items()))
        return _memo("cifar-archive", source, compute)
    return _digest(sorted((m, _memo("file", source / m, lambda m=m: sha256_file(source / m)))
                          for m in wanted if (source / m).is_file()))


def _tree_listing(split_dir: Path, skip_links: bool) -> list:
    """Every file below the split with its size. A link loop or a folder reached twice is refused
    by name (fastkd.data.walk), or, with data.on_corrupt=skip, listed as left out."""
    out = []

    def left_out(problem: TreeProblem) -> None:
        if not skip_links:
            refuse(problem)
        out.append((os.path.relpath(problem.path, split_dir).replace(os.sep, "/"), "left out"))
    for p, _ in walk_files(split_dir, on_problem=left_out):
        try:
            size = os.stat(p).st_size
        except OSError:
            size = -1  # dangling link: a change if it is ever fetched
        out.append((os.path.relpath(p, split_dir).replace(os.sep, "/"), size))
    return sorted(out)


def _imagefolder(root: Path, skip_links: bool) -> str:
    if root.is_file():
        def compute():
            try:
                with tarfile.open(root) as tar:
                    return _digest(sorted((m.name.lstrip("./"), m.size) for m in tar if m.isfile()))
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise DataError(f"{root}: truncated or damaged tar archive ({exc}); download or copy it again") from exc
        return _memo("tar", root, compute)
    require_layout(root)  # before any walk: a folder that is no data set is named, not walked
    splits = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    return _digest([(s, _tree_listing(root / s, skip_links)) for s in splits])


def _beton(root: Path) -> str:
    meta = root / META
    if not meta.is_file():
        return "missing"
    sizes = sorted((p.name, p.stat().st_size) for p in root.glob("*.beton"))
    return _digest([sha256_file(meta), sizes])


def data_fingerprint(cfg, reads: str = "arrays") -> str:
    """Content identity of the data named by ``cfg`` (a DataConfig) in the form a backend reads
    it (see ``load_splits``); raises DataError when the data cannot be found (the same message
    loading would give)."""
    if reads == "beton" and cfg.path:
        return "beton:" + _beton(Path(cfg.path).expanduser())
    if cfg.name == "sample":
        p = sample_path()
        return "sample:" + _memo("file", p, lambda: sha256_file(p))[:32]
    if cfg.name in cifar.CIFAR:
        dl = (Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()) if cfg.download else None
        return f"{cfg.name}:" + _cifar(cfg.name, cifar.locate(cfg.name, cfg.path, download_to=dl))
    if not cfg.path:
        raise DataError("data.path: an imagefolder data set needs data.path=<root with train/ and test/>")
    root = Path(cfg.path).expanduser()
    check_root(root)
    return "imagefolder:" + _imagefolder(root, cfg.on_corrupt == "skip")
