"""Time each DuckDB statement of one feature build (where `spendlab features` spends its time).

Loads the input as the CLI does, then runs :func:`spendlab.features.build_features_arrow` on a
connection that times every statement and prints those over ``--min-seconds``, plus the numpy part
(the rest of the build). For finding which step grows with the data; the acceptance figures come from
``bench_features.py``. Example (issue 19, 3M users weekly)::

    .venv/bin/python benchmarks/feature_steps.py benchmarks/data/synth_3m_int_24m.parquet \\
        --freq week --as-of 2024-12-29
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

import duckdb

import spendlab.features.build as build
from spendlab.io.load import connect, load_transactions
from spendlab.jobs.features import load_feature_config
from spendlab.settings import DEFAULT_MEMORY_LIMIT


class TimedConnection:
    """A DuckDB connection whose ``execute`` records (wall seconds, CPU seconds, statement).

    CPU seconds are the process's (every thread's, ``time.process_time``): on a loaded machine they
    move far less than wall time.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.steps = con, []

    def execute(self, query: str, *args: Any) -> duckdb.DuckDBPyConnection:
        t0, c0 = time.perf_counter(), time.process_time()
        result = self.con.execute(query, *args)
        self.steps.append((time.perf_counter() - t0, time.process_time() - c0, " ".join(query.split())))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a Parquet file in the generic format")
    ap.add_argument("--freq", choices=("month", "week"), default="month")
    ap.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT)
    ap.add_argument("--chunk-rows", type=int, default=build.STATS_CHUNK_ROWS,
                    help="per-user stats chunk size (features.build.STATS_CHUNK_ROWS)")
    ap.add_argument("--min-seconds", type=float, default=0.3)
    args = ap.parse_args(argv)
    build.STATS_CHUNK_ROWS = args.chunk_rows
    t0 = time.perf_counter()
    tx = load_transactions(args.data, "generic")
    con = connect(memory_limit=args.memory_limit)
    tx.register(con, native_ids=True)
    print(f"{time.perf_counter() - t0:8.2f} s  load and validate")
    timed = TimedConnection(con)
    t1, c1 = time.perf_counter(), time.process_time()
    table = build.build_features_arrow(timed, freq=args.freq, as_of=args.as_of, config=load_feature_config(None))
    total, cpu = time.perf_counter() - t1, time.process_time() - c1
    print("  wall s     CPU s")
    for seconds, cpu_s, sql in timed.steps:
        if seconds >= args.min_seconds or cpu_s >= args.min_seconds:
            print(f"{seconds:8.2f}  {cpu_s:8.2f}  {sql[:130]}")
    print(f"{total - sum(s[0] for s in timed.steps):8.2f}  {cpu - sum(s[1] for s in timed.steps):8.2f}  "
          "the rest (fetches, numpy features)")
    print(f"{total:8.2f}  {cpu:8.2f}  build_features_arrow, {table.num_rows:,} users")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
