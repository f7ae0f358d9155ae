"""Input discovery: from an INPUT string to the list of real files to read, each exactly once.

Nothing is lost or counted twice without a note:

- every candidate is resolved through its symlinks and each real file is read once; the other
  names of the same file (a ``latest.csv`` link, a ``**`` glob through a symlinked parent) are
  listed as duplicates;
- in a directory or a glob, a file the format cannot read (another extension), a hidden file or
  an AppleDouble ``._x.csv``, a broken link and anything that is not a regular file (a FIFO, a
  device, a socket) is skipped and listed, never opened;
- named explicitly, a FIFO or a device is refused before it is opened (opening a FIFO with no
  writer blocks forever);
- gzip-compressed text (``.csv.gz``, ``.txt.gz``) is read like the plain file.
"""

from __future__ import annotations

import glob as globlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from spendlab.errors import SpendlabError
from spendlab.io.builtin import builtin_path

BUILTIN_PREFIX = "builtin:"
TEXT_EXTENSIONS = (".csv", ".txt", ".csv.gz", ".txt.gz")
CSV_EXTENSIONS = (".csv", ".csv.gz")
PARQUET_EXTENSIONS = (".parquet", ".pq")


@dataclass
class Discovery:
    """The files to read, plus every candidate skipped or folded into another, with the reason."""

    name: str
    files: list[Path]
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    duplicates: list[str] = field(default_factory=list)  # "path: same file as other"


def extensions(fmt: str) -> tuple[str, ...]:
    """Return the file name endings a directory or glob of format ``fmt`` reads."""
    return CSV_EXTENSIONS + PARQUET_EXTENSIONS if fmt == "generic" else TEXT_EXTENSIONS


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _hidden(path: Path, root: Path | None) -> bool:
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(p.startswith(".") and p not in (".", "..") for p in parts)


def _walk(root: Path) -> list[Path]:
    """Every entry under ``root``, following directory links once per real directory (no loops)."""
    seen: set[str] = set()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return out


def _select(candidates: list[Path], fmt: str, root: Path | None, found: Discovery, *, any_name: bool = False) -> None:
    """Keep regular, visible, readable files once each; ``any_name``: a glob chose the names."""
    exts = extensions(fmt)
    real_seen: dict[str, Path] = {}
    # a real name before a link to it, so the name kept is the file's own where both are listed
    for path in sorted(candidates, key=lambda p: (p.is_symlink(), str(p))):
        if _hidden(path, root):
            found.skipped.append(f"{path}: hidden file (name or folder starts with '.'; AppleDouble '._' files too)")
            continue
        if not any_name and not path.name.lower().endswith(exts):
            found.skipped.append(f"{path}: not an input file of format {fmt} ({', '.join(exts)})")
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            found.skipped.append(f"{path}: cannot be read ({exc.strerror or exc}; a broken link?)")
            continue
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            found.skipped.append(f"{path}: {_kind(mode)}, never opened")
            continue
        real = os.path.realpath(path)
        if real in real_seen:
            found.duplicates.append(f"{path}: same file as {real_seen[real]} (read once)")
            continue
        real_seen[real] = path
        found.files.append(path)
    found.files.sort()


def resolve_input(source: str, fmt: str) -> Discovery:
    """Turn INPUT (a file, a directory, a glob or ``builtin:NAME``) into the files to read."""
    if source.startswith(BUILTIN_PREFIX):

        name = source[len(BUILTIN_PREFIX):]
        return Discovery(name, [builtin_path(name)])
    p = Path(source)
    try:
        mode = os.stat(p).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISREG(mode):  # a real file wins over glob syntax: "[x]data.csv"
        return Discovery(Path(p.stem).stem if p.suffix.lower() == ".gz" else p.stem, [p])
    if mode is not None and not stat.S_ISDIR(mode):
        raise SpendlabError(f"{source}: is {_kind(mode)}; spendlab reads regular files only")
    if mode is not None:
        found = Discovery(p.name, [])
        _select(_walk(p), fmt, p, found)
        if not found.files:
            raise SpendlabError(f"{source}: directory holds no input files ({', '.join(extensions(fmt))})"
                                + _skipped_hint(found))
        return found
    if any(ch in source for ch in "*?["):
        found = Discovery(source, [])
        _select([Path(f) for f in globlib.glob(source, recursive=True)], fmt, None, found, any_name=True)
        if not found.files:
            raise SpendlabError(f"{source}: the pattern matches no input file" + _skipped_hint(found))
        return found
    raise SpendlabError(f"{source}: no such file or directory")


def _skipped_hint(found: Discovery) -> str:
    if not found.skipped:
        return ""
    more = f" and {len(found.skipped) - 3} more" if len(found.skipped) > 3 else ""
    return "; skipped: " + "; ".join(found.skipped[:3]) + more
