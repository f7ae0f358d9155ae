"""BTYD sufficient statistics in days: a declared feature group joined beside the as-of features.

"Buy till you die" models (BG/NBD, Pareto/NBD) summarise a customer by frequency, recency and age;
learned models gain from the same statistics, in days rather than periods (a purchase on the 1st and
one on the 30th are one month apart but 29 days apart). Definitions, at cutoff ``c`` over the rows
with ``ts`` on or before ``c`` (read only through :func:`spendlab.features.build.asof_view`):

- a *purchase* is a row with ``amount > 0``; a *purchase day* a date with at least one purchase;
- ``btyd_frequency``: purchase days after the first (repeat purchase days), as lifetimes counts them;
- ``btyd_recency_days`` (t_x): days from the first to the last purchase day (0 with one or none);
- ``btyd_age_days`` (T): days from the first purchase day to ``c`` (from the first row if none);
- ``btyd_days_since_last``: days from the last purchase day to ``c`` (T - t_x; T when none);
- ``btyd_gap_mean_days``, ``btyd_gap_cv``: mean and coefficient of variation (population SD / mean)
  of the gaps between consecutive purchase days (0 with fewer than one / two gaps);
- ``btyd_count_last{30,90}``, ``btyd_spend_last{30,90}``: purchases and their spend in the 30 / 90
  days ending on ``c`` (``ts`` on day ``c - 29`` .. ``c``, resp. ``c - 89`` .. ``c``).

One DuckDB query, one row per user with any row up to ``c`` (the population of the as-of features).
A feature set with ``btyd: true`` gets these columns from every DuckDB feature build (training,
``spendlab features``, batch scoring: :func:`spendlab.features.build.build_features_arrow`).
"""

from __future__ import annotations

import datetime as dt

WINDOWS: tuple[int, ...] = (30, 90)
BTYD_COLUMNS: tuple[str, ...] = (
    "btyd_frequency", "btyd_recency_days", "btyd_age_days", "btyd_days_since_last",
    "btyd_gap_mean_days", "btyd_gap_cv",
    *(f"btyd_{what}_last{w}" for w in WINDOWS for what in ("count", "spend")),
)


def btyd_sql(asof: str, as_of: dt.date) -> str:
    """Return the query over the as-of view ``asof`` (columns ``user_id``, ``ts``, ``amount``)."""
    c = f"DATE '{as_of.isoformat()}'"
    windows = ",\n".join(
        f"SUM(CASE WHEN amount > 0 AND d > {c} - {w} THEN 1 ELSE 0 END) AS btyd_count_last{w},\n"
        f"SUM(CASE WHEN amount > 0 AND d > {c} - {w} THEN CAST(amount AS DOUBLE) ELSE 0 END) AS btyd_spend_last{w}"
        for w in WINDOWS)
    return f"""
WITH r AS (SELECT user_id, CAST(ts AS DATE) AS d, amount FROM "{asof}"),
users AS (SELECT user_id, MIN(d) AS first_any, {windows} FROM r GROUP BY user_id),
days AS (SELECT DISTINCT user_id, d FROM r WHERE amount > 0),
gaps AS (SELECT user_id, d, DATE_DIFF('day', LAG(d) OVER (PARTITION BY user_id ORDER BY d), d) AS gap FROM days),
per AS (SELECT user_id, COUNT(*) AS n_days, MIN(d) AS first_buy, MAX(d) AS last_buy,
               AVG(gap) AS gap_mean, STDDEV_POP(gap) AS gap_sd, COUNT(gap) AS n_gaps
        FROM gaps GROUP BY user_id)
SELECT u.user_id,
       CAST(COALESCE(p.n_days - 1, 0) AS DOUBLE) AS btyd_frequency,
       CAST(COALESCE(DATE_DIFF('day', p.first_buy, p.last_buy), 0) AS DOUBLE) AS btyd_recency_days,
       CAST(DATE_DIFF('day', COALESCE(p.first_buy, u.first_any), {c}) AS DOUBLE) AS btyd_age_days,
       CAST(DATE_DIFF('day', COALESCE(p.last_buy, u.first_any), {c}) AS DOUBLE) AS btyd_days_since_last,
       CAST(COALESCE(p.gap_mean, 0) AS DOUBLE) AS btyd_gap_mean_days,
       CAST(CASE WHEN p.n_gaps >= 2 AND p.gap_mean > 0 THEN p.gap_sd / p.gap_mean ELSE 0 END AS DOUBLE) AS btyd_gap_cv,
       {", ".join(f"CAST(u.btyd_{what}_last{w} AS DOUBLE) AS btyd_{what}_last{w}" for w in WINDOWS
                  for what in ("count", "spend"))}
FROM users u LEFT JOIN per p USING (user_id)
ORDER BY u.user_id
"""
