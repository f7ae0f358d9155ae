"""The three questions of ``spendlab describe`` as DuckDB SQL over the ``transactions`` view.

Every function here takes a DuckDB connection on which :meth:`Transactions.register` has created the
``transactions`` view and :func:`prepare` has built the intermediate aggregates, and either returns
SQL text (for per-user tables that can have tens of millions of rows and are written straight from
DuckDB) or a small aggregated pandas frame. Nothing here
writes files. Money stays in full double precision; rounding to cents happens only in the writer.

Refund policy (see ``docs/describe.md``): ``spend`` is gross, the sum of
positive amounts; ``n_transactions`` counts every accepted row of the user/period; the average
transaction value is ``spend / n_spend_transactions`` (rows with a positive amount); refunds are
counted and summed apart (``n_refunds``, ``refunds`` as a positive amount); ``net_spend`` (all
amounts summed) is added when the reader config asks for ``refunds: net``.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from spendlab.io.load import Transactions

#: Intermediate tables built once by :func:`prepare` (two passes over the raw rows: per user and month,
#: per user and ISO week with a day mask; the rest derive from those): per user, the whole period, and
#: the month-over-month change per user.
USER_MONTH = "describe_user_month"
USER = "describe_user"
USER_WEEK = "describe_user_week"
PERIOD = "describe_period"
MOM = "describe_mom_change"
#: The month-over-month rows as stored (user, month, spend and previous spend); :data:`MOM` derives the rest.
MOM_SPEND = "describe_mom_spend"
#: Tables :func:`prepare` stores sorted, with their order: ``user_id`` (as text) then the month.
STORED_ORDER = {USER_MONTH: "user_id, month_start", MOM_SPEND: "user_id, month_d"}
#: Per calendar day and UTC hour: counts and exact sums, from which the daily spend, the weekday x hour
#: grid and the period bounds derive (one scan of the rows for all three; sums of exact decimals regroup exactly).
DAY_HOUR = "describe_day_hour"
#: The accepted rows with integer ids kept native, which :func:`prepare` aggregates (see its ``rows``).
NATIVE_ROWS = "describe_rows"
#: Money is summed as an exact decimal (amounts are parsed exactly and carry at most a few decimals), so
#: totals do not depend on the order DuckDB's threads add them in and reruns write the same bytes.
#: Amounts up to 10^12 are representable; the reader caps them at ``max_abs_amount`` (default 10^7).
MONEY_TYPE = "DECIMAL(18, 6)"
#: The largest sum of absolute amounts for which the per-(user, period) totals are stored as :data:`MONEY_TYPE`
#: (whose bound is 10^12; the margin keeps clear of it).
COMPACT_MONEY_BOUND = 10**11
#: The type DuckDB's sums of :data:`MONEY_TYPE` return, in which the per-user tables are read.
WIDE_MONEY_TYPE = "DECIMAL(38, 6)"


def prepare(con: duckdb.DuckDBPyConnection, rows: str = "transactions") -> None:
    """Aggregate the rows into per-user-month, per-user, per-user-week and month-over-month tables.

    Money is summed exactly (macro ``spendlab_money``, :data:`MONEY_TYPE`). ``n_transactions`` counts
    every row; ``spend`` sums positive amounts; ``refunds`` is minus the sum of negative amounts;
    ``net_spend`` sums all amounts.

    The large tables are kept compact (:func:`compact_types`): money as a 64-bit decimal and counts as
    32-bit integers when the load's totals prove they fit, the per-user-week table as the week and its
    day mask only, and the month-over-month table as the two spends, the rest derived when read. At
    1M users the wide types made these tables larger than describe's default memory limit, so DuckDB
    spilled them; the values, and so the written text, are the same.

    The per-user-month and month-over-month tables are stored sorted by user and month
    (:data:`STORED_ORDER`): a plain ``SELECT`` from such a table reads the rows in that order (DuckDB
    keeps insertion order with ``preserve_insertion_order``, its default), so their CSVs need no sort
    of the formatted rows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection holding the view ``rows``.
    rows : str
        The view aggregated: ``transactions`` or the same rows with integer ids kept native
        (``Transactions.register(..., native_ids=True)``); the rows are grouped on the id as stored,
        which hashes several times faster than text, and the tables hold it as text either way
        (the cast of an integer to text is one-to-one, so the groups are the same).
    """
    con.execute(f"CREATE OR REPLACE TEMP MACRO spendlab_money(x) AS CAST(x AS {MONEY_TYPE})")
    money, count = _day_hour_tables(con, rows)
    con.execute(
        # the exact amount is cast once per row (in the subquery), not once per aggregate: 18 s -> 10 s
        # at 37M rows; net spend (spend minus refunds, exact in decimal) is derived when read
        f"CREATE OR REPLACE TEMP TABLE {USER_MONTH} AS SELECT CAST(user_id AS VARCHAR) AS user_id, month_start, "
        f"CAST(n_transactions AS {count}) AS n_transactions, CAST(spend AS {money}) AS spend, "
        f"CAST(n_spend_transactions AS {count}) AS n_spend_transactions, CAST(n_refunds AS {count}) AS n_refunds, "
        f"CAST(refunds AS {money}) AS refunds "
        "FROM (SELECT user_id, month_start, count(*) AS n_transactions, "
        "coalesce(sum(money) FILTER (amount > 0), 0) AS spend, "
        "count(*) FILTER (amount > 0) AS n_spend_transactions, count(*) FILTER (amount < 0) AS n_refunds, "
        "coalesce(-sum(money) FILTER (amount < 0), 0) AS refunds "
        "FROM (SELECT user_id, CAST(date_trunc('month', ts) AS DATE) AS month_start, ts, amount, "
        f"spendlab_money(amount) AS money FROM {rows}) AS r GROUP BY ALL) AS g ORDER BY {STORED_ORDER[USER_MONTH]}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {USER} AS SELECT user_id, sum(n_transactions) AS n_transactions, "
        "sum(spend) AS total_spend, sum(n_spend_transactions) AS n_spend_transactions, sum(n_refunds) AS n_refunds, "
        "sum(refunds) AS refunds, sum(spend) - sum(refunds) AS net_spend, "
        f"min(month_start) FILTER (spend > 0) AS first_month FROM {USER_MONTH} GROUP BY user_id"
    )
    _week_table(con, rows)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MOM_SPEND} AS {mom_spend_sql()} ORDER BY {STORED_ORDER[MOM_SPEND]}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {MOM} AS {mom_change_sql()}")


def _day_hour_tables(con: duckdb.DuckDBPyConnection, rows: str) -> tuple[str, str]:
    """Build the per-day-and-hour and period tables; return the compact types their totals allow."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DAY_HOUR} AS SELECT CAST(ts AS DATE) AS date, hour(ts) AS hour, "
        "count(*) AS n_transactions, count(*) FILTER (amount > 0) AS n_spend_transactions, "
        "sum(spendlab_money(amount)) FILTER (amount > 0) AS spend, count(*) FILTER (amount < 0) AS n_refunds, "
        "sum(spendlab_money(amount)) FILTER (amount < 0) AS negative, count(*) FILTER (amount = 0) AS n_zero_amount, "
        f"min(ts) AS first_ts, max(ts) AS last_ts FROM {rows} GROUP BY ALL"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PERIOD} AS SELECT min(first_ts) AS period_start, "
                "max(last_ts) AS period_end, CAST(coalesce(sum(n_zero_amount), 0) AS BIGINT) AS n_zero_amount "
                f"FROM {DAY_HOUR}")
    n_rows, abs_total = con.execute(
        f"SELECT coalesce(sum(n_transactions), 0), coalesce(sum(spend), 0) - coalesce(sum(negative), 0) "
        f"FROM {DAY_HOUR}").fetchall()[0]
    return compact_types(int(n_rows), abs_total)


