"""Insight tables and their computed one-line takeaways for ``spendlab describe``.

Each ``*_table`` function aggregates in DuckDB over the registered ``transactions`` view (or the
intermediate tables of :func:`spendlab.describe.tables.prepare`, which must have run) and returns
a small pandas frame (bounded by days, weeks, months or ``top_n``, never by raw rows); each
``*_takeaway`` function turns such frames into one sentence whose numbers come from the data.
"Active" means at least one spend (amount > 0) in the period; a user's cohort is the month of their
first spend. Hours and days are UTC wall time.
"""
# long: one SQL query and one takeaway per insight; the catalogue of insights reads best in one file

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

from spendlab.describe.tables import DAY_HOUR, MOM, USER, USER_MONTH, USER_WEEK, daily_active_users_sql

#: Event names drawn on the daily-spend figure (holidays and retail events from ``spendlab.calendar``).
MARKER_PATTERN = r"Thanksgiving|Black Friday|Cyber Monday|Christmas|New Year"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TOP_SHARES = (0.01, 0.05, 0.10, 0.20, 0.50)


def _money(x: float) -> str:
    return f"{x:,.2f}"


#: How a takeaway writes an amount; the report passes one that adds the currency (``--currency``).
Money = Callable[[float], str]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------------------
# Daily spend with calendar markers
# ---------------------------------------------------------------------------------------------


