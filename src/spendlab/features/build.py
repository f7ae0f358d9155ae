"""Run the feature SQL on a DuckDB connection: the as-of cut, panels, features and (apart) the target.

Every function takes a connection on which ``view`` holds canonical transactions (``user_id``, ``ts``
as naive UTC ``TIMESTAMP``, ``amount``; see :meth:`spendlab.io.Transactions.register`). Only
:func:`build_target` reads rows after the cutoff.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from spendlab.calendar import Freq, check_freq, next_period_start, shift_period
from spendlab.features.arrays import feature_needs, window_widths
from spendlab.features.btyd import BTYD_COLUMNS, btyd_sql
from spendlab.features.config import FeatureConfig
from spendlab.features.covariates import with_covariates
from spendlab.features.halves import arithmetic
from spendlab.features.sql import (
    EVENT_DAYS_TABLE,
    MONEY,
    asof_sql,
    calendar_tables,
    cutoff_timestamp,
    dense_panel_sql,
    first_day_spend_sql,
    panel_sparse_sql,
    stats_plan,
    user_stats_from_sums_sql,
    user_sums_sql,
    window_cells_sql,
)
from spendlab.features.timeparts import periods_table
from spendlab.io.load import release_memory

_counter = itertools.count()

#: Rows of the per-(user, period) aggregate reduced to per-user stats in one hash aggregate. Past it,
#: the users are split into chunks by a hash of the id: at 3M users x 22 weeks (66M rows) one aggregate
#: of a dozen sums per user goes external under the 1GB default limit (21-29 s against 9 s in memory).
STATS_CHUNK_ROWS = 24_000_000
#: The per-user row's id as the view stores it, beside the text id the output is ordered by.
_NATIVE_ID = "spendlab_native_user_id"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_date(d: dt.date | str) -> dt.date:
    if isinstance(d, str):
        return dt.date.fromisoformat(d)
    if isinstance(d, dt.datetime):
        return d.date()
    return d


def asof_view(con: duckdb.DuckDBPyConnection, as_of: dt.date | str, *, view: str = "transactions",
              name: str = "tx_asof") -> str:
    """Create (or replace) temp view ``name``: the rows of ``view`` with ``ts`` on or before the as-of day.

    This is the one time split: backtests, scoring and the CLI all build features through it, so a
    feature at cutoff ``c`` can only see transactions with ``ts < c + 1 day``.

    Returns
    -------
    str
        ``name``, for use in further SQL.
    """
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(name)} AS {asof_sql(_as_date(as_of), view)}")
    return name


def asof_rows_table(con: duckdb.DuckDBPyConnection, as_of: dt.date | str, *, view: str = "transactions",
                    name: str = "spendlab_asof_rows") -> str:
    """Materialise the as-of rows once as temp table ``name``, for many feature builds at one cutoff.

    Columns: ``user_id``, ``ts`` (the DATE of the transaction: all the features read), ``amount``
    (exact, :data:`~spendlab.features.sql.MONEY`) and ``bucket``, a 32-bit hash of ``user_id``: the
    views ``bucket % n = k`` for k in 0..n-1 split the users into n disjoint chunks. A chunk view is a
    valid ``view`` for :func:`build_features_arrow`. Reads the source once (through :func:`asof_view`),
    where building each chunk from the source would re-read and re-validate every row per chunk.

    Returns
    -------
    str
        ``name``.
    """
    as_of = _as_date(as_of)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_q(name)} AS SELECT user_id, CAST(ts AS DATE) AS ts, "
        f"CAST(amount AS {MONEY}) AS amount, CAST(hash(user_id) >> 32 AS UINTEGER) AS bucket "
        f"FROM ({asof_sql(as_of, view)}) AS src"
    )
    return name


def _register_event_days(con: duckdb.DuckDBPyConnection, event_days: pd.DataFrame) -> None:
    days = pa.table({"day": pa.array(event_days["day"].dt.date.tolist(), type=pa.date32())})
    con.register(f"{EVENT_DAYS_TABLE}__arrow", days)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {EVENT_DAYS_TABLE} AS SELECT * FROM {EVENT_DAYS_TABLE}__arrow")
    con.unregister(f"{EVENT_DAYS_TABLE}__arrow")


def build_panel_table(con: duckdb.DuckDBPyConnection, *, freq: Freq, as_of: dt.date | str,
                      view: str = "transactions", name: str = "panel",
                      config: FeatureConfig | None = None) -> str:
    """Build the dense panel as temp table ``name`` in DuckDB (for data too big for pandas).

    Columns: ``user_id, period_start (DATE), spend, n_transactions, active_days, refund_amount,
    refund_count``; one row per user and period from the user's first active period (first
    transaction of any kind) to the period containing ``as_of``, zero-filled. ``spend`` is gross (sum
    of positive amounts); ``n_transactions`` counts purchases (amount > 0); ``active_days`` counts days
    with a purchase; refunds (amount < 0) are apart as positive ``refund_amount``.

    Returns
    -------
    str
        ``name``.
    """
    as_of = _as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    _register_event_days(con, calendar_tables(as_of, freq, config)[0])
    tag = next(_counter)
    src, sparse, periods = f"spendlab_asof_{tag}", f"spendlab_sparse_{tag}", f"spendlab_periods_{tag}"
    asof_view(con, as_of, view=view, name=src)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {sparse} AS "
                    f"{panel_sparse_sql(as_of, freq, config, f'SELECT * FROM {src}')}")
        first_k = con.execute(f"SELECT COALESCE(MAX(k), 0) FROM {sparse}").fetchall()[0][0]
        table = pa.table({"k": pa.array(range(first_k + 1), type=pa.int32()),
                          "period_start": pa.array([shift_period(as_of, freq, -k) for k in range(first_k + 1)],
                                                   type=pa.date32())})
        con.register(periods, table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(name)} AS {dense_panel_sql(sparse, periods, ordered=False)}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {sparse}")
        con.execute(f"DROP VIEW IF EXISTS {src}")
        try:
            con.unregister(periods)
        except duckdb.Error:
            pass
    return name


def build_panel(con: duckdb.DuckDBPyConnection, *, freq: Freq, as_of: dt.date | str,
                view: str = "transactions", config: FeatureConfig | None = None) -> pd.DataFrame:
    """Return the dense per-user panel as a DataFrame (see :func:`build_panel_table` for the columns).

    ``period_start`` holds ``datetime.date`` values; rows are sorted by user_id, period_start.
    """
    name = f"spendlab_panel_{next(_counter)}"
    build_panel_table(con, freq=freq, as_of=as_of, view=view, name=name, config=config)
    try:
        frame = con.execute(f"SELECT * FROM {name} ORDER BY user_id, period_start").df()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    frame["period_start"] = frame["period_start"].dt.date
    return frame


def _user_sums_table(con: duckdb.DuckDBPyConnection, name: str, periods: str, *, as_of: dt.date, freq: Freq,
                     config: FeatureConfig, sums: frozenset[str] | None = None) -> str:
    """Store :func:`~spendlab.features.sql.user_sums_sql` of ``periods`` as temp table ``name``: one row per user.

    Up to :data:`STATS_CHUNK_ROWS` rows of ``periods`` that is one hash aggregate. Past it, the table
    is filled in chunks of users (those whose id hashes to the chunk), one aggregate of at most about
    that many rows each. A user's sums never span chunks, so the rows are the same; each chunk costs
    one more scan of ``periods``.
    """
    n_rows = con.execute(f"SELECT count(*) FROM {periods}").fetchall()[0][0]
    chunks = max(1, -(-n_rows // STATS_CHUNK_ROWS))
    for i in range(chunks):
        part = periods if chunks == 1 else f"(SELECT * FROM {periods} WHERE hash(user_id) % {chunks} = {i})"
        sql = user_sums_sql(as_of, freq, config, part, sums)
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}" if i == 0 else f"INSERT INTO {name} {sql}")
    return name


def build_features_arrow(con: duckdb.DuckDBPyConnection, *, freq: Freq, as_of: dt.date | str,
                         config: FeatureConfig | None = None, view: str = "transactions",
                         horizon: int = 1, columns: Sequence[str] | None = None) -> pa.Table:
    """:func:`build_features` as an Arrow table (no pandas round trip; what the CLI writes and scoring reads).

    The rows are read once, into the per-(user, period) aggregate of the as-of rows
    (:func:`~spendlab.features.sql.aggregate_sql`); the spend on each user's first purchase day is a
    probe of the purchases against one key per user (:func:`~spendlab.features.sql.first_day_spend_sql`).
    DuckDB then reduces the aggregate to one row of sums per user (:func:`~spendlab.features.sql.user_sums_sql`,
    whose first purchase days key the probe), fetched in the output order (text ids; one sort), and
    hands over the recent periods (:func:`~spendlab.features.sql.window_cells_sql`, placed by the
    users' positions in that order); the features are array arithmetic over those
    (:func:`~spendlab.features.arrays.compute_features`), after DuckDB has let go of the dropped tables'
    buffers (:func:`~spendlab.io.load.release_memory`). ``user_id`` keeps the view's type (int64 ids join
    far faster) until written as text. ``columns`` (default: all): ``user_id`` and those features only.
    """
    as_of = _as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    event_days, covariates = calendar_tables(as_of, freq, config, horizon)
    _register_event_days(con, event_days)
    tag = next(_counter)
    periods, first_day, users = f"spendlab_periods_{tag}", f"spendlab_first_day_{tag}", f"spendlab_users_{tag}"
    stats_table = f"spendlab_stats_{tag}"
    source = f"SELECT * FROM {asof_view(con, as_of, view=view, name=f'spendlab_asof_{tag}')}"
    plan = _build_plan(config, freq, columns)
    widths = plan.widths
    try:
        periods_table(con, periods, source, view, as_of=as_of, freq=freq, columns=plan.period_columns)
        sums = _user_sums_table(con, stats_table, periods, as_of=as_of, freq=freq, config=config, sums=plan.sums)
        if plan.probe:
            _first_day_probe(con, first_day, source, periods, sums)
        table = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, user_id AS {_NATIVE_ID}, * EXCLUDE (user_id) "
                        f"FROM ({user_stats_from_sums_sql(config, sums, first_day if plan.probe else None, plan.stats)}) "
                        f"ORDER BY 1").to_arrow_table()
        con.execute(f"DROP TABLE IF EXISTS {stats_table}")
        release_memory(con)  # the aggregate's buffers, before the window cells are fetched
        ids, n_users = table.column("user_id"), table.num_rows
        stats = {c: table.column(c).to_numpy() for c in table.column_names[2:]}
        most = int(stats["n_periods"].max()) if n_users else 1
        widths = {c: min(w, most) for c, w in widths.items()}
        con.register(users, pa.table({"user_id": table.column(_NATIVE_ID),
                                      "idx": pa.array(np.arange(n_users, dtype=np.int32))}))
        del table
        cells = (con.execute(f"SELECT u.idx, c.* EXCLUDE (user_id) FROM ({window_cells_sql(periods, widths)}) AS c "
                             f"JOIN {users} AS u ON c.user_id = u.user_id").fetchnumpy() if widths else None)
    finally:
        for table in (periods, first_day, stats_table):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(f"DROP VIEW IF EXISTS spendlab_asof_{tag}")
        try:
            con.unregister(users)
        except duckdb.Error:
            pass
    release_memory(con)
    features = arithmetic(cells, stats, n_users, widths, as_of=as_of, freq=freq, config=config,
                          calendar=covariates.iloc[0].to_dict(), columns=plan.columns)
    del cells, stats
    table = pa.table({"user_id": ids, **features})
    return _with_extras(con, table, as_of=as_of, freq=freq, config=config, view=view, columns=columns)


def _first_day_probe(con: duckdb.DuckDBPyConnection, name: str, source: str, periods: str, sums: str) -> None:
    """Create ``name``: each user's spend on the first purchase day, reading no row after the latest such day."""
    last_first = con.execute(f"SELECT MAX(first_purchase_day) FROM {sums}").fetchall()[0][0]
    con.execute(f"CREATE TEMP TABLE {name} AS "
                f"{first_day_spend_sql(source, periods, first_days=sums, last_first_day=last_first)}")


