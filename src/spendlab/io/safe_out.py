"""Where spendlab may write: never delete or clobber what spendlab did not make.

Every directory spendlab writes carries a marker file (:data:`MARKER`). A directory output replaces
only a directory with that marker, or an empty one. Any output is refused (exit 2, one line,
nothing touched) when it is the current directory or one of its parents, when it is or holds an
input, or when it is a special file (device, FIFO, socket). A file output never replaces a
directory and a directory output never replaces a file. Existing regular files that are not inputs
are overwritten, as ``cp`` and ``-o`` options do: a file has no room for a marker.

The CLI calls :func:`check_output` before any work starts, with the command's inputs;
:func:`spendlab.io.atomic.atomic_path` repeats the checks that need no inputs at the moment it
swaps, so a library caller cannot clobber a foreign directory either.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from spendlab.errors import SpendlabError

#: The file that marks a directory as spendlab's own output (fixed content: reruns stay byte-identical).
MARKER = ".spendlab-output"
MARKER_TEXT = ("Written by spendlab. spendlab replaces this directory as a whole on the next run "
               "with the same output; it refuses any non-empty directory without this file.\n")

Kind = Literal["dir", "file"]


class UnsafeOutputError(SpendlabError):
    """An output target that spendlab refuses to write (it would delete or clobber something)."""

    exit_code = 2


def is_spendlab_dir(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` is a directory spendlab made (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def mark_output_dir(path: str | os.PathLike[str]) -> None:
    """Write the marker into ``path`` (an existing directory), leaving an identical one alone."""
    marker = Path(path) / MARKER
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == MARKER_TEXT):
        marker.write_text(MARKER_TEXT, encoding="utf-8")


def is_special(path: Path) -> bool:
    """Tell whether ``path`` exists and is neither a regular file nor a directory (device, FIFO, socket)."""
    return path.exists() and not (path.is_file() or path.is_dir())


def input_paths(specs: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    """List the real paths an input spec names: files, folders, glob matches and the folder a glob starts in.

    ``builtin:`` inputs and ``None`` name nothing on disk the user owns and are skipped.
    """
    found: list[Path] = []
    for spec in specs:
        if spec is None:
            continue
        s = os.fspath(spec)
        if not s or s.startswith("builtin:") or "\x00" in s:
            continue
        if glob.has_magic(s):
            found.extend(Path(os.path.realpath(m)) for m in glob.glob(s, recursive=True))
            parts = Path(s).parts
            static = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
            found.append(Path(os.path.realpath(Path(*static) if static else ".")))
        else:
            found.append(Path(os.path.realpath(s)))
    return found


def refuse_unsafe_target(real: Path, shown: str, *, option: str = "output", kind: Kind | None = None) -> None:
    """Run the checks that need no inputs; ``real`` is the resolved target, ``shown`` how the user named it."""
    def refuse(why: str) -> None:
        raise UnsafeOutputError(f"{option} {shown}: refusing to write: {why}; nothing was changed")

    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        refuse("it is the current directory or one of its parents")
    if is_special(real):
        refuse("it is a special file (device, FIFO or socket), not a regular file or directory")
    if kind == "file" and real.is_dir():
        refuse("it is a directory and this output is a file")
    if kind == "dir" and real.exists() and not real.is_dir():
        refuse("it is a file and this output is a directory")
    if real.is_dir() and not is_spendlab_dir(real) and any(real.iterdir()):
        refuse(f"it is a non-empty directory spendlab did not make (no {MARKER} marker); "
               "give a new or empty directory")
    parent = next((p for p in real.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        refuse(f"{parent} is not a directory")


def check_output(path: str | os.PathLike[str], *, kind: Kind,
                 inputs: Iterable[str | os.PathLike[str] | None] = (), option: str = "--out") -> Path:
    """Refuse ``path`` as an output unless writing it can only replace spendlab's own earlier output.

    Raises :class:`UnsafeOutputError` (exit 2) when ``path`` is the current directory or a parent of
    it, is or contains one of ``inputs``, is a special file, is a non-empty directory without the
    marker, or is a directory where a file goes (or the reverse). Returns ``path`` unchanged.
    """
    shown = os.fspath(path)
    if "\x00" in shown:
        raise UnsafeOutputError(f"{option} {shown!r}: refusing to write: the name contains a NUL byte")
    real = Path(os.path.realpath(shown))
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        refuse_unsafe_target(real, shown, option=option, kind=kind)  # says which: before the input check
    for inp in input_paths(inputs):
        same = real == inp or (real.exists() and inp.exists() and os.path.samefile(real, inp))
        if same or real in inp.parents:
            raise UnsafeOutputError(f"{option} {shown}: refusing to write: it "
                                    f"{'is' if same else 'holds'} the input {inp}; nothing was changed")
    refuse_unsafe_target(real, shown, option=option, kind=kind)
    return Path(path)


def prepare_output_dir(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = (),
                       option: str = "--out") -> Path:
    """Check ``path`` as a directory output, create it and mark it as spendlab's.

    For jobs that write files into a directory instead of swapping the directory whole. Every parent
    directory created on the way is marked too: spendlab made it, so a later output there (a feature
    cache under ``outputs/``, then ``--out outputs``) is not refused as someone else's directory.
    """
    check_output(path, kind="dir", inputs=inputs, option=option)
    made = [p for p in (Path(path), *Path(path).parents) if not os.path.lexists(p)]
    Path(path).mkdir(parents=True, exist_ok=True)
    for p in made[1:]:
        mark_output_dir(p)
    mark_output_dir(path)
    return Path(path)


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = (),
               option: str = "--out") -> Iterator[Path]:
    """:func:`prepare_output_dir` for a job that fills the directory file by file.

    Marked before the first file, so a run killed half-way leaves a directory the rerun may replace;
    if the job fails and the directory it created holds only the marker, it is removed again.
    """
    existed = os.path.lexists(path)
    prepare_output_dir(path, inputs=inputs, option=option)
    try:
        yield Path(path)
    except BaseException:
        p = Path(path)
        if not existed and p.is_dir() and [c.name for c in p.iterdir()] == [MARKER]:
            shutil.rmtree(p, ignore_errors=True)
        raise


def claimed_dir(path: str | os.PathLike[str] | None, *, inputs: Iterable[str | os.PathLike[str] | None] = (),
                option: str = "--out") -> contextlib.AbstractContextManager[Path | None]:
    """:func:`output_dir` for an optional ``--out`` (nothing to claim when ``path`` is None).

    Claiming before the work matters when something else the job writes (a tracking store given
    inside ``--out``) lands in the directory first: it would otherwise be refused as not spendlab's.
    """
    if path is None:
        return contextlib.nullcontext(None)
    return output_dir(path, inputs=inputs, option=option)