def _week_table(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Build the per-(user, ISO week) table: the week's Monday and a 7-bit mask of the days with spend.

    BIT_OR + BIT_COUNT (bit 0 = Monday), not count(DISTINCT date), which keeps a per-(user, day) set
    (tens of millions of groups); the mask also gives the daily active users
    (:func:`daily_active_users_sql`) without another pass. No spend here: a week's spend is the sum of
    its days' (the per-day-and-hour table), exact in decimal. The ISO year, week and day count derive
    from the week and the mask when read (:func:`days_per_week_sql`).
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {USER_WEEK} AS SELECT CAST(user_id AS VARCHAR) AS user_id, week_start, "
        "day_mask FROM (SELECT user_id, CAST(date_trunc('week', ts) AS DATE) AS week_start, "
        "bit_or(CAST(1 AS UTINYINT) << (isodow(ts) - 1)) AS day_mask "
        f"FROM {rows} WHERE amount > 0 GROUP BY ALL)"
    )


def compact_types(n_rows: int, abs_total: object) -> tuple[str, str]:
    """Choose the stored types of the per-(user, period) tables' money and counts from the load's totals.

    Every per-user-month spend or refund total is at most the sum of all absolute amounts, and every
    count at most the number of rows, so when those fit, a 64-bit decimal (:data:`MONEY_TYPE`, up to
    10^12) and a 32-bit integer hold every value exactly; else the types DuckDB's sums return.

    Parameters
    ----------
    n_rows : int
        Rows aggregated.
    abs_total : number
        Gross spend plus refunds (the sum of ``|amount|``), exact.

    Returns
    -------
    tuple of str
        The money type and the count type.
    """
    money = MONEY_TYPE if abs_total is not None and abs(abs_total) < COMPACT_MONEY_BOUND else WIDE_MONEY_TYPE
    count = "INTEGER" if n_rows < 2**31 - 1 else "BIGINT"
    return money, count


