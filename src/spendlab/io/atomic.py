"""Atomic output: write to a temporary sibling, then rename into place.

A crash or a write error leaves either the old file or no file at the final path, never a
partial one. Output names are confined to a base directory before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spendlab.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Works for files and directories (a directory is swapped in by rename, the old one removed).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)) / final.name
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def confined_path(base: str | os.PathLike[str], name: str) -> Path:
    """Resolve ``name`` inside ``base``, refusing escapes (``..``, absolute names, symlinks, NUL)."""
    if "\x00" in name:
        raise ConfigError(f"output name {name!r} contains a NUL byte")
    if not name or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise ConfigError(f"output name {name!r} must be a relative name inside {base}")
    base_real = Path(base).resolve()
    target = (base_real / name).resolve()
    if target != base_real and base_real not in target.parents:
        raise ConfigError(f"output name {name!r} escapes its base directory {base}")
    return target
