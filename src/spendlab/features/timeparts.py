"""The per-(user, period) aggregate in parts of consecutive periods, for inputs stored in time order.

DuckDB's hash aggregate of every (user, period) at once holds all groups' partial states together:
9.3M groups at 1M users x 24 months, more than the 1GB default, so it spills to disk. When the input's
Parquet row groups are ordered (or clustered) by time, the same aggregate run on a few periods at a
time reads only the row groups of those periods (the reader skips the others by their timestamp
statistics: ``{view}__between``, :meth:`spendlab.io.Transactions.register`), and each part's hash
table stays small. A (user, period) group lies in exactly one part, so the rows are the same.
:func:`time_parts` decides from the row groups' statistics alone whether parts pay: each part must
read little more than its own rows, else the input is not clustered and one statement is cheaper.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

import duckdb

from spendlab.calendar import Freq, next_period_start, period_start
from spendlab.features.sql import aggregate_sql
from spendlab.sqltext import quote

#: Rows of the input one part of the aggregate should hold (by the row groups' statistics): at 1M
#: users, a 2-month part (about 3M rows, 0.8M groups) no longer spills under the 1GB default.
PART_ROWS = 3_000_000
#: Parts are used only when all of them together read at most this many times the rows in range.
MAX_READ_RATIO = 1.5
#: The first part's lower bound: before any day a timestamp can hold (the range's own margin is a day).
FIRST_DAY = dt.date(1, 1, 2)


def _overlaps(group: tuple[int, dt.datetime, dt.datetime], lo: dt.datetime, hi: dt.datetime) -> bool:
    return group[1] < hi and group[2] >= lo


def time_parts(row_groups: Sequence[tuple[int, dt.datetime, dt.datetime]], as_of: dt.date, freq: Freq,
               part_rows: int | None = None) -> list[tuple[dt.date, dt.date]] | None:
    """Return the ``[lo, hi)`` day ranges of the aggregate's parts, oldest first, or ``None`` for one statement.

    ``row_groups`` holds ``(rows, ts_min, ts_max)`` per Parquet row group (naive UTC). Each bound but
    the first (:data:`FIRST_DAY`) and the last (the day after ``as_of``) is the start of a period, so
    every (user, period) falls in one part. The rows of each period are estimated by spreading each
    row group's rows evenly over its time span; periods are added to a part while it stays within
    ``part_rows`` (default :data:`PART_ROWS`). ``None`` when the rows up to ``as_of`` fit in one part, or when the parts would read
    more than :data:`MAX_READ_RATIO` times those rows (row groups that span many parts: not clustered).
    """
    part_rows = PART_ROWS if part_rows is None else part_rows
    cutoff = as_of + dt.timedelta(days=1)
    end = dt.datetime.combine(cutoff, dt.time())
    groups = [g for g in row_groups if g[1] < end]
    total = sum(g[0] for g in groups)
    if total <= part_rows:
        return None
    starts = [period_start(min(g[1] for g in groups), freq)]
    while starts[-1] <= as_of:
        starts.append(next_period_start(starts[-1], freq))
    bounds = [dt.datetime.combine(d, dt.time()) for d in [*starts[:-1], cutoff]]
    per_period = [0.0] * (len(bounds) - 1)
    for n, lo, hi in groups:
        span = max((min(hi, end) - lo).total_seconds(), 0.0)
        first = max(bisect.bisect_right(bounds, lo) - 1, 0)  # the period holding lo
        if span == 0.0:
            per_period[first] += n
            continue
        for i in range(first, len(per_period)):
            if bounds[i] >= min(hi, end):
                break
            a, b = max(lo, bounds[i]), min(hi, end, bounds[i + 1])
            if b > a:
                per_period[i] += n * (b - a).total_seconds() / span
    cuts, held = [0], 0.0
    for i, n in enumerate(per_period):
        if held and held + n > part_rows:
            cuts.append(i)
            held = 0.0
        held += n
    if len(cuts) == 1:
        return None
    parts = [(bounds[c].date(), bounds[d].date()) for c, d in zip(cuts, [*cuts[1:], len(per_period)], strict=True)]
    parts[0] = (FIRST_DAY, parts[0][1])
    margin = dt.timedelta(days=1)  # the reader's raw bound is a day wider (spendlab.io.parquet.range_sql)
    read = sum(g[0] for lo, hi in parts for g in groups
               if _overlaps(g, dt.datetime.combine(lo, dt.time()) - margin, dt.datetime.combine(hi, dt.time()) + margin))
    return parts if read <= MAX_READ_RATIO * total else None


def _between(con: duckdb.DuckDBPyConnection, view: str) -> bool:
    """Whether ``view`` has the time-range macro and row-group table (:meth:`spendlab.io.Transactions.register`)."""
    macro = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ? AND function_type = 'table_macro'",
                        [f"{view}__between"]).fetchall()[0][0]
    table = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary",
                        [f"{view}__row_groups"]).fetchall()[0][0]
    return bool(macro and table)


def _range_source(view: str, lo: dt.date, hi: dt.date) -> str:
    """Return SQL of the rows of ``view`` with ``lo <= ts < hi``, through its macro (row groups outside skipped)."""
    return f"SELECT user_id, ts, amount FROM {quote(view + '__between')}(DATE '{lo.isoformat()}', DATE '{hi.isoformat()}')"


def periods_table(con: duckdb.DuckDBPyConnection, name: str, source: str, view: str, *, as_of: dt.date,
                  freq: Freq, columns: frozenset[str] | None) -> None:
    """Create ``name``: :func:`~spendlab.features.sql.aggregate_sql` of ``source``, in parts of periods when that pays.

    When ``view`` has the time-range macro and row-group table (its rows in time-ordered Parquet row
    groups: :func:`time_parts`) each part is the aggregate of the rows of a few consecutive periods,
    read through the macro; a (user, period) lies in one part, so the table holds the same rows.
    """
    parts = None
    if _between(con, view):
        parts = time_parts(con.execute(f"SELECT n_rows, ts_min, ts_max FROM {quote(view + '__row_groups')}").fetchall(),
                           as_of, freq)
    if parts is None:
        con.execute(f"CREATE TEMP TABLE {name} AS {aggregate_sql(as_of, freq, source, columns)}")
        return
    for i, (lo, hi) in enumerate(parts):
        sql = aggregate_sql(as_of, freq, _range_source(view, lo, hi), columns)  # type: ignore[arg-type]
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}" if i == 0 else f"INSERT INTO {name} {sql}")