def _net(net_refunds: bool) -> str:
    return ", net_spend" if net_refunds else ""


def per_user_sql(*, net_refunds: bool = False) -> str:
    """One row per user: ``user_id, n_transactions, total_spend, avg_transaction_value`` and the refund columns.

    ``avg_transaction_value`` is gross spend over spend transactions (empty for a user without one).
    """
    return ("SELECT user_id, n_transactions, total_spend, "
            "total_spend / nullif(n_spend_transactions, 0) AS avg_transaction_value, n_spend_transactions, "
            f"n_refunds, refunds{_net(net_refunds)} FROM {USER}")


def monthly_sql(*, net_refunds: bool = False, stored_types: bool = False) -> str:
    """One row per user and calendar month with a transaction (months without one are absent, spend 0).

    ``spend`` is the **sum** of the user's gross spend in that month; ``month`` is ``YYYY-MM``. Counts
    are BIGINT and money DECIMAL(38, 6) (the types of DuckDB's sums), unless ``stored_types``: then
    the compact types the table is stored in (:func:`compact_types`; the same values, for the CSV
    writer, which prints them alike and rounds a 64-bit decimal faster).
    """
    cnt, money = ("{}", "{}") if stored_types else ("CAST({} AS BIGINT)", f"CAST({{}} AS {WIDE_MONEY_TYPE})")
    net = f", {money.format('spend - refunds')} AS net_spend" if net_refunds else ""
    return (f"SELECT user_id, strftime(month_start, '%Y-%m') AS month, {cnt.format('n_transactions')} AS n_transactions, "
            f"{money.format('spend')} AS spend, spend / nullif(n_spend_transactions, 0) AS avg_transaction_value, "
            f"{cnt.format('n_spend_transactions')} AS n_spend_transactions, {cnt.format('n_refunds')} AS n_refunds, "
            f"{money.format('refunds')} AS refunds{net} FROM {USER_MONTH}")


def days_per_week_sql(*, stored_types: bool = False) -> str:
    """Distinct calendar days with spend (an amount > 0) per user and ISO week (Monday start).

    ``iso_year``/``iso_week`` are ISO-8601, so 2022-01-01 belongs to 2021-W52 and a week crossing
    New Year is one row. Weeks in which the user only had refunds or zero amounts are absent.
    The numbers are BIGINT, unless ``stored_types``: then the smallest types that hold them (the same
    text in a CSV, and a narrower row for the CSV writer's sort).
    """
    year, week, days = ("INTEGER", "TINYINT", "TINYINT") if stored_types else ("BIGINT", "BIGINT", "BIGINT")
    return (f"SELECT user_id, CAST(isoyear(week_start) AS {year}) AS iso_year, "
            f"CAST(week(week_start) AS {week}) AS iso_week, week_start, "
            f"CAST(bit_count(day_mask) AS {days}) AS days_with_spend FROM {USER_WEEK}")


