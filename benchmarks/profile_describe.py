"""Per-stage CPU profile of ``spendlab describe``: where the CPU seconds go, stage by stage.

CPU seconds (user + system of the whole process, DuckDB's threads included) are measured around
start-up (imports), loading and validation, every SQL statement ``run_describe`` issues (each
intermediate table, each insight query, each per-user CSV or Parquet written by DuckDB), every
figure, the small CSVs written from pandas and the HTML rendering. CPU time, not wall time, is
the measure to compare on a shared machine.

Usage (a slice of the 1M-user data keeps a loop short)::

    .venv/bin/python benchmarks/profile_describe.py benchmarks/data/synth_1m_int_24m.parquet \
        --max-user-id 200000 --out /tmp/describe_profile
"""

from __future__ import annotations

import resource
import time

START_CPU = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])

import argparse  # noqa: E402 (the imports are part of what is measured)
import functools  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import spendlab.jobs.describe as job  # noqa: E402
from spendlab.describe import figures, render  # noqa: E402
from spendlab.io.load import load_transactions  # noqa: E402
from spendlab.settings import DEFAULT_MEMORY_LIMIT  # noqa: E402

#: label -> [cpu seconds, wall seconds, calls]
STATS: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])


def cpu() -> float:
    """CPU seconds (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def record(label: str, c0: float, w0: float) -> None:
    """Add the CPU and wall seconds since ``c0``/``w0`` to ``label``."""
    s = STATS[label]
    s[0] += cpu() - c0
    s[1] += time.perf_counter() - w0
    s[2] += 1


class TimedConnection:
    """A DuckDB connection whose ``execute`` records each statement's CPU time."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``sql`` on the wrapped connection, timed under its first words."""
        c0, w0 = cpu(), time.perf_counter()
        result = self._con.execute(sql, *args, **kwargs)
        record("SQL " + " ".join(str(sql).split())[:100], c0, w0)
        return result


def timed(module: Any, name: str, label: str) -> None:
    """Replace ``module.name`` by a wrapper that records its CPU time under ``label``."""
    fn: Callable[..., Any] = getattr(module, name)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c0, w0 = cpu(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record(label, c0, w0)

    setattr(module, name, wrapper)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", type=Path, help="A Parquet or CSV input (generic format).")
    ap.add_argument("--max-user-id", type=int, default=None,
                    help="Profile only users with an integer id up to this (a slice written to a temporary file).")
    ap.add_argument("--out", type=Path, default=None, help="Output directory (default: a temporary one).")
    ap.add_argument("--tables", choices=("csv", "parquet"), default="csv")
    ap.add_argument("--min-seconds", type=float, default=0.05, help="Hide stages cheaper than this.")
    ap.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT,
                    help="DuckDB memory limit, as describe's --memory-limit (default: the CLI's default; "
                         "'none' = DuckDB's own, 80%% of RAM). Spilling under the limit costs CPU.")
    args = ap.parse_args()
    STATS["start-up (imports)"] = [cpu() - START_CPU, 0.0, 1]
    work = Path(tempfile.mkdtemp(prefix="describe_profile_"))
    try:
        source = args.input
        if args.max_user_id is not None:
            import duckdb

            source = work / "slice.parquet"
            literal = str(args.input).replace("'", "''")
            slicer = duckdb.connect()
            slicer.execute("SET enable_progress_bar = false")
            slicer.execute(f"COPY (SELECT * FROM read_parquet('{literal}') WHERE user_id <= "
                                     f"{int(args.max_user_id)}) TO '{source}' (FORMAT parquet)").fetchall()
        real_connect = job.connect
        job.connect = lambda **kw: TimedConnection(real_connect(**kw))
        for name in dir(figures):
            if name.endswith("_figure"):
                timed(figures, name, f"figure {name}")
        timed(render, "render_html", "report.html (render)")
        timed(job, "write_frame_csv", "small CSVs (pandas)")
        c0, w0 = cpu(), time.perf_counter()
        tx = load_transactions(str(source), "generic")
        record("load + validation", c0, w0)
        out = args.out or work / "describe"
        shutil.rmtree(out, ignore_errors=True)
        c0, w0 = cpu(), time.perf_counter()
        job.run_describe(tx, out, table_format=args.tables,
                         memory_limit=None if args.memory_limit in (None, "none") else args.memory_limit)
        record("run_describe (total)", c0, w0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'cpu s':>8} {'wall s':>8} {'calls':>5}  stage")
    print(f"{cpu() - START_CPU:8.2f} {'':>8} {'':>5}  process total")
    for label, (c, w, n) in sorted(STATS.items(), key=lambda kv: -kv[1][0]):
        if c >= args.min_seconds:
            print(f"{c:8.2f} {w:8.2f} {int(n):5d}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
