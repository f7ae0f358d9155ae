"""Work on a thread beside the caller, in a copy of the caller's context.

Every thread a job starts runs its task in a copy of the submitting thread's :mod:`contextvars`
context, so what the job set up there holds on the thread too: the stage recorder of
:mod:`spendlab.timing` first of all (a stage timed on a thread lands in the job's profile). One copy
per task: a context cannot be entered by two threads at once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


def submit(pool: Executor, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
    """``pool.submit(fn, *args, **kwargs)``, run in a copy of this thread's context."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]


def map_in_context(pool: Executor, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``list(pool.map(fn, items))``, each call in a copy of this thread's context; raises the first error."""
    return [f.result() for f in [submit(pool, fn, item) for item in items]]


def on_a_thread(name: str, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
    """Run ``fn(*args, **kwargs)`` on a thread of its own named ``name``; its error is raised where the result is read.

    The caller does not wait for it: the thread ends with its one task.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return submit(pool, fn, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)