def daily_active_users_sql() -> str:
    """Users with spend per calendar day, from the day masks of the per-(user, ISO week) table.

    Equal to ``count(DISTINCT user_id) FILTER (amount > 0)`` per day over the rows, at the cost of one
    pass over the weekly table (7 bit sums per week) instead of a per-(user, day) set.
    """
    bits = ", ".join(f"sum((day_mask >> {b}) & 1) AS d{b}" for b in range(7))
    days = " UNION ALL ".join(f"SELECT CAST(week_start + {b} AS DATE) AS date, d{b} AS active_users FROM w"
                              for b in range(7))
    return (f"WITH w AS (SELECT week_start, {bits} FROM {USER_WEEK} GROUP BY week_start) "
            f"SELECT date, CAST(active_users AS BIGINT) AS active_users FROM ({days}) AS d WHERE active_users > 0")


def mom_spend_sql() -> str:
    """Per user and month: gross spend and the previous calendar month's (0 when inactive), as stored.

    A row exists when the user had spend in the month or in the month before; only months after the
    first and up to the last month of the data are kept (the first month has no previous month to
    compare with). :func:`mom_change_sql` derives the change and its direction.
    """
    return (
        f"WITH m AS (SELECT user_id, month_start AS month, spend FROM {USER_MONTH} WHERE spend > 0), "
        "lim AS (SELECT min(month) AS first_month, max(month) AS last_month FROM m), "
        "p AS (SELECT user_id, CAST(month + INTERVAL 1 MONTH AS DATE) AS month, spend AS prev_spend FROM m), "
        "j AS (SELECT coalesce(m.user_id, p.user_id) AS user_id, coalesce(m.month, p.month) AS month_d, "
        "coalesce(p.prev_spend, 0) AS prev_spend, coalesce(m.spend, 0) AS spend "
        "FROM m FULL OUTER JOIN p ON m.user_id = p.user_id AND m.month = p.month) "
        "SELECT user_id, month_d, prev_spend, spend FROM j, lim "
        "WHERE month_d > lim.first_month AND month_d <= lim.last_month"
    )


def mom_change_sql(*, stored_types: bool = False) -> str:
    """Per user and month: gross spend against the previous calendar month (0 when inactive).

    A row exists when the user had spend in the month or in the month before; ``direction`` is
    ``started`` (0 -> >0), ``stopped`` (>0 -> 0), ``increased``, ``decreased`` or ``unchanged``.
    Only months after the first and up to the last month of the data are emitted (the first month
    has no previous month to compare with). Reads the stored rows of :func:`mom_spend_sql`; money is
    DECIMAL(38, 6) unless ``stored_types`` (see :func:`monthly_sql`).
    """
    money = "{}" if stored_types else f"CAST({{}} AS {WIDE_MONEY_TYPE})"
    return (
        f"SELECT user_id, strftime(month_d, '%Y-%m') AS month, {money.format('prev_spend')} AS prev_spend, "
        f"{money.format('spend')} AS spend, {money.format('spend - prev_spend')} AS change, "
        "CASE WHEN prev_spend > 0 THEN (spend - prev_spend) / prev_spend END AS pct_change, "
        "CASE WHEN prev_spend = 0 THEN 'started' WHEN spend = 0 THEN 'stopped' "
        "WHEN spend > prev_spend THEN 'increased' WHEN spend < prev_spend THEN 'decreased' ELSE 'unchanged' END "
        f"AS direction FROM {MOM_SPEND}"
    )