def daily_spend_table(con: duckdb.DuckDBPyConnection, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Spend, transactions and refunds per calendar day (every day of the period, zeros filled).

    ``events`` is a :func:`spendlab.calendar.calendar_events` frame; the names of the marker events
    (Thanksgiving, Black Friday, Cyber Monday, Christmas Eve/Day, New Year) falling on a day are
    joined into its ``events`` column. Reads the per-day-and-hour table of
    :func:`spendlab.describe.tables.prepare`.
    """
    df = con.execute(
        "WITH t AS (SELECT date, CAST(sum(n_transactions) AS BIGINT) AS n_transactions, "
        "coalesce(sum(spend), 0) AS spend, CAST(sum(n_refunds) AS BIGINT) AS n_refunds, "
        f"coalesce(-sum(negative), 0) AS refunds FROM {DAY_HOUR} GROUP BY 1), "
        f"a AS ({daily_active_users_sql()}), "
        "d AS (SELECT t.*, coalesce(a.active_users, 0) AS active_users FROM t LEFT JOIN a USING (date)), "
        "r AS (SELECT CAST(unnest(generate_series(min(date), max(date), INTERVAL 1 DAY)) AS DATE) AS date FROM d) "
        "SELECT r.date, coalesce(n_transactions, 0) AS n_transactions, coalesce(spend, 0) AS spend, "
        "coalesce(active_users, 0) AS active_users, coalesce(n_refunds, 0) AS n_refunds, "
        "coalesce(refunds, 0) AS refunds FROM r LEFT JOIN d USING (date) ORDER BY r.date"
    ).fetchdf()
    df["date"] = pd.to_datetime(df["date"])
    df["events"] = ""
    if events is not None and len(events) and len(df):
        marks = events[events["name"].str.contains(MARKER_PATTERN, regex=True)]
        names = marks.groupby(marks["date"].dt.normalize())["name"].agg(lambda s: "; ".join(sorted(set(s))))
        df["events"] = df["date"].map(names).astype(object).fillna("")
    return df


def daily_spend_takeaway(daily: pd.DataFrame, *, money: Money = _money) -> str:
    """Say in one sentence how daily spend moved over the period."""
    if daily.empty or daily["spend"].sum() == 0:
        return "No spend in the period."
    top = daily.loc[daily["spend"].idxmax()]
    median = float(daily["spend"].median())
    ratio = f"{top['spend'] / median:.1f}x the median day ({money(median)})" if median > 0 else \
        "while the median day has no spend"
    marked = daily[daily["events"] != ""]
    tail = ""
    if len(marked) and median > 0:
        ev = marked.loc[marked["spend"].idxmax()]
        tail = (f"; of the marked days, {ev['date']:%Y-%m-%d} ({ev['events']}) had the most spend, "
                f"{ev['spend'] / median:.1f}x the median day")
    return f"The biggest day was {top['date']:%Y-%m-%d} with {money(top['spend'])} of spend, {ratio}{tail}."


# ---------------------------------------------------------------------------------------------
# Weekday x hour
# ---------------------------------------------------------------------------------------------


def weekday_hour_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Spend transactions and spend per ISO weekday (1 = Monday) and UTC hour, all 7 x 24 cells.

    Reads the per-day-and-hour table of :func:`spendlab.describe.tables.prepare`.
    """
    df = con.execute(
        "WITH g AS (SELECT isodow(date) AS weekday, hour, CAST(sum(n_spend_transactions) AS BIGINT) AS n_transactions, "
        f"sum(spend) AS spend FROM {DAY_HOUR} WHERE n_spend_transactions > 0 GROUP BY 1, 2), "
        "c AS (SELECT w AS weekday, h AS hour FROM range(1, 8) t(w), range(0, 24) u(h)) "
        "SELECT c.weekday, c.hour, coalesce(n_transactions, 0) AS n_transactions, coalesce(spend, 0) AS spend "
        "FROM c LEFT JOIN g USING (weekday, hour) ORDER BY c.weekday, c.hour"
    ).fetchdf()
    df.insert(1, "weekday_name", [WEEKDAYS[w - 1] for w in df["weekday"]])
    return df


def weekday_hour_takeaway(grid: pd.DataFrame) -> str:
    """Say in one sentence when in the week and the day transactions happen."""
    total = grid["n_transactions"].sum()
    if total == 0:
        return "No spend transactions."
    by_hour = grid.groupby("hour")["n_transactions"].sum()
    by_day = grid.groupby("weekday_name", sort=False)["n_transactions"].sum()
    day, day_n = by_day.idxmax(), by_day.max()
    if (by_hour > 0).sum() == 1:
        return (f"Every transaction carries the same time of day ({by_hour.idxmax():02d}:00 UTC), so the data has "
                f"no time-of-day signal; by weekday, {day} has the most transactions ({_pct(day_n / total)}).")
    top = grid.loc[grid["n_transactions"].idxmax()]
    return (f"The busiest slot is {top['weekday_name']} {int(top['hour']):02d}:00 UTC with "
            f"{_pct(top['n_transactions'] / total)} of transactions (a uniform week would give {_pct(1 / 168)}); "
            f"{day} is the busiest day ({_pct(day_n / total)}).")


# ---------------------------------------------------------------------------------------------
# Transaction size
# ---------------------------------------------------------------------------------------------


#: Temp table of :func:`amount_counts`: one row per distinct spend amount.
AMOUNT_COUNTS = "describe_amount_counts"


def amount_counts(con: duckdb.DuckDBPyConnection) -> str:
    """Count spend transactions per distinct amount into temp table :data:`AMOUNT_COUNTS` (one pass).

    Amounts carry cents, so a few hundred thousand groups at most stand for tens of millions of rows:
    the size histogram and the exact quantiles read this table, not the rows (an exact
    ``quantile_cont`` over the rows holds every amount in memory, outside DuckDB's memory limit).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {AMOUNT_COUNTS} AS SELECT amount, count(*) AS n, "
                "sum(spendlab_money(amount)) AS spend FROM transactions WHERE amount > 0 GROUP BY amount")
    return AMOUNT_COUNTS


def transaction_size_table(con: duckdb.DuckDBPyConnection, bins_per_decade: int = 10) -> pd.DataFrame:
    """Histogram of spend transaction amounts on log-spaced bins ``[10^(k/b), 10^((k+1)/b))``.

    Reads :data:`AMOUNT_COUNTS` (:func:`amount_counts`).
    """
    b = int(bins_per_decade)
    df = con.execute(
        f"SELECT CAST(floor(log10(amount) * {b}) AS BIGINT) AS k, CAST(sum(n) AS BIGINT) AS n_transactions, "
        f"sum(spend) AS spend FROM {AMOUNT_COUNTS} GROUP BY 1 ORDER BY 1"
    ).fetchdf()
    df.insert(0, "bin_lower", 10.0 ** (df["k"] / b))
    df.insert(1, "bin_upper", 10.0 ** ((df["k"] + 1) / b))
    return df.drop(columns="k")


def _quantile_cont(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """Compute ``quantile_cont`` of the rows a sorted (value, count) histogram stands for.

    Exactly as DuckDB computes it over the rows: position h = (n - 1) q,
    ``lo + (hi - lo) * (h - floor(h))``.
    """
    cum = np.cumsum(counts)
    h = (cum[-1] - 1) * q
    lo = values[np.searchsorted(cum, math.floor(h), side="right")]
    hi = values[np.searchsorted(cum, math.ceil(h), side="right")]
    return float(lo + (hi - lo) * (h - math.floor(h)))


def transaction_size_quantiles(con: duckdb.DuckDBPyConnection) -> dict[str, float | None]:
    """Exact median, p90, p99 and mean of spend transaction amounts (from :data:`AMOUNT_COUNTS`)."""
    hist = con.execute(f"SELECT amount, n FROM {AMOUNT_COUNTS} ORDER BY amount").fetchnumpy()
    if len(hist["n"]) == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    mean = con.execute(f"SELECT sum(spend) / sum(n) FROM {AMOUNT_COUNTS}").fetchall()[0][0]
    values, counts = np.asarray(hist["amount"], dtype=np.float64), np.asarray(hist["n"], dtype=np.int64)
    return {f"p{round(q * 100)}": _quantile_cont(values, counts, q) for q in (0.5, 0.9, 0.99)} | {"mean": float(mean)}


def transaction_size_takeaway(q: dict[str, float | None], *, money: Money = _money) -> str:
    """Say in one sentence how large a typical transaction is."""
    if q["p50"] is None:
        return "No spend transactions."
    skew = q["mean"] / q["p50"] if q["p50"] else math.nan
    return (f"Half of all purchases are under {money(q['p50'])}; 90% are under {money(q['p90'])} and 99% under "
            f"{money(q['p99'])}; the mean ({money(q['mean'])}) is {skew:.2f}x the median.")


# ---------------------------------------------------------------------------------------------
# Concentration
# ---------------------------------------------------------------------------------------------

_RANKED = (
    f"WITH u AS (SELECT user_id, total_spend AS spend FROM {USER}), "
    "r AS (SELECT spend, row_number() OVER (ORDER BY spend DESC, user_id) AS rank_desc, "
    "count(*) OVER () AS n, sum(spend) OVER () AS total FROM u) "
)


def concentration_table(con: duckdb.DuckDBPyConnection, shares: tuple[float, ...] = TOP_SHARES) -> pd.DataFrame:
    """Share of gross spend made by the top ``share`` of users (all users, zero spenders included).

    The top 1% of ``n`` users is the ``ceil(0.01 n)`` users with the highest spend.
    """
    values = ", ".join(f"({s})" for s in shares)
    return con.execute(
        _RANKED + f", s(top_share_of_users) AS (VALUES {values}) "
        "SELECT s.top_share_of_users, CAST(ceil(s.top_share_of_users * any_value(r.n)) AS BIGINT) AS n_users, "
        "coalesce(sum(r.spend) FILTER (r.rank_desc <= ceil(s.top_share_of_users * r.n)), 0) AS spend, "
        "coalesce(sum(r.spend) FILTER (r.rank_desc <= ceil(s.top_share_of_users * r.n)), 0) "
        "/ nullif(any_value(r.total), 0) AS share_of_spend FROM s, r GROUP BY 1 ORDER BY 1"
    ).fetchdf()


def lorenz_table(con: duckdb.DuckDBPyConnection, points: int = 200) -> tuple[pd.DataFrame, float | None]:
    """Lorenz curve (users sorted by spend ascending) at about ``points`` points, and the exact Gini.

    Gini = 2 sum(i x_i) / (n sum x) - (n + 1) / n with ``x`` ascending and ``i`` 1-based.
    """
    p = int(points)
    curve = con.execute(
        f"WITH u AS (SELECT total_spend AS spend FROM {USER}), "
        "r AS (SELECT row_number() OVER (ORDER BY spend) AS i, count(*) OVER () AS n, "
        "sum(spend) OVER (ORDER BY spend ROWS UNBOUNDED PRECEDING) AS cum, sum(spend) OVER () AS total FROM u) "
        f"SELECT i / n AS user_share, cum / nullif(total, 0) AS spend_share FROM r "
        f"WHERE i = n OR i % greatest(1, n // {p}) = 0 ORDER BY i"
    ).fetchdf()
    curve = pd.concat([pd.DataFrame({"user_share": [0.0], "spend_share": [0.0]}), curve], ignore_index=True)
    gini = con.execute(
        f"WITH u AS (SELECT total_spend AS spend FROM {USER}), "
        "r AS (SELECT spend, row_number() OVER (ORDER BY spend) AS i FROM u) "
        "SELECT 2 * sum(i * spend) / (count(*) * nullif(sum(spend), 0)) - (count(*) + 1) / count(*) FROM r"
    ).fetchall()[0][0]
    return curve, (None if gini is None else float(gini))


def concentration_takeaway(conc: pd.DataFrame, gini: float | None) -> str:
    """Say in one sentence how concentrated spend is among users."""
    if gini is None or conc.empty:
        return "No spend to measure concentration on."
    row = {round(s, 4): r for s, r in zip(conc["top_share_of_users"], conc.itertuples(), strict=True)}
    parts = [f"the top {_pct(s).replace('.0%', '%')} of users ({int(row[s].n_users):,}) make "
             f"{_pct(row[s].share_of_spend)} of spend" for s in (0.01, 0.10) if s in row]
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + f" (Gini {gini:.2f})."


# ---------------------------------------------------------------------------------------------
# Top and bottom spenders
# ---------------------------------------------------------------------------------------------


def spenders_table(con: duckdb.DuckDBPyConnection, n: int, *, top: bool = True) -> pd.DataFrame:
    """Return the ``n`` users with the highest (or lowest positive) gross spend, ties broken by user_id."""
    order = "total_spend DESC, user_id" if top else "total_spend ASC, user_id"
    # the n rows are picked first (a top-n, not a sort of every user), then ranked among themselves:
    # the same ranks as a row_number over all users with spend, which puts these n first
    return con.execute(
        f"WITH t AS (SELECT sum(total_spend) AS total FROM {USER}), "
        f"k AS (SELECT user_id, n_spend_transactions, total_spend, total_spend / nullif(n_spend_transactions, 0) "
        f"AS avg_transaction_value, n_refunds FROM {USER} WHERE total_spend > 0 ORDER BY {order} LIMIT {int(n)}) "
        f"SELECT row_number() OVER (ORDER BY {order}) AS rank, user_id, n_spend_transactions, total_spend, "
        "avg_transaction_value, n_refunds, total_spend / nullif(t.total, 0) AS share_of_spend "
        f"FROM k, t ORDER BY {order}"
    ).fetchdf()


def spenders_takeaway(top: pd.DataFrame, bottom: pd.DataFrame, median_user_spend: float | None, *,
                      money: Money = _money) -> str:
    """Say in one sentence how the top and bottom spenders compare with the median user."""
    if top.empty:
        return "No user has spend."
    first = top.iloc[0]
    rel = (f", {first['total_spend'] / median_user_spend:,.0f}x the median spender ({money(median_user_spend)})"
           if median_user_spend else "")
    low = bottom.iloc[0]
    return (f"The top spender, user {first['user_id']}, spent {money(first['total_spend'])} over "
            f"{int(first['n_spend_transactions']):,} purchases{rel}; the top {len(top)} together make "
            f"{_pct(top['share_of_spend'].sum())} of spend; the lowest spender spent {money(low['total_spend'])}.")


# ---------------------------------------------------------------------------------------------
# Month-over-month change per user
# ---------------------------------------------------------------------------------------------


def mom_by_month_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per month: how many users increased, decreased, started, stopped, and the summed changes."""
    df = con.execute(
        f"WITH c AS (SELECT * FROM {MOM}) SELECT month, "
        "count(*) FILTER (direction = 'increased') AS increased, "
        "count(*) FILTER (direction = 'decreased') AS decreased, "
        "count(*) FILTER (direction = 'unchanged') AS unchanged, count(*) FILTER (direction = 'started') AS started, "
        "count(*) FILTER (direction = 'stopped') AS stopped, "
        "coalesce(sum(change) FILTER (change > 0), 0) AS total_increase, "
        "coalesce(-sum(change) FILTER (change < 0), 0) AS total_decrease, sum(change) AS net_change "
        "FROM c GROUP BY month ORDER BY month"
    ).fetchdf()
    return df


def mom_movers_table(con: duckdb.DuckDBPyConnection, month: str, n: int) -> pd.DataFrame:
    """Return the ``n`` largest increases and ``n`` largest decreases of ``month`` against the month before."""
    return con.execute(
        f"WITH k AS (SELECT * FROM {MOM} WHERE month = ?) "
        f"(SELECT * FROM k WHERE change > 0 ORDER BY change DESC, user_id LIMIT {int(n)}) UNION ALL "
        f"(SELECT * FROM k WHERE change < 0 ORDER BY change ASC, user_id LIMIT {int(n)}) "
        "ORDER BY change DESC, user_id", [month]
    ).fetchdf()


def mom_takeaway(by_month: pd.DataFrame, movers: pd.DataFrame, *, money: Money = _money) -> str:
    """Say in one sentence how the last month compares with the month before, and who moved it."""
    if by_month.empty:
        return "Only one month of data: no month-over-month change."
    last = by_month.iloc[-1]
    up = int(last["increased"] + last["started"])
    down = int(last["decreased"] + last["stopped"])
    text = (f"In {last['month']}, {up:,} users spent more than in the month before ({int(last['started']):,} of them "
            f"after a month without spend) and {down:,} spent less ({int(last['stopped']):,} spent nothing), "
            f"a net change of "
            f"{'+' if last['net_change'] >= 0 else '-'}{money(abs(last['net_change']))}")
    if len(movers):
        big = movers.iloc[0]
        if big["change"] > 0:
            text += f"; the biggest increase was user {big['user_id']} (+{money(big['change'])})"
    return text + "."


# ---------------------------------------------------------------------------------------------
# New vs returning users, cohorts, active users
# ---------------------------------------------------------------------------------------------


def _first_spend_cte(period: str) -> str:
    """Active user-periods ``a`` and each user's first active period ``f`` (the month from the per-user table)."""
    if period == "month":
        return (f"WITH a AS (SELECT user_id, month_start AS period_start FROM {USER_MONTH} WHERE spend > 0), "
                f"f AS (SELECT user_id, first_month AS first_period FROM {USER} WHERE first_month IS NOT NULL) ")
    return (
        f"WITH a AS (SELECT user_id, week_start AS period_start FROM {USER_WEEK}), "
        "f AS (SELECT user_id, min(period_start) AS first_period FROM a GROUP BY user_id) "
    )


def new_returning_table(con: duckdb.DuckDBPyConnection, period: str) -> pd.DataFrame:
    """Per ``week`` (ISO, Monday start) or ``month``: active users split into new (first spend) and returning.

    A user is new in the period of their first spend and returning in every later active period, so
    the new users are counted from the first periods alone and returning = active - new (no join of
    every active user-period with its user's first period).
    """
    if period not in ("week", "month"):
        raise ValueError(f"period must be 'week' or 'month', got {period!r}")
    df = con.execute(
        _first_spend_cte(period)
        + ", act AS (SELECT period_start, count(*) AS active_users FROM a GROUP BY 1), "
        "new AS (SELECT first_period AS period_start, count(*) AS new_users FROM f GROUP BY 1) "
        "SELECT act.period_start, coalesce(new.new_users, 0) AS new_users, "
        "act.active_users - coalesce(new.new_users, 0) AS returning_users, act.active_users "
        "FROM act LEFT JOIN new USING (period_start) ORDER BY 1"
    ).fetchdf()
    df["period_start"] = pd.to_datetime(df["period_start"])
    if period == "week":
        iso = df["period_start"].dt.isocalendar()
        df.insert(1, "iso_year", iso["year"].astype("int64"))
        df.insert(2, "iso_week", iso["week"].astype("int64"))
    df["returning_share"] = df["returning_users"] / df["active_users"]
    return df


def new_returning_takeaway(monthly: pd.DataFrame) -> str:
    """Say in one sentence how new and returning users share each month."""
    if monthly.empty:
        return "No active users."
    later = monthly.iloc[1:] if len(monthly) > 1 else monthly
    last = monthly.iloc[-1]
    peak = monthly.loc[monthly["new_users"].idxmax()]
    return (f"New users peaked in {peak['period_start']:%Y-%m} ({int(peak['new_users']):,}); in the last month, "
            f"{last['period_start']:%Y-%m}, {_pct(last['returning_share'])} of {int(last['active_users']):,} active "
            f"users were returning (after the first month, {_pct(later['returning_share'].mean())} on average).")


def cohort_retention_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Acquisition cohorts (month of first spend) x months since: active users and retention share."""
    df = con.execute(
        _first_spend_cte("month")
        + ", s AS (SELECT first_period, count(*) AS cohort_size FROM f GROUP BY 1) "
        "SELECT f.first_period AS cohort_month, "
        "CAST(datediff('month', f.first_period, a.period_start) AS BIGINT) AS months_since_first, "
        "count(*) AS active_users, any_value(s.cohort_size) AS cohort_size, count(*) / any_value(s.cohort_size) "
        "AS retention FROM a JOIN f USING (user_id) JOIN s USING (first_period) GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchdf()
    df["cohort_month"] = pd.to_datetime(df["cohort_month"]).dt.strftime("%Y-%m")
    return df


def cohort_matrix(cohorts: pd.DataFrame) -> pd.DataFrame:
    """Retention by cohort (rows, ``YYYY-MM``) and months since first spend (columns 1, 2, ...).

    A month the data covers but in which nobody of the cohort spent is 0, not missing: a small
    cohort that never came back is a row of zeros, not a blank row. Only months after the data
    ends are missing (the triangle's lower right). Cohorts without any observed month after their
    first (the last month's) and month 0 (always 100%) are left out.
    """
    if cohorts.empty:
        return pd.DataFrame(dtype=float)
    start = pd.PeriodIndex(cohorts["cohort_month"], freq="M")
    last = (start + cohorts["months_since_first"].to_numpy()).max()
    mat = cohorts.pivot(index="cohort_month", columns="months_since_first", values="retention")
    months = range(1, int(cohorts["months_since_first"].max()) + 1)
    mat = mat.reindex(columns=list(months)).astype(float)
    for cohort in mat.index:
        observed = (last - pd.Period(cohort, freq="M")).n  # months after the cohort's first the data covers
        row = mat.loc[cohort]
        mat.loc[cohort] = row.where(row.notna() | (row.index > observed), 0.0)
    mat = mat.dropna(how="all")
    mat.columns.name = "months_since_first"
    return mat


def retention_takeaway(cohorts: pd.DataFrame) -> str:
    """Say in one sentence how many users come back the month after their first."""
    m1 = cohorts[cohorts["months_since_first"] == 1]
    if m1.empty:
        return "No cohort has a second month yet."
    sizes = cohorts[cohorts["months_since_first"] == 0].set_index("cohort_month")["cohort_size"]
    weighted = m1["active_users"].sum() / sizes.loc[m1["cohort_month"]].sum()
    best = m1.loc[m1["retention"].idxmax()]
    return (f"On average {_pct(weighted)} of a cohort spends again in its second month; the best cohort, "
            f"{best['cohort_month']}, kept {_pct(best['retention'])}.")


def active_users_weekly_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Distinct users with spend per ISO week, with the week's spend and spend per active user.

    Users are counted from the per-(user, ISO week) table on the week alone (the ISO labels follow from
    it); the week's spend sums the spend of its days and hours (exact decimals regroup exactly), so
    the per-user-week table carries no money.
    """
    df = con.execute(
        f"WITH a AS (SELECT week_start, count(*) AS active_users FROM {USER_WEEK} GROUP BY week_start), "
        "s AS (SELECT CAST(date_trunc('week', date) AS DATE) AS week_start, sum(spend) AS spend "
        f"FROM {DAY_HOUR} WHERE n_spend_transactions > 0 GROUP BY 1) "
        "SELECT isoyear(week_start) AS iso_year, week(week_start) AS iso_week, week_start, active_users, spend "
        "FROM a JOIN s USING (week_start) ORDER BY week_start"
    ).fetchdf()
    df["week_start"] = pd.to_datetime(df["week_start"])
    df["spend_per_active_user"] = df["spend"] / df["active_users"]
    return df


def active_users_takeaway(weekly: pd.DataFrame, period_end: dt.date | None = None) -> str:
    """Say in one sentence how weekly active users moved (complete weeks only)."""
    if weekly.empty:
        return "No active users."
    full = weekly
    if period_end is not None and len(weekly) > 1:
        # A last week cut short by the end of the data is not compared with full weeks.
        last_start = weekly["week_start"].iloc[-1].date()
        if (period_end - last_start).days < 6:
            full = weekly.iloc[:-1]
    peak = full.loc[full["active_users"].idxmax()]
    last = full.iloc[-1]
    return (f"Active users peaked at {int(peak['active_users']):,} in "
            f"{int(peak['iso_year'])}-W{int(peak['iso_week']):02d}; "
            f"the last full week ({int(last['iso_year'])}-W{int(last['iso_week']):02d}) had "
            f"{int(last['active_users']):,}, {_pct(last['active_users'] / peak['active_users'])} of the peak; "
            f"median {np.median(full['active_users']):,.0f} per week.")