@dataclass(frozen=True)
class _BuildPlan:
    """What :func:`build_features_arrow` aggregates for the columns asked (``None`` everywhere: everything)."""

    columns: tuple[str, ...] | None
    stats: frozenset[str] | None
    sums: frozenset[str] | None
    period_columns: frozenset[str] | None
    widths: dict[str, int]
    probe: bool


def _build_plan(config: FeatureConfig, freq: Freq, columns: Sequence[str] | None) -> _BuildPlan:
    """Derive the aggregates the features among ``columns`` read, from their declared inputs (:func:`feature_needs`)."""
    if columns is None:
        return _BuildPlan(None, None, None, None, window_widths(config, freq), True)
    needs = feature_needs(config, freq, columns)
    sums, period_columns = stats_plan(needs.stats)
    period_columns = period_columns | {c for c in needs.widths}  # the windowed panel columns are period columns
    return _BuildPlan(needs.columns, needs.stats, sums, period_columns, needs.widths,
                      "first_purchase_day_spend" in needs.stats)


def _with_extras(con: duckdb.DuckDBPyConnection, table: pa.Table, *, as_of: dt.date, freq: Freq,
                 config: FeatureConfig, view: str, columns: Sequence[str] | None) -> pa.Table:
    """Append the BTYD (when any is wanted) and covariate columns, then keep ``user_id`` and ``columns``."""
    if config.btyd and (columns is None or not set(BTYD_COLUMNS).isdisjoint(columns)):
        table = _with_btyd(con, table, as_of=as_of, view=view)
    if config.covariates is not None:
        table = with_covariates(con, table, as_of=as_of, freq=freq, cfg=config.covariates, view=view)
    if columns is None:
        return table
    keep = set(columns)
    return table.select(["user_id", *(c for c in table.column_names[1:] if c in keep)])


