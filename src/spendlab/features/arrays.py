"""Every as-of feature as array arithmetic over the compact aggregates: one definition for every engine.

The engines (DuckDB in :mod:`spendlab.features.build`, Spark in :mod:`spendlab.spark.features`) read
the transactions once into the per-(user, period) aggregate (:func:`~spendlab.features.sql.aggregate_sql`)
and reduce it with the same SQL to one row of sums per user
(:func:`~spendlab.features.sql.user_stats_sql`) and the user's recent active periods
(:func:`~spendlab.features.sql.window_cells_sql`). This module turns those into the features:

- the recent periods become a users x periods matrix per panel column (:func:`window_matrix`; ``k`` =
  0 is the period containing the as-of date, inactive periods and periods before the user's first
  are 0);
- lags are its columns, rolling sums are row sums of its first ``w`` columns, the rolling standard
  deviation is two-pass (centred) over the ``min(w, n_periods)`` periods the user has, the trend is
  the least-squares slope over the same periods, in closed form;
- everything else is arithmetic on the per-user sums.

Fill policy (the one documented in :func:`spendlab.features.build_features`): a window longer than
the user's history averages the periods the user has; ratios with a zero denominator are 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np

from spendlab.calendar import Freq, check_freq, period_end
from spendlab.features.btyd import BTYD_COLUMNS
from spendlab.features.config import (
    CALENDAR_COLUMNS,
    HAS_LAST_YEAR,
    PERIODS_PER_YEAR,
    SAME_PERIOD_LAST_YEAR,
    FeatureConfig,
    ewm_name,
    expanding_name,
    feature_columns,
    lag_name,
    rolling_name,
)

#: Users per block for the rolling statistics' temporaries (bounds memory, not results).
BLOCK = 1 << 17
_EPOCH = dt.date(1970, 1, 1)


def window_widths(config: FeatureConfig, freq: Freq) -> dict[str, int]:
    """The panel columns the windowed features read, each with the number of recent periods needed."""
    spec = config.for_freq(freq)
    widths: dict[str, int] = {}
    for column, n in spec.lags.items():
        widths[column] = max(widths.get(column, 0), n)
    for r in spec.rolling:
        widths[r.column] = max(widths.get(r.column, 0), max(r.windows))
    if spec.trend_windows:
        widths["spend"] = max(widths.get("spend", 0), max(spec.trend_windows))
    if spec.ewm_alphas:
        widths["spend"] = max(widths.get("spend", 0), spec.ewm_window)
    return widths


def window_matrix(n_users: int, idx: np.ndarray, k: np.ndarray, values: np.ndarray, width: int) -> np.ndarray:
    """The ``n_users x width`` matrix with ``values`` at (``idx``, ``k``) for ``k < width``, else 0.

    (``idx``, ``k``) pairs are distinct: one aggregate row per user and period.
    """
    matrix = np.zeros((n_users, max(width, 1)), dtype=np.float64)
    keep = k < width
    matrix[idx[keep], k[keep]] = values[keep]
    return matrix


def _rolling(matrix: np.ndarray, n_periods: np.ndarray, w: int, stat: str) -> np.ndarray:
    """One rolling statistic over the ``w`` most recent periods (only those the user has)."""
    x = matrix[:, :w]
    if stat == "max":  # inactive periods are 0 and values are >= 0: zero-fill changes nothing
        return x.max(axis=1)
    n_w = np.minimum(w, n_periods)
    total = x.sum(axis=1)
    if stat == "mean":
        return total / n_w
    out = np.empty(len(x))
    steps = np.arange(x.shape[1])
    for lo in range(0, len(x), BLOCK):  # two-pass variance, in blocks of users
        hi = lo + BLOCK
        mean = total[lo:hi] / n_w[lo:hi]
        dev = np.where(steps < n_w[lo:hi, None], x[lo:hi] - mean[:, None], 0.0)
        out[lo:hi] = np.sqrt(np.einsum("ij,ij->i", dev, dev) / n_w[lo:hi])
    return out


def _trend(spend: np.ndarray, n_periods: np.ndarray, w: int) -> np.ndarray:
    """OLS slope of spend on t = -k over the user's last min(w, n_periods) periods; 0 below 2 periods.

    With t = 0, -1, .., -(n-1): slope = 12 ((n-1)/2 sum x - sum k x) / (n (n^2 - 1)).
    """
    x = spend[:, :w]
    n = np.minimum(w, n_periods)
    num = (n - 1) / 2 * x.sum(axis=1) - x @ np.arange(x.shape[1], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = 12 * num / (n * (n * n - 1))
    return np.where(n < 2, 0.0, slope)


def _ewm(matrix: np.ndarray, n_periods: np.ndarray, w: int, alpha: float) -> np.ndarray:
    """Exponentially weighted mean over the user's last min(w, n_periods) periods, lag 1 weighted 1,
    lag j+1 weighted (1 - alpha)^j, weights renormalised (pandas ``ewm(alpha, adjust=True)``)."""
    x = matrix[:, :w]
    weights = (1.0 - alpha) ** np.arange(x.shape[1], dtype=np.float64)
    out = np.empty(len(x))
    for lo in range(0, len(x), BLOCK):
        hi = lo + BLOCK
        mine = np.where(np.arange(x.shape[1]) < np.minimum(w, n_periods[lo:hi])[:, None], weights, 0.0)
        out[lo:hi] = _ratio(np.einsum("ij,ij->i", x[lo:hi], mine), mine.sum(axis=1))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 0.0)


def _window_features(windows: Mapping[str, np.ndarray], n: np.ndarray, freq: Freq,
                     config: FeatureConfig) -> dict[str, np.ndarray]:
    """Lags, rolling statistics and trend slopes: columns, row sums and dot products of the matrices."""
    spec = config.for_freq(freq)
    out: dict[str, np.ndarray] = {}
    for column, lags in spec.lags.items():
        matrix = windows[column]
        for i in range(1, lags + 1):
            out[lag_name(column, i)] = matrix[:, i - 1].copy() if i <= matrix.shape[1] else np.zeros(len(n))
    for r in spec.rolling:
        for stat in r.stats:
            for w in r.windows:
                out[rolling_name(r.column, stat, w)] = _rolling(windows[r.column], n, w, stat)
    for w in spec.trend_windows:
        out[f"trend_slope_window{w}"] = _trend(windows["spend"], n, w)
    for a in spec.ewm_alphas:
        out[ewm_name("spend", a)] = _ewm(windows["spend"], n, spec.ewm_window, a)
    return out


def _user_features(stats: Mapping[str, np.ndarray], n: np.ndarray, as_of: dt.date, freq: Freq,
                   config: FeatureConfig) -> dict[str, np.ndarray]:
    """Totals, ratios, days and the BTYD summary: arithmetic on the per-user sums."""
    as_of_day = (as_of - _EPOCH).days
    week_end = (period_end(as_of, "week") - _EPOCH).days
    first_day = np.asarray(stats["first_day"], dtype=np.int64)
    last_seen = np.asarray(stats["last_seen_day"], dtype=np.int64)
    purchase_days, spend_total = stats["purchase_days"], stats["spend_total"]
    out: dict[str, np.ndarray] = {
        SAME_PERIOD_LAST_YEAR: stats["spend_same_period_last_year"],
        HAS_LAST_YEAR: (n >= PERIODS_PER_YEAR[freq]).astype(np.float64),
        "spend_total": spend_total,
        "n_transactions_total": stats["n_transactions_total"],
        "mean_basket": _ratio(spend_total, stats["n_transactions_total"]),
        "n_active_periods": stats["n_active_periods"],
        "n_periods": n,
        **({expanding_name("spend"): _ratio(spend_total, n)} if config.for_freq(freq).expanding_mean else {}),
        "days_since_last_purchase": (as_of_day - last_seen).astype(np.float64),
        "tenure_days": (as_of_day - first_day).astype(np.float64),
    }
    weeks_available = (week_end - first_day) // 7 + 1
    for w in config.weekly_activity_windows:
        out[f"active_days_per_week_mean_last{w}"] = stats[f"purchase_days_last{w}w"] / np.minimum(w, weeks_available)
    out["weeks_since_last_purchase"] = ((week_end - last_seen) // 7).astype(np.float64)
    out["holiday_spend_share"] = _ratio(stats["event_spend"], spend_total)
    out["refund_amount_total"] = stats["refund_amount_total"]
    out["refund_count_total"] = stats["refund_count_total"]
    out["bgnbd_frequency"] = np.maximum(purchase_days - 1, 0.0)
    out["bgnbd_recency_days"] = np.asarray(stats["recency_days"], dtype=np.float64)
    out["bgnbd_T_days"] = (as_of_day - np.asarray(stats["first_seen_day"], dtype=np.int64)).astype(np.float64)
    repeat = purchase_days > 1
    out["bgnbd_monetary"] = np.where(
        repeat, (spend_total - stats["first_purchase_day_spend"]) / np.where(repeat, purchase_days - 1, 1.0), 0.0)
    return out


def compute_features(stats: Mapping[str, np.ndarray], windows: Mapping[str, np.ndarray], *, as_of: dt.date,
                     freq: Freq, config: FeatureConfig, calendar: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Every feature of :func:`~spendlab.features.config.feature_columns` (``user_id`` aside), float64.

    Parameters
    ----------
    stats
        The columns of :func:`~spendlab.features.sql.user_stats_sql`, one entry per user (float64
        sums, int day numbers since 1970-01-01), all in the output's user order.
    windows
        Per panel column of :func:`window_widths`: its :func:`window_matrix` (rows in the same order).
    calendar
        The ``asof_*`` / ``target_*`` covariates (:func:`~spendlab.features.sql.calendar_tables`).
    """
    check_freq(freq)
    n = np.asarray(stats["n_periods"], dtype=np.float64)
    out = _window_features(windows, n, freq, config)
    out.update(_user_features(stats, n, as_of, freq, config))
    for when in ("asof", "target"):
        for c in CALENDAR_COLUMNS:
            out[f"{when}_{c}"] = np.full(len(n), float(calendar[f"{when}_{c}"]))
    names = [c for c in feature_columns(config, freq)[1:] if c not in BTYD_COLUMNS]  # joined after: build.py
    if sorted(out) != sorted(names):  # the declaration and the definitions must agree
        raise AssertionError(f"features defined {sorted(set(out) ^ set(names))} differently from the declaration")
    return {name: np.asarray(out[name], dtype=np.float64) for name in names}
