"""Where a job's time goes: a context-manager timer that collects into the job's recorder.

A job opens one :class:`Timings` recorder for its plan (:func:`recording`); code anywhere below it
wraps a stage in :func:`timed` (``with timed("fit", "lightgbm", cutoff):``). Without an open recorder
:func:`timed` costs one context-variable look-up and records nothing, so library code can time its
stages unconditionally. Threads started by the job inherit the recorder: :mod:`spendlab.threads` runs
every task in a copy of the submitting thread's context (:func:`contextvars.copy_context`).

Each record keeps the wall time and the thread's CPU time: on a busy machine a stage whose CPU time
is far above its wall time is oversubscribed (more threads than cores), one far below it is waiting.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import pandas as pd

#: The columns of :meth:`Timings.records` and :meth:`Timings.summary`.
RECORD_COLUMNS = ["stage", "detail", "origin", "seconds", "cpu_seconds"]
SUMMARY_COLUMNS = ["stage", "detail", "calls", "seconds", "cpu_seconds"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_CURRENT: ContextVar[Timings | None] = ContextVar("spendlab_timings", default=None)


@dataclass
class Timings:
    """Timed stages of one job, safe to add to from several threads."""

    rows: list[dict[str, object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, detail: str, origin: str, seconds: float, cpu_seconds: float) -> None:
        """Record one timed stage.

        Parameters
        ----------
        stage : str
            The kind of work (``load``, ``features``, ``fit``, ``predict``, ``blend``, ``mlflow``, ...).
        detail : str
            What it worked on (a model key, a cutoff kind); ``""`` when nothing finer applies.
        origin : str
            The cutoff it worked for (ISO date), or ``""``.
        seconds : float
            Wall time.
        cpu_seconds : float
            CPU time of the calling thread (library threads it started are not included).
        """
        with self._lock:
            self.rows.append({"stage": stage, "detail": detail, "origin": origin,
                              "seconds": float(seconds), "cpu_seconds": float(cpu_seconds)})

    def records(self) -> pd.DataFrame:
        """Every record in the order it finished, with :data:`RECORD_COLUMNS`."""
        with self._lock:
            return pd.DataFrame(list(self.rows), columns=RECORD_COLUMNS)

    def summary(self) -> pd.DataFrame:
        """Totals per (stage, detail), longest first: calls, wall and CPU seconds."""
        rec = self.records()
        if rec.empty:
            return pd.DataFrame(columns=SUMMARY_COLUMNS)
        out = (rec.groupby(["stage", "detail"], sort=False, as_index=False)
               .agg(calls=("seconds", "size"), seconds=("seconds", "sum"), cpu_seconds=("cpu_seconds", "sum")))
        return out.sort_values(["seconds", "stage", "detail"], ascending=[False, True, True],
                               ignore_index=True)[SUMMARY_COLUMNS]


@contextmanager
def recording(timings: Timings | None = None) -> Iterator[Timings]:
    """Make ``timings`` (a new recorder when ``None``) the recorder of every :func:`timed` inside the block.

    Parameters
    ----------
    timings : Timings, optional
        The recorder to collect into.

    Yields
    ------
    Timings
        The recorder.
    """
    rec = timings if timings is not None else Timings()
    token = _CURRENT.set(rec)
    try:
        yield rec
    finally:
        _CURRENT.reset(token)


def profiled(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``func`` inside a recorder: the caller's when one is open, else a new one for this call.

    Parameters
    ----------
    func : callable
        A job's entry point; inside it :func:`current` is never ``None``.

    Returns
    -------
    callable
        ``func``, wrapped.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with recording(current()):
            return func(*args, **kwargs)

    return wrapper


def current() -> Timings | None:
    """Return the recorder of the innermost :func:`recording` block of this context, if any."""
    return _CURRENT.get()


@contextmanager
def timed(stage: str, detail: str = "", origin: object = "") -> Iterator[None]:
    """Time the block into the current recorder (nothing happens without one).

    Parameters
    ----------
    stage : str
        The kind of work.
    detail : str
        What it worked on.
    origin : object
        The cutoff it worked for (a date, printed as ISO), or ``""``.

    Yields
    ------
    None
    """
    rec = _CURRENT.get()
    if rec is None:
        yield
        return
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        rec.add(stage, detail, str(origin), time.perf_counter() - t0, time.thread_time() - c0)