def btyd_features(con: duckdb.DuckDBPyConnection, as_of: dt.date, *, view: str = "transactions") -> pd.DataFrame:
    """Compute ``user_id`` + :data:`~spendlab.features.btyd.BTYD_COLUMNS` (float64) at cutoff ``as_of``.

    One row per user seen by then (read through :func:`asof_view`).
    """
    name = f"spendlab_btyd_asof_{next(_counter)}"
    try:
        frame = con.execute(btyd_sql(asof_view(con, as_of, view=view, name=name), as_of)).df()
    finally:
        con.execute(f"DROP VIEW IF EXISTS {name}")
    return frame[["user_id", *BTYD_COLUMNS]]


def _with_btyd(con: duckdb.DuckDBPyConnection, table: pa.Table, *, as_of: dt.date, view: str) -> pa.Table:
    """Append the BTYD columns to ``table`` row for row.

    Its ``user_id`` order is kept; a user without a BTYD row, impossible over the same as-of rows,
    would get 0.
    """
    import pyarrow.compute as pc

    name = f"spendlab_btyd_asof_{next(_counter)}"
    try:
        extra = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) "
                        f"FROM ({btyd_sql(asof_view(con, as_of, view=view, name=name), as_of)})").to_arrow_table()
    finally:
        con.execute(f"DROP VIEW IF EXISTS {name}")
    pos = pc.index_in(table.column("user_id").cast(pa.string()), value_set=extra.column("user_id"))
    for c in BTYD_COLUMNS:
        col = pc.take(extra.column(c), pos)
        table = table.append_column(c, pc.fill_null(col.cast(pa.float64()), 0.0))
    return table


