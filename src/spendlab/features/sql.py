"""The feature SQL, generated from the declaration: the aggregates every engine computes the same way.

``periods`` (:func:`aggregate_sql`) is the one pass over the as-of rows: one row per user and active
period ``k`` (0 = the period containing the as-of date). :func:`first_day_spend_sql` adds spend on
each user's first purchase day; :func:`user_stats_sql` and :func:`window_cells_sql` reduce ``periods``
to one row of exact sums per user and the recent cells the features read
(:mod:`spendlab.features.arrays`). The SQL is DuckDB's dialect kept transpilable to Spark SQL, and
money is summed in fixed point (:data:`MONEY`). Why each choice: ``docs/features.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import pandas as pd

from spendlab.calendar import (
    Freq,
    calendar_events,
    check_freq,
    period_calendar,
    period_end,
    period_start,
    shift_period,
)
from spendlab.features.config import (
    CALENDAR_COLUMNS,
    PERIODS_PER_YEAR,
    FeatureConfig,
)

#: Names of the small tables :func:`calendar_tables` builds and the feature SQL joins.
EVENT_DAYS_TABLE = "spendlab_event_days"
#: Exact money type for every sum: a sum of DOUBLEs depends on the order parallel threads add them in,
#: so reruns would differ in the last bits; fixed-point sums are exact and order-free. Four decimals
#: keep sub-cent amounts; 14 integer digits hold any amount the reader accepts.
MONEY = "DECIMAL(18, 4)"
#: First day the event-day table covers (the reader's default window start).
CALENDAR_FIRST_DAY = dt.date(1970, 1, 1)


def _d(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cutoff_timestamp(as_of: dt.date) -> str:
    """Return the exclusive upper bound of the as-of rows: midnight after the cutoff day."""
    return f"TIMESTAMP '{(as_of + dt.timedelta(days=1)).isoformat()} 00:00:00'"


def asof_sql(as_of: dt.date, view: str = "transactions") -> str:
    """``SELECT user_id, ts, amount`` of the rows with ``ts`` on or before the as-of day (nothing later)."""
    return f"SELECT user_id, ts, amount FROM {_q(view)} WHERE ts < {cutoff_timestamp(as_of)}"


def period_offset_sql(day_col: str, freq: Freq, as_of: dt.date) -> str:
    """Return SQL for k = number of whole periods between the period of ``day_col`` and the as-of period."""
    if check_freq(freq) == "month":
        anchor = as_of.year * 12 + as_of.month - 1
        return f"({anchor} - (YEAR({day_col}) * 12 + MONTH({day_col}) - 1))"
    end = period_end(as_of, "week")  # a Sunday; days before it / 7, floored, counts whole ISO weeks
    return f"CAST(FLOOR(DATE_DIFF('day', {day_col}, {_d(end)}) / 7) AS INTEGER)"


def _day_bit_sql(freq: Freq, as_of: dt.date) -> str:
    """Return SQL for a bit that is distinct for each day of a period (BIT_OR + BIT_COUNT counts distinct days)."""
    if freq == "month":
        index = "DAY(day) - 1"
    else:
        index = f"DATE_DIFF('day', day, {_d(period_end(as_of, 'week'))}) % 7"
    return f"(CAST(1 AS INTEGER) << ({index}))"  # sqlglot writes Spark's SHIFTLEFT; 31 bits fit


def _purchase_days_sql(freq: Freq, as_of: dt.date) -> tuple[str, str]:
    """Return SQL of the first and the last purchase day of a period, from its ``day_mask`` and ``first_day``.

    The period is the one of ``first_day`` (its first transaction day); a bit of the mask stands for
    one day of it (:func:`_day_bit_sql`): the day of month - 1, or the days to the ISO week's Sunday.
    The lowest bit's index is ``BIT_COUNT((m & -m) - 1)`` (the trailing zeros) and the highest bit's
    ``BIT_COUNT(m | m >> 1 | .. | m >> 30) - 1``: exact integer arithmetic in every engine, where two
    more MIN/MAX aggregates over the rows would widen the hash aggregate. NULL without purchases.
    """
    low = "BIT_COUNT((day_mask & -day_mask) - 1)"
    high = "(BIT_COUNT(" + " | ".join(["day_mask", *(f"(day_mask >> {i})" for i in range(1, 31))]) + ") - 1)"
    if freq == "month":  # bit i = day i + 1 of the month of first_day
        first, last = f"{low} + 1 - DAY(first_day)", f"{high} + 1 - DAY(first_day)"
    else:  # bit i = i days before the week's Sunday; first_day is b days before it
        b = f"(DATE_DIFF('day', first_day, {_d(period_end(as_of, 'week'))}) % 7)"
        first, last = f"{b} - {high}", f"{b} - {low}"
    return tuple(f"CASE WHEN day_mask <> 0 THEN first_day + CAST({e} AS INTEGER) END" for e in (first, last))


def tx_sql(source: str) -> str:
    """Return SQL of the as-of rows reduced to what the features need: user, day, exact amount."""
    return f"SELECT user_id, CAST(ts AS DATE) AS day, CAST(amount AS {MONEY}) AS amount FROM ({source}) AS src"


#: The columns of :func:`aggregate_sql` (after ``user_id, k``) and the inner aggregates each reads.
PERIOD_COLUMNS: dict[str, tuple[str, ...]] = {
    "spend": ("spend",), "n_transactions": ("n_transactions",), "active_days": ("day_mask",),
    "day_mask": ("day_mask",), "refund_amount": ("refund_amount",), "refund_count": ("refund_count",),
    "event_spend": ("event_spend",), "first_day": ("first_day",),
    "first_purchase_day": ("day_mask", "first_day"), "last_purchase_day": ("day_mask", "first_day"),
}


def aggregate_sql(as_of: dt.date, freq: Freq, source: str, columns: Collection[str] | None = None) -> str:
    """Return the one pass over the rows: a SELECT of the sparse per-(user, period) aggregate of ``source``.

    ``source`` gives ``user_id, ts, amount`` already cut at the as-of date. One hash aggregate keyed
    by (user, period ``k``; 0 = the period containing the as-of date), active periods only. Gross
    ``spend`` (sum of positive amounts), ``n_transactions`` (purchases: amount > 0), ``day_mask`` (one
    bit per purchase day of the period, so ``active_days`` = its ``BIT_COUNT`` and no per-day aggregate
    with tens of millions of groups is needed), ``refund_amount`` (sum of -amount for amount < 0),
    ``refund_count``, spend on event days (the small event-day table), first transaction day and
    first/last purchase day. Sums are stored back in :data:`MONEY` (8 bytes, not a 16-byte wide
    decimal; one user-period cannot reach 10^14) and ``k`` and the counts as ``INTEGER``: the table is
    the peak of memory, and a narrower one stays in memory where a wider one spills to disk. Every feature is arithmetic over this table (plus the spend on each
    user's first purchase day, :func:`first_day_spend_sql`). Ids keep their native type.
    ``columns`` (default: all of :data:`PERIOD_COLUMNS`) keeps ``user_id, k`` and those only: the
    aggregates nothing reads are not computed, and without ``event_spend`` the event days are not joined.
    """
    keep = set(PERIOD_COLUMNS) if columns is None else set(columns)
    unknown = keep - set(PERIOD_COLUMNS)
    if unknown:
        raise ValueError(f"aggregate_sql: unknown period columns {sorted(unknown)}")
    inner = {a for c in keep for a in PERIOD_COLUMNS[c]}
    bit = _day_bit_sql(freq, as_of)
    first_purchase, last_purchase = _purchase_days_sql(freq, as_of)
    outer = {
        "spend": "spend", "n_transactions": "CAST(n_transactions AS INTEGER) AS n_transactions",
        "active_days": "CAST(BIT_COUNT(day_mask) AS INTEGER) AS active_days", "day_mask": "day_mask",
        "refund_amount": "refund_amount", "refund_count": "CAST(refund_count AS INTEGER) AS refund_count",
        "event_spend": "event_spend", "first_day": "first_day",
        "first_purchase_day": f"{first_purchase} AS first_purchase_day",
        "last_purchase_day": f"{last_purchase} AS last_purchase_day",
    }
    aggregates = {
        "spend": f"CAST(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS {MONEY}) AS spend",
        "n_transactions": "COUNT(CASE WHEN amount > 0 THEN 1 END) AS n_transactions",
        "day_mask": f"BIT_OR(CASE WHEN amount > 0 THEN {bit} ELSE 0 END) AS day_mask",
        "refund_amount": f"CAST(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END) AS {MONEY}) AS refund_amount",
        "refund_count": "COUNT(CASE WHEN amount < 0 THEN 1 END) AS refund_count",
        "event_spend": f"CAST(SUM(CASE WHEN amount > 0 AND is_event = 1 THEN amount ELSE 0 END) AS {MONEY}) AS event_spend",
        "first_day": "MIN(day) AS first_day",
    }
    head = ["user_id", "CAST(k AS INTEGER) AS k", *(e for c, e in outer.items() if c in keep)]
    if "event_spend" in inner:
        rows = f"""SELECT t.user_id, t.day, t.amount, {period_offset_sql('t.day', freq, as_of)} AS k,
        CASE WHEN e.day IS NULL THEN 0 ELSE 1 END AS is_event
      FROM ({tx_sql(source)}) AS t LEFT JOIN {EVENT_DAYS_TABLE} AS e ON t.day = e.day"""
    else:  # the event-day table holds each day once: the join only adds is_event
        rows = f"""SELECT t.user_id, t.day, t.amount, {period_offset_sql('t.day', freq, as_of)} AS k
      FROM ({tx_sql(source)}) AS t"""
    sums = ",\n      ".join(["user_id, k", *(e for a, e in aggregates.items() if a in inner)])
    lines = ",\n    ".join(head)
    return f"""SELECT {lines}
  FROM (
    SELECT {sums}
    FROM (
      {rows}
    ) AS r
    GROUP BY user_id, k
  ) AS a"""


def first_day_spend_sql(source: str, periods: str, *, first_days: str | None = None,
                        last_first_day: dt.date | None = None) -> str:
    """Return a SELECT of ``user_id, first_purchase_day_spend``: spend on each user's first purchase day.

    The BG/NBD monetary value leaves that day out (as lifetimes does). It is the one figure the
    per-period aggregate ``periods`` cannot give (it keeps days as bits, not their amounts), so the
    purchases of ``source`` are probed against one (user, day) key per user: a hash join with a
    build side of one row per user, no second aggregate over the rows. Only purchases reach the
    join: refunds are dropped as they are read, before the cast and the probe (a third less work
    than filtering after the join, with the same rows summed). ``first_days``, when given, names a
    table of one row per user with its ``first_purchase_day`` (:func:`user_sums_sql`): the keys are
    read from it instead of reduced from ``periods`` once more. ``last_first_day``, when given, is the
    latest of those days: rows after it cannot match a key, so they are dropped as they are read,
    before the cast and the probe (on data whose users all started long before the cutoff, most rows).
    """
    bound = f" AND src.ts < {cutoff_timestamp(last_first_day)}" if last_first_day is not None else ""
    keys = (f"SELECT user_id, first_purchase_day AS day FROM {first_days} WHERE first_purchase_day IS NOT NULL"
            if first_days else f"SELECT user_id, MIN(first_purchase_day) AS day FROM {periods}\n"
            "        WHERE first_purchase_day IS NOT NULL GROUP BY user_id")
    return f"""SELECT t.user_id, SUM(t.amount) AS first_purchase_day_spend
  FROM ({tx_sql(source)} WHERE src.amount > 0{bound}) AS t
  JOIN ({keys}) AS fp
    ON t.user_id = fp.user_id AND t.day = fp.day
  GROUP BY t.user_id"""


def periods_sql(as_of: dt.date, freq: Freq, config: FeatureConfig, source: str, *, materialize: bool = False) -> str:
    """CTE ``periods``: :func:`aggregate_sql` of ``source``, for one-statement queries."""
    mat = "MATERIALIZED " if materialize else ""
    return f"periods AS {mat}(\n  {aggregate_sql(as_of, freq, source)}\n)"


def _recent_purchase_days_sql(as_of: dt.date, freq: Freq, weeks: int) -> str:
    """Purchase days from the Monday ``weeks - 1`` ISO weeks before the as-of week, from the day masks.

    The window start falls in period ``kc``: periods after it count whole, period ``kc`` counts the
    bits of days on or after the start, earlier periods nothing.
    """
    start = period_start(as_of, "week") - dt.timedelta(days=7 * (weeks - 1))
    if freq == "week":
        return f"SUM(CASE WHEN k < {weeks} THEN active_days ELSE 0 END)"
    kc = (as_of.year * 12 + as_of.month) - (start.year * 12 + start.month)
    keep = ((1 << 31) - 1) & ~((1 << (start.day - 1)) - 1)  # bits of days >= start.day
    return (f"SUM(CASE WHEN k < {kc} THEN active_days WHEN k = {kc} THEN BIT_COUNT(day_mask & {keep}) "
            "ELSE 0 END)")


#: Per-user sums of :func:`user_sums_sql` (``purchase_days_last{w}w`` aside) and the period columns each reads.
SUM_PERIOD_COLUMNS: dict[str, tuple[str, ...]] = {
    "n_periods": (), "spend_total": ("spend",), "n_transactions_total": ("n_transactions",),
    "purchase_days": ("active_days",), "n_active_periods": ("spend",), "refund_amount_total": ("refund_amount",),
    "refund_count_total": ("refund_count",), "event_spend": ("event_spend",),
    "spend_same_period_last_year": ("spend",), "first_day": ("first_day",),
    "first_purchase_day": ("first_purchase_day",), "last_purchase_day": ("last_purchase_day",),
}
#: Per-user stats of :func:`user_stats_from_sums_sql` that are not a sum of the same name, and the sums each reads.
STAT_SUMS: dict[str, tuple[str, ...]] = {
    "first_purchase_day_spend": ("first_purchase_day",),  # the first-day probe's keys
    "first_day": ("first_day",),
    "first_seen_day": ("first_purchase_day", "first_day"),
    "last_seen_day": ("last_purchase_day", "first_day"),
    "recency_days": ("first_purchase_day", "last_purchase_day"),
}


def stats_plan(stats: Collection[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Return the per-user sums (:func:`user_sums_sql`) and the period columns (:func:`aggregate_sql`) ``stats`` read.

    ``stats`` names columns of :func:`user_stats_sql`; ``n_periods`` is always among the sums.
    """
    sums = {"n_periods"} | {x for st in stats for x in STAT_SUMS.get(st, (st,))}
    periods: set[str] = set()
    for name in sums:
        if name.startswith("purchase_days_last"):
            periods.update(("active_days", "day_mask"))
        elif name in SUM_PERIOD_COLUMNS:
            periods.update(SUM_PERIOD_COLUMNS[name])
        else:
            raise ValueError(f"unknown per-user stat {name!r}")
    return frozenset(sums), frozenset(periods)


def user_sums_sql(as_of: dt.date, freq: Freq, config: FeatureConfig, periods: str,
                  sums: Collection[str] | None = None) -> str:
    """Return a SELECT of one row of exact sums and days per user of ``periods`` (:func:`aggregate_sql`).

    The one aggregate :func:`user_stats_sql` reads (with :func:`user_stats_from_sums_sql`); apart, so
    an engine can store it and read the users' first purchase days from it
    (:func:`first_day_spend_sql`). Sums keep their exact types; days are ``DATE``. ``sums`` (default:
    all; :func:`stats_plan`) keeps ``n_periods`` and those only.
    """
    per_year = PERIODS_PER_YEAR[check_freq(freq)]
    every = {
        "n_periods": "MAX(k) + 1 AS n_periods",
        "spend_total": "SUM(spend) AS spend_total",
        "n_transactions_total": "SUM(n_transactions) AS n_transactions_total",
        "purchase_days": "SUM(active_days) AS purchase_days",
        "n_active_periods": "SUM(CASE WHEN spend > 0 THEN 1 ELSE 0 END) AS n_active_periods",
        "refund_amount_total": "SUM(refund_amount) AS refund_amount_total",
        "refund_count_total": "SUM(refund_count) AS refund_count_total",
        "event_spend": "SUM(event_spend) AS event_spend",
        "spend_same_period_last_year":
            f"SUM(CASE WHEN k = {per_year - 1} THEN spend ELSE 0 END) AS spend_same_period_last_year",
        "first_day": "MIN(first_day) AS first_day",
        "first_purchase_day": "MIN(first_purchase_day) AS first_purchase_day",
        "last_purchase_day": "MAX(last_purchase_day) AS last_purchase_day",
    }
    every.update({f"purchase_days_last{w}w": f"{_recent_purchase_days_sql(as_of, freq, w)} AS purchase_days_last{w}w"
                  for w in config.weekly_activity_windows})
    keep = None if sums is None else {"n_periods", *sums}
    body = ",\n    ".join(e for name, e in every.items() if keep is None or name in keep)
    return f"""SELECT user_id,
    {body}
  FROM {periods}
  GROUP BY user_id"""


def user_stats_from_sums_sql(config: FeatureConfig, sums: str, first_day: str | None,
                             stats: Collection[str] | None = None) -> str:
    """Return the SELECT of :func:`user_stats_sql` over ``sums`` (:func:`user_sums_sql`) and ``first_day``.

    ``stats`` (default: all) keeps ``n_periods`` and those columns only; ``first_day`` (the probe's
    table) is read only when ``first_purchase_day_spend`` is among them (it may be ``None`` otherwise).
    """
    epoch = _d(dt.date(1970, 1, 1))
    money = ("spend_total", "refund_amount_total", "event_spend", "spend_same_period_last_year")
    counts = ("n_periods", "n_transactions_total", "purchase_days", "n_active_periods", "refund_count_total",
              *(f"purchase_days_last{w}w" for w in config.weekly_activity_windows))
    out = {c: f"CAST(s.{c} AS DOUBLE) AS {c}" for c in (*counts, *money)}
    out.update({
        "first_purchase_day_spend": "CAST(COALESCE(f.first_purchase_day_spend, 0) AS DOUBLE) AS first_purchase_day_spend",
        "first_day": f"CAST(DATE_DIFF('day', {epoch}, s.first_day) AS INTEGER) AS first_day",
        "first_seen_day":
            f"CAST(DATE_DIFF('day', {epoch}, COALESCE(s.first_purchase_day, s.first_day)) AS INTEGER) AS first_seen_day",
        "last_seen_day":
            f"CAST(DATE_DIFF('day', {epoch}, COALESCE(s.last_purchase_day, s.first_day)) AS INTEGER) AS last_seen_day",
        "recency_days":
            "CAST(COALESCE(DATE_DIFF('day', s.first_purchase_day, s.last_purchase_day), 0) AS INTEGER) AS recency_days",
    })
    keep = None if stats is None else {"n_periods", *stats}
    select = ",\n  ".join(e for name, e in out.items() if keep is None or name in keep)
    probe = keep is None or "first_purchase_day_spend" in keep
    if probe and first_day is None:
        raise ValueError("first_purchase_day_spend needs the first-day table (first_day)")
    join = f"\nLEFT JOIN {first_day} AS f ON s.user_id = f.user_id" if probe else ""
    return f"""SELECT s.user_id,
  {select}
FROM {sums} AS s{join}"""


def user_stats_sql(as_of: dt.date, freq: Freq, config: FeatureConfig, periods: str, first_day: str) -> str:
    """Return a SELECT of one row per user: the per-user sums and days every feature is derived from.

    Reads ``periods`` (:func:`aggregate_sql`) and ``first_day`` (:func:`first_day_spend_sql`), table
    names or CTEs. Money is summed exactly (:data:`MONEY`) and only then cast to ``DOUBLE``; days are
    whole days since 1970-01-01 (``INTEGER``). Columns, after ``user_id`` (native type):
    ``n_periods`` (periods from the first transaction's to the as-of period), ``spend_total``,
    ``n_transactions_total``, ``purchase_days``, ``n_active_periods``, ``refund_amount_total``,
    ``refund_count_total``, ``event_spend``, ``spend_same_period_last_year``, ``purchase_days_last{w}w``
    per weekly-activity window, ``first_purchase_day_spend``, ``first_day`` (first transaction),
    ``first_seen_day`` (first purchase, else first transaction), ``last_seen_day`` (last purchase,
    else first transaction) and ``recency_days`` (last minus first purchase day; 0 without one).
    The features themselves are arithmetic over these and the recent periods
    (:func:`window_cells_sql`) in :mod:`spendlab.features.arrays`, for every engine.
    """
    return user_stats_from_sums_sql(config, f"({user_sums_sql(as_of, freq, config, periods)})", first_day)


def window_cells_sql(periods: str, columns: dict[str, int]) -> str:
    """Return a SELECT of the recent cells ``user_id, k, <column>...`` of ``periods`` (:func:`aggregate_sql`).

    ``columns`` maps each panel column the features window over to the number of recent periods
    they read; one row per active (user, period) with ``k`` below the largest, values as ``DOUBLE``.
    """
    width = max(columns.values())
    cols = "".join(f", CAST({c} AS DOUBLE) AS {c}" for c in columns)
    return f"SELECT user_id, CAST(k AS INTEGER) AS k{cols} FROM {periods} WHERE k < {width}"


def panel_sparse_sql(as_of: dt.date, freq: Freq, config: FeatureConfig, source: str) -> str:
    """Return the sparse panel (active periods only): ``user_id, k, spend, n_transactions, active_days, refund_*``."""
    return f"""WITH {periods_sql(as_of, freq, config, source)}
SELECT user_id, k, spend, n_transactions, active_days, refund_amount, refund_count, first_day
FROM periods"""


def dense_panel_sql(sparse: str, periods_table: str, *, ordered: bool = True) -> str:
    """Zero-fill the sparse panel table ``sparse`` from each user's first period to the as-of period.

    ``periods_table`` holds ``k`` (0 = as-of period) and ``period_start`` for every k needed.
    ``ordered=False`` leaves out the final sort (a table in DuckDB needs none; the weekly panel of 1M
    users is ~78M rows).
    """
    return f"""WITH users AS (SELECT user_id, MAX(k) AS first_k FROM {sparse} GROUP BY user_id)
SELECT u.user_id, p.period_start,
  CAST(COALESCE(s.spend, 0) AS DOUBLE) AS spend,
  CAST(COALESCE(s.n_transactions, 0) AS BIGINT) AS n_transactions,
  CAST(COALESCE(s.active_days, 0) AS BIGINT) AS active_days,
  CAST(COALESCE(s.refund_amount, 0) AS DOUBLE) AS refund_amount,
  CAST(COALESCE(s.refund_count, 0) AS BIGINT) AS refund_count
FROM users AS u
JOIN {periods_table} AS p ON p.k <= u.first_k
LEFT JOIN {sparse} AS s ON s.user_id = u.user_id AND s.k = p.k
{"ORDER BY u.user_id, p.period_start" if ordered else ""}"""


def calendar_tables(as_of: dt.date, freq: Freq, config: FeatureConfig,
                    horizon: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the two small tables the feature SQL joins: event days, and the as-of/target calendar covariates.

    The event-day table covers :data:`CALENDAR_FIRST_DAY` to the as-of date (holidays and retail events
    alike: ``holiday_spend_share`` counts spend on either). The covariate table is one row with
    ``asof_*`` (the period containing the as-of date) and ``target_*`` (the ``horizon`` periods after
    it, summed: the window the target covers), which are known in advance and so are the only features
    that describe the future.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    cal = config.calendar
    window = [shift_period(as_of, freq, k) for k in range(1, horizon + 1)]  # the target's period starts
    events = calendar_events(CALENDAR_FIRST_DAY, period_end(window[-1], freq), country=cal.country,
                             subdivision=cal.subdivision, custom_events=cal.custom_events)
    days = events.loc[events["date"].dt.date <= as_of, "date"].dt.date.drop_duplicates()
    event_days = pd.DataFrame({"day": pd.to_datetime(sorted(days)).astype("datetime64[s]")})
    cov = period_calendar([period_start(as_of, freq), *window], freq, events).set_index("period_start")
    row = {f"asof_{c}": float(cov.loc[period_start(as_of, freq), c]) for c in CALENDAR_COLUMNS}
    row.update({f"target_{c}": float(sum(cov.loc[start, c] for start in window)) for c in CALENDAR_COLUMNS})
    return event_days, pd.DataFrame([row])
