"""Crash and concurrency helpers that know nothing about MLflow or Optuna.

* :func:`process_tags` / :func:`owner_alive`: a record (an MLflow run, a lock) carries the pid,
  host and process start time of its owner; a record is orphaned when that process is gone on this
  host. The start time guards against pid reuse: a new process with the same pid started later.
* :func:`file_lock`: an exclusive inter-process lock on a lock file (``fcntl.flock``), used to
  serialise one-time set-up such as creating and migrating a SQLite store.
* :func:`retry`: call a function again with exponential backoff and jitter while an error is
  retryable (for example SQLite's ``database is locked``).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Tag keys written on every run spendlab creates.
PID_TAG = "spendlab.pid"
HOST_TAG = "spendlab.host"
PROCESS_START_TAG = "spendlab.process_start"

_START_TOLERANCE_S = 1.0  # psutil create_time is rounded; a reused pid starts much later


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def process_tags() -> dict[str, str]:
    """Pid, host name and start time (epoch seconds) of the current process, as tag values."""
    start = _process_start(os.getpid())
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(),
            PROCESS_START_TAG: f"{start:.3f}" if start is not None else ""}


def owner_alive(tags: Mapping[str, str]) -> bool | None:
    """Whether the process named by ``tags`` (see :func:`process_tags`) still runs.

    ``None`` when it cannot be told from here: no owner tags, or another host.
    ``False`` when the pid is gone, is a zombie, or now belongs to a process started later.
    """
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if not pid or not host or host != socket.gethostname():
        return None
    try:
        pid_i = int(pid)
    except ValueError:
        return None
    start = _process_start(pid_i)
    if start is None:
        return False
    import psutil

    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid_i).status() == psutil.STATUS_ZOMBIE:
            return False
    recorded = tags.get(PROCESS_START_TAG)
    if recorded:
        try:
            return abs(float(recorded) - start) <= _START_TOLERANCE_S
        except ValueError:
            return True
    return True


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; blocks until free."""
    import fcntl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def is_sqlite_busy(exc: BaseException) -> bool:
    """Tell SQLite lock contention however it is wrapped (sqlite3, SQLAlchemy, MLflow)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e).lower()
        if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def retry(fn: Callable[[], T], *, retryable: Callable[[BaseException], bool] = is_sqlite_busy,
          attempts: int = 8, base_delay: float = 0.1, max_delay: float = 5.0,
          seed: int | None = None) -> T:
    """``fn()``, retried with exponential backoff and full jitter while ``retryable(error)``.

    The last error is raised unchanged once ``attempts`` calls failed (or at once when it is not
    retryable). ``seed`` fixes the jitter (tests).
    """
    rng = random.Random(seed)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not retryable(exc):
                raise
            time.sleep(rng.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1))))
    raise AssertionError("unreachable")  # pragma: no cover