def summary_stats(con: duckdb.DuckDBPyConnection, tx: Transactions, *, net_refunds: bool = False) -> dict[str, object]:
    """Whole-load figures for ``summary.json`` in full precision, with the load's reject counts."""
    row = con.execute(
        "SELECT count(*) AS n_users, sum(n_transactions) AS n_transactions, sum(total_spend) AS total_spend, "
        "sum(total_spend) / nullif(sum(n_spend_transactions), 0) AS avg_transaction_value, "
        "sum(n_spend_transactions) AS n_spend_transactions, sum(n_refunds) AS n_refunds, sum(refunds) AS refunds, "
        f"sum(net_spend) AS net_spend FROM {USER}"
    ).fetchdf().iloc[0]
    start, end, zero = con.execute(f"SELECT period_start, period_end, n_zero_amount FROM {PERIOD}").fetchall()[0]
    report = tx.report
    out: dict[str, object] = {
        "input": tx.name,
        "n_transactions": int(_or0(row["n_transactions"])),
        "n_users": int(row["n_users"]),
        "total_spend": float(_or0(row["total_spend"])),
        "avg_transaction_value": None if pd.isna(row["avg_transaction_value"]) else float(row["avg_transaction_value"]),
        "n_spend_transactions": int(_or0(row["n_spend_transactions"])),
        "n_zero_amount": int(_or0(zero)),
        "n_refunds": int(_or0(row["n_refunds"])),
        "refund_amount": float(_or0(row["refunds"])),
        "period_start": _iso(start),
        "period_end": _iso(end),
        "rows_in": report.rows_in,
        "rows_accepted": report.accepted,
        "rows_rejected": report.rejected,
        "rejected_by_type": dict(sorted(report.errors().items())),
        "warnings_by_type": dict(sorted(report.warnings().items())),
        "spend_policy": "gross: sum of positive amounts; refunds reported apart",
        "net_refunds": net_refunds,
    }
    if net_refunds:
        out["net_spend"] = float(_or0(row["net_spend"]))
    return out


def _or0(value: object) -> object:
    return 0 if value is None or pd.isna(value) else value


def _iso(value: object) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def monthly_overview(con: duckdb.DuckDBPyConnection, *, net_refunds: bool = False) -> pd.DataFrame:
    """Per calendar month: active users, spend, mean and median spend per active user, transaction value."""
    net = ", sum(net_spend) AS net_spend" if net_refunds else ""
    return con.execute(
        f"WITH m AS ({monthly_sql(net_refunds=True)}) "
        "SELECT month, count(*) FILTER (spend > 0) AS active_users, sum(n_transactions) AS n_transactions, "
        "sum(spend) AS spend, avg(spend) FILTER (spend > 0) AS mean_spend_per_active_user, "
        "median(spend) FILTER (spend > 0) AS median_spend_per_active_user, "
        "sum(spend) / nullif(sum(n_spend_transactions), 0) AS avg_transaction_value, "
        f"sum(n_refunds) AS n_refunds, sum(refunds) AS refunds{net} FROM m GROUP BY month ORDER BY month"
    ).fetchdf()


def per_user_distribution(con: duckdb.DuckDBPyConnection) -> dict[str, float | None]:
    """Quantiles of the per-user average transaction value and total spend (users with spend)."""
    row = con.execute(
        f"WITH u AS ({per_user_sql()}) SELECT "
        "quantile_cont(avg_transaction_value, 0.5) AS atv_median, avg(avg_transaction_value) AS atv_mean, "
        "quantile_cont(avg_transaction_value, 0.9) AS atv_p90, quantile_cont(total_spend, 0.5) AS spend_median, "
        "avg(total_spend) AS spend_mean, avg(n_spend_transactions) AS tx_mean "
        "FROM u WHERE n_spend_transactions > 0"
    ).fetchdf().iloc[0]
    return {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}


def days_per_week_distribution(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """How many user-weeks had 1, 2, ..., 7 days with spend, and their share."""
    df = con.execute(
        f"WITH w AS ({days_per_week_sql()}) SELECT days_with_spend, count(*) AS user_weeks "
        "FROM w GROUP BY days_with_spend ORDER BY days_with_spend"
    ).fetchdf()
    total = df["user_weeks"].sum()
    df["share"] = df["user_weeks"] / total if total else 0.0
    return df


def head_rows(con: duckdb.DuckDBPyConnection, sql: str, order_by: str, n: int) -> pd.DataFrame:
    """Return the first ``n`` rows of a (possibly huge) table, sorted in DuckDB, for the HTML report."""
    return con.execute(f"SELECT * FROM ({sql}) ORDER BY {order_by} LIMIT {int(n)}").fetchdf()


def period_bounds(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """First and last calendar day with a transaction, or None for an empty load."""
    lo, hi = con.execute(f"SELECT period_start::DATE, period_end::DATE FROM {PERIOD}").fetchall()[0]
    if lo is None:
        return None
    return lo, hi
