"""Atomic output: write to a temporary sibling, then rename into place.

A crash or a write error leaves either the old file or no file at the final path, never a
partial one. Output names are confined to a base directory before anything is written.

The rename happens under an exclusive lock on the parent directory, so concurrent writers of one
output each swap a complete version in (the last one wins) and never meet half-way. Temporary
names carry the writer's pid: a temporary left by a killed run is removed by the next writer of
the same output. What may be replaced at all is decided by :mod:`spendlab.io.safe_out`: a
directory output replaces only a directory spendlab marked as its own (or an empty one).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from spendlab.errors import ConfigError, SpendlabError
from spendlab.io.safe_out import mark_output_dir, refuse_unsafe_target


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` itself: no lock file is left beside the outputs."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(final: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` directories beside ``final`` whose writer process is gone."""
    prefix = f".{final.name}."
    for tmp in final.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        m = re.fullmatch(r"(\d+)\.[a-z0-9_]+\.tmp", tmp.name[len(prefix):])  # mkdtemp: <pid>.<random>.tmp
        if m and tmp.is_dir() and not tmp.is_symlink() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap(tmp: Path, final: Path, shown: str) -> None:
    """Move the finished ``tmp`` to ``final`` (caller holds the directory lock).

    A directory replaces the old one in a single exchange where the kernel offers it, so there is no
    moment without a complete output at ``final``; elsewhere the old one is renamed aside first.
    """
    if tmp.is_dir():
        refuse_unsafe_target(final, shown, kind="dir")
        mark_output_dir(tmp)
        if final.is_dir() and _exchange(tmp, final):
            return  # the old output is now at ``tmp`` and goes with the temporary directory
        if final.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            return
    else:
        refuse_unsafe_target(final, shown, kind="file")
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Works for files and directories (a directory is swapped in by rename, the old one removed, and
    marked as spendlab's). A symlink at ``path`` is followed: the output goes where it points and the
    link stays. Raises :class:`spendlab.io.safe_out.UnsafeOutputError` before the block runs when
    ``path`` may not be replaced (current directory or a parent of it, special file, a non-empty
    directory spendlab did not make), and again before the swap.
    """
    shown = os.fspath(path)
    final = Path(os.path.realpath(shown))
    if not final.parent.is_dir():  # nothing can stand at ``final`` yet; refuse a path below a file etc.
        refuse_unsafe_target(final, shown)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with _directory_lock(final.parent):
            # checked under the lock: a concurrent writer's rename-aside swap leaves ``final`` briefly absent
            refuse_unsafe_target(final, shown)
            _remove_stale_temporaries(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)) / final.name
        yield tmp
        with _directory_lock(final.parent):
            _swap(tmp, final, shown)
    except (OSError, duckdb.IOException) as exc:
        if not _is_output_error(exc, final):
            raise
        raise OutputWriteError(f"{shown}: cannot write the output ({_reason(exc)}); nothing was written there and "
                               "what was there before is unchanged") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp.parent, ignore_errors=True)


class OutputWriteError(SpendlabError):
    """The file system refused an output (disk full, file too large, read-only, no permission)."""


#: errno values that mean "this output cannot be written", whatever file the OS names.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EIO}
_WRITE_TEXTS = ("No space left", "File too large", "Read-only file system", "Disk quota exceeded")


def _is_output_error(exc: BaseException, final: Path) -> bool:
    """Whether ``exc`` is the output failing (not an input the block happened to read)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        where = getattr(exc, "filename", None)
        if where is None:
            return exc.errno in _WRITE_ERRNOS
        return str(final.parent) in os.path.realpath(str(where))
    text = str(exc)  # DuckDB and Arrow name the errno in the message
    return str(final.parent) in text or any(s in text for s in _WRITE_TEXTS)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the new one."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