def build_features(con: duckdb.DuckDBPyConnection, *, freq: Freq, as_of: dt.date | str,
                   config: FeatureConfig | None = None, view: str = "transactions", horizon: int = 1) -> pd.DataFrame:
    """As-of features: one row per user whose first transaction is on or before ``as_of``.

    Parameters
    ----------
    con
        DuckDB connection on which ``view`` holds canonical transactions.
    freq
        ``month`` (calendar months) or ``week`` (ISO weeks, Monday start).
    as_of
        Cutoff day, inclusive: only rows with ``ts < as_of + 1 day`` are read (via :func:`asof_view`).
        Lag 1 is the period containing ``as_of``; the target period is the next one.
    config
        The feature declaration (defaults: :class:`FeatureConfig`).
    view
        The view holding the transactions.
    horizon
        Periods the target covers: the ``target_*`` calendar covariates describe that whole window.

    Returns
    -------
    pandas.DataFrame
        ``user_id`` (str) and the columns of :func:`~spendlab.features.arrays.feature_columns`, all
        float64 without NaN or inf, sorted by ``user_id``. Fill policy: periods before a user's first
        period do not exist (a window longer than the history averages the periods the user has);
        inactive periods inside the history are 0; ratios with a zero denominator are 0; the last-year
        value is 0 with ``has_last_year`` = 0 when the user's history does not reach it; a user with
        refunds only has 0 purchase features and recency measured from the first transaction.
    """
    frame = build_features_arrow(con, freq=freq, as_of=as_of, config=config, view=view, horizon=horizon).to_pandas()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def build_target(con: duckdb.DuckDBPyConnection, *, freq: Freq, as_of: dt.date | str, horizon: int = 1,
                 view: str = "transactions") -> pd.DataFrame:
    """Build the target: gross spend in the ``horizon`` periods after the as-of period. READS PAST THE CUTOFF.

    Users are those with a transaction on or before ``as_of`` (the users :func:`build_features`
    returns), in the same order; a user without purchases in the target window gets 0.

    Returns
    -------
    pandas.DataFrame
        ``user_id`` (str), ``target`` (float64).
    """
    as_of = _as_date(as_of)
    check_freq(freq)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    first = next_period_start(as_of, freq)
    stop = shift_period(as_of, freq, horizon + 1)
    sql = f"""WITH users AS (SELECT DISTINCT user_id FROM {_q(view)} WHERE ts < {cutoff_timestamp(as_of)}),
future AS (
  SELECT user_id, SUM(CASE WHEN amount > 0 THEN CAST(amount AS {MONEY}) ELSE 0 END) AS target
  FROM {_q(view)}
  WHERE ts >= TIMESTAMP '{first.isoformat()} 00:00:00' AND ts < TIMESTAMP '{stop.isoformat()} 00:00:00'
  GROUP BY user_id
)
SELECT u.user_id, CAST(COALESCE(f.target, 0) AS DOUBLE) AS target
FROM users AS u LEFT JOIN future AS f ON u.user_id = f.user_id
ORDER BY u.user_id"""
    frame = con.execute(sql).df()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame
