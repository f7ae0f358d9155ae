"""The three questions of ``spendlab describe`` as DuckDB SQL over the ``transactions`` view.

Every function here takes a DuckDB connection on which :meth:`Transactions.register` has created the
``transactions`` view and either returns SQL text (for per-user tables that can have tens of millions
of rows and are written straight from DuckDB) or a small aggregated pandas frame. Nothing here
writes files. Money stays in full double precision; rounding to cents happens only in the writer.

Refund policy (see ``docs/decisions.md``, "Describe report"): ``spend`` is gross, the sum of
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

#: Aggregates shared by the per-user, per-month and summary tables (one place for the policy).
_MONEY_AGGS = """
    count(*) AS n_transactions,
    coalesce(sum(amount) FILTER (amount > 0), 0) AS spend,
    avg(amount) FILTER (amount > 0) AS avg_transaction_value,
    count(*) FILTER (amount > 0) AS n_spend_transactions,
    count(*) FILTER (amount < 0) AS n_refunds,
    coalesce(-sum(amount) FILTER (amount < 0), 0) AS refunds"""
_NET = ",\n    coalesce(sum(amount), 0) AS net_spend"


def _aggs(net_refunds: bool, spend_name: str = "spend") -> str:
    aggs = _MONEY_AGGS.replace("AS spend,", f"AS {spend_name},")
    return aggs + (_NET if net_refunds else "")


def per_user_sql(*, net_refunds: bool = False) -> str:
    """One row per user: ``user_id, n_transactions, total_spend, avg_transaction_value`` and the refund columns."""
    return f"SELECT user_id,{_aggs(net_refunds, 'total_spend')}\nFROM transactions GROUP BY user_id"


def monthly_sql(*, net_refunds: bool = False) -> str:
    """One row per user and calendar month with a transaction (months without one are absent, spend 0).

    ``spend`` is the **sum** of the user's gross spend in that month; ``month`` is ``YYYY-MM``.
    """
    return (f"SELECT user_id, strftime(ts, '%Y-%m') AS month,{_aggs(net_refunds)}\n"
            "FROM transactions GROUP BY user_id, month")


def days_per_week_sql() -> str:
    """Distinct calendar days with spend (an amount > 0) per user and ISO week (Monday start).

    ``iso_year``/``iso_week`` are ISO-8601, so 2022-01-01 belongs to 2021-W52 and a week crossing
    New Year is one row. Weeks in which the user only had refunds or zero amounts are absent.
    """
    return ("SELECT user_id, isoyear(ts) AS iso_year, week(ts) AS iso_week, "
            "CAST(date_trunc('week', ts) AS DATE) AS week_start, "
            "count(DISTINCT CAST(ts AS DATE)) AS days_with_spend\n"
            "FROM transactions WHERE amount > 0 GROUP BY ALL")


def summary_stats(con: duckdb.DuckDBPyConnection, tx: Transactions, *, net_refunds: bool = False) -> dict[str, object]:
    """Whole-load figures for ``summary.json`` in full precision, with the load's reject counts."""
    row = con.execute(
        f"SELECT count(DISTINCT user_id) AS n_users, min(ts) AS period_start, max(ts) AS period_end, "
        f"count(*) FILTER (amount = 0) AS n_zero_amount,{_aggs(net_refunds, 'total_spend')} FROM transactions"
    ).fetchdf().iloc[0]
    report = tx.report
    out: dict[str, object] = {
        "input": tx.name,
        "n_transactions": int(row["n_transactions"]),
        "n_users": int(row["n_users"]),
        "total_spend": float(row["total_spend"]),
        "avg_transaction_value": None if pd.isna(row["avg_transaction_value"]) else float(row["avg_transaction_value"]),
        "n_spend_transactions": int(row["n_spend_transactions"]),
        "n_zero_amount": int(row["n_zero_amount"]),
        "n_refunds": int(row["n_refunds"]),
        "refund_amount": float(row["refunds"]),
        "period_start": _iso(row["period_start"]),
        "period_end": _iso(row["period_end"]),
        "rows_in": report.rows_in,
        "rows_accepted": report.accepted,
        "rows_rejected": report.rejected,
        "rejected_by_type": dict(sorted(report.errors().items())),
        "warnings_by_type": dict(sorted(report.warnings().items())),
        "spend_policy": "gross: sum of positive amounts; refunds reported apart",
        "net_refunds": net_refunds,
    }
    if net_refunds:
        out["net_spend"] = float(row["net_spend"])
    return out


def _iso(value: object) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def monthly_overview(con: duckdb.DuckDBPyConnection, *, net_refunds: bool = False) -> pd.DataFrame:
    """Per calendar month: active users, spend, mean and median spend per active user, transaction value."""
    net = ", sum(net_spend) AS net_spend" if net_refunds else ""
    return con.execute(
        f"WITH m AS ({monthly_sql(net_refunds=net_refunds)}) "
        "SELECT month, count(*) FILTER (spend > 0) AS active_users, sum(n_transactions) AS n_transactions, "
        "sum(spend) AS spend, avg(spend) FILTER (spend > 0) AS mean_spend_per_active_user, "
        "median(spend) FILTER (spend > 0) AS median_spend_per_active_user, "
        "sum(spend) / nullif(sum(n_spend_transactions), 0) AS avg_transaction_value, "
        f"sum(n_refunds) AS n_refunds, sum(refunds) AS refunds{net} FROM m GROUP BY month ORDER BY month"
    ).fetchdf()


def per_user_distribution(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
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
    """The first ``n`` rows of a (possibly huge) table, sorted in DuckDB, for the HTML report."""
    return con.execute(f"SELECT * FROM ({sql}) ORDER BY {order_by} LIMIT {int(n)}").fetchdf()


def period_bounds(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """First and last calendar day with a transaction, or None for an empty load."""
    lo, hi = con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM transactions").fetchone()
    if lo is None:
        return None
    return lo, hi
