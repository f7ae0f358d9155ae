"""Benchmark: when each stage of one `spendlab score` run starts and ends, on which thread (the critical path).

Runs the CLI's ``score`` in this process with the job's stages wrapped: the model load on its thread (the
tracking store's start, the model's spec, the registry read), the input read, each part of the feature
build, the predictions, the drift. At exit it prints one line per event to stderr: wall seconds since the
start, the thread's CPU seconds, the thread, ``>`` (start) or ``<`` (end) and the stage. On a loaded
machine the order and the gaps (the main thread waiting for the model, the features' start) say more than
the wall total. Modules that import MLflow are not wrapped, so the main thread imports what the job imports.
Stages missing from the code that runs (another revision's, by ``PYTHONPATH``) are skipped.

Usage::

    nice -n 10 .venv/bin/python benchmarks/score_timeline.py benchmarks/data/synth_1m_int_24m.parquet \
        --format generic --as-of 2024-12-31 --out /tmp/scores.parquet
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import atexit  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

EVENTS: list[tuple[float, float, str, str]] = []

#: (module, function) pairs wrapped; each is called through its module's global, so the wrapper is seen.
STAGES = [
    ("spendlab.tracking.scorer", "load_model"), ("spendlab.tracking.scorer", "_directory_spec"),
    ("spendlab.tracking.scorer", "_registered_version"), ("spendlab.tracking.runs", "_initialise_store"),
    ("spendlab.jobs.score", "load_transactions"), ("spendlab.jobs.score", "resolve_model"),
    ("spendlab.jobs.score", "build_features_arrow"), ("spendlab.jobs.score", "_write_chunks"),
    ("spendlab.jobs.score", "score_frame"), ("spendlab.jobs.score", "profile_psi"),
    ("spendlab.features.build", "periods_table"), ("spendlab.features.build", "_user_sums_table"),
    ("spendlab.features.build", "_first_day_probe"), ("spendlab.features.build", "arithmetic"),
]


def log(event: str) -> None:
    """Record ``event`` with the wall time since the start and the calling thread's CPU time."""
    EVENTS.append((time.perf_counter() - _T0, time.thread_time(), threading.current_thread().name, event))


def wrap(module: str, name: str) -> None:
    """Replace ``module.name`` by a wrapper logging its start and end (nothing when it does not exist)."""
    try:
        mod = importlib.import_module(module)
        fn: Callable[..., Any] = getattr(mod, name)
    except (ImportError, AttributeError):
        return
    label = f"{module.rsplit('.', 1)[-1]}.{name}"

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        log(f"> {label}")
        try:
            return fn(*args, **kwargs)
        finally:
            log(f"< {label}")

    setattr(mod, name, timed)


def dump() -> None:
    """Print the events, in order, to stderr."""
    log("exit")
    for wall, cpu, thread, event in EVENTS:
        print(f"{wall:7.2f} {cpu:6.2f} {thread[:22]:22s} {event}", file=sys.stderr)


def main() -> None:
    log("start")
    import spendlab.cli  # what the CLI imports before the command runs
    import spendlab.jobs.score  # noqa: F401 - what the score command imports
    log("imported the CLI and the score job")
    for module, name in STAGES:
        wrap(module, name)
    atexit.register(dump)
    from spendlab.cli import main as cli

    cli(["score", *sys.argv[1:]])


if __name__ == "__main__":
    main()
