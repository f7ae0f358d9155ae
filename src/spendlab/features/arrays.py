"""Every as-of feature as array arithmetic over the compact aggregates: one definition for every engine.

The engines (DuckDB in :mod:`spendlab.features.build`, Spark in :mod:`spendlab.spark.features`) reduce
the rows to one row of sums per user (:func:`~spendlab.features.sql.user_stats_sql`) and the user's
recent active periods (:func:`~spendlab.features.sql.window_cells_sql`); the :data:`FAMILIES` here
turn those into the features. Fill policy: a window longer than the user's history averages the
periods the user has; ratios with a zero denominator are 0. Why: ``docs/features.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
    lag_name,
    rolling_name,
)

#: Users per block for the rolling statistics' temporaries (bounds memory, not results).
BLOCK = 1 << 17
_EPOCH = dt.date(1970, 1, 1)


def window_widths(config: FeatureConfig, freq: Freq) -> dict[str, int]:
    """Return the panel columns the windowed features read, each with the number of recent periods needed."""
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
    """Return the ``n_users x width`` matrix with ``values`` at (``idx``, ``k``) for ``k < width``, else 0.

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
    """Return the exponentially weighted mean over the user's last min(w, n_periods) periods.

    Lag 1 is weighted 1, lag j+1 weighted (1 - alpha)^j, weights renormalised (pandas ``ewm(alpha, adjust=True)``).
    """
    x = matrix[:, :w]
    weights = (1.0 - alpha) ** np.arange(x.shape[1], dtype=np.float64)
    out = np.empty(len(x))
    for lo in range(0, len(x), BLOCK):
        hi = lo + BLOCK
        mine = np.where(np.arange(x.shape[1]) < np.minimum(w, n_periods[lo:hi])[:, None], weights, 0.0)
        out[lo:hi] = _ratio(np.einsum("ij,ij->i", x[lo:hi], mine), mine.sum(axis=1))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide ``num`` by ``den``, with 0 where ``den`` is 0."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 0.0)


@dataclass(frozen=True)
class FeatureInputs:
    """What a feature family computes from: one entry per user, all in the output's user order.

    Attributes
    ----------
    stats
        The columns of :func:`~spendlab.features.sql.user_stats_sql` (float64 sums, int day numbers
        since 1970-01-01).
    windows
        Per panel column of :func:`window_widths`: its :func:`window_matrix` (``k`` = 0 is the as-of period).
    n_periods
        The periods each user has existed by the cutoff (float64).
    as_of, freq, config
        The cutoff, the frequency and the feature declaration.
    calendar
        The ``asof_*`` / ``target_*`` covariates (:func:`~spendlab.features.sql.calendar_tables`).
    """

    stats: Mapping[str, np.ndarray]
    windows: Mapping[str, np.ndarray]
    n_periods: np.ndarray
    as_of: dt.date
    freq: Freq
    config: FeatureConfig
    calendar: Mapping[str, float]


@dataclass(frozen=True)
class FeatureFamily:
    """A group of features: the column names it declares and the function that computes them.

    ``columns(config, freq)`` names the columns in output order; ``compute(inputs)`` returns exactly
    those columns, one float per user, from :class:`FeatureInputs` only (so every engine computes it
    the same way, and nothing after the cutoff can reach it).
    """

    columns: Callable[[FeatureConfig, Freq], list[str]]
    compute: Callable[[FeatureInputs], Mapping[str, np.ndarray]]


def _window_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Compute lags, rolling statistics, trend slopes and the expanding and exponentially weighted means."""
    windows, n, spec = x.windows, x.n_periods, x.config.for_freq(x.freq)
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
    if spec.expanding_mean:
        out[expanding_name("spend")] = _ratio(x.stats["spend_total"], n)
    for a in spec.ewm_alphas:
        out[ewm_name("spend", a)] = _ewm(windows["spend"], n, spec.ewm_window, a)
    return out


def _user_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Totals, ratios, days and the BTYD summary: arithmetic on the per-user sums."""
    stats, n, as_of, freq, config = x.stats, x.n_periods, x.as_of, x.freq, x.config
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


def _window_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    spec = config.for_freq(freq)
    cols = [lag_name(column, i) for column, k in spec.lags.items() for i in range(1, k + 1)]
    cols += [rolling_name(r.column, s, w) for r in spec.rolling for s in r.stats for w in r.windows]
    cols += [f"trend_slope_window{w}" for w in spec.trend_windows]
    cols += [expanding_name("spend")] if spec.expanding_mean else []
    return cols + [ewm_name("spend", a) for a in spec.ewm_alphas]


def _user_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    cols = [SAME_PERIOD_LAST_YEAR, HAS_LAST_YEAR, "spend_total", "n_transactions_total", "mean_basket",
            "n_active_periods", "n_periods", "days_since_last_purchase", "tenure_days"]
    cols += [f"active_days_per_week_mean_last{w}" for w in config.weekly_activity_windows]
    cols += ["weeks_since_last_purchase", "holiday_spend_share", "refund_amount_total", "refund_count_total"]
    return cols + ["bgnbd_frequency", "bgnbd_recency_days", "bgnbd_T_days", "bgnbd_monetary"]


def _calendar_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    return [f"{when}_{c}" for when in ("asof", "target") for c in CALENDAR_COLUMNS]


def _calendar_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Broadcast the as-of and target periods' calendar covariates to every user."""
    n = len(x.n_periods)
    return {name: np.full(n, float(x.calendar[name])) for name in _calendar_columns(x.config, x.freq)}


#: The feature families, in column order: adding a family is one entry here (its columns and their
#: computation); :func:`feature_columns` and :func:`compute_features` read nothing else. The BTYD
#: statistics (``FeatureConfig.btyd``) come after them, from their own DuckDB query.
FAMILIES: dict[str, FeatureFamily] = {
    "windows": FeatureFamily(_window_columns, _window_features),
    "user": FeatureFamily(_user_columns, _user_features),
    "calendar": FeatureFamily(_calendar_columns, _calendar_features),
}


def feature_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    """Return every feature column :func:`spendlab.features.build_features` returns, in order (``user_id`` first)."""
    check_freq(freq)
    cols = ["user_id"] + [c for family in FAMILIES.values() for c in family.columns(config, freq)]
    return cols + (list(BTYD_COLUMNS) if config.btyd else [])


def compute_features(stats: Mapping[str, np.ndarray], windows: Mapping[str, np.ndarray], *, as_of: dt.date,
                     freq: Freq, config: FeatureConfig, calendar: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Compute every feature of :func:`feature_columns` (``user_id`` aside), float64, family by family.

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
    x = FeatureInputs(stats, windows, np.asarray(stats["n_periods"], dtype=np.float64), as_of, freq, config, calendar)
    out: dict[str, np.ndarray] = {}
    for key, family in FAMILIES.items():
        values, declared = family.compute(x), family.columns(config, freq)
        if sorted(values) != sorted(declared):  # the declaration and the definitions must agree
            raise AssertionError(f"feature family {key!r} defined {sorted(set(values) ^ set(declared))} "
                                 "differently from its declared columns")
        out.update(values)
    names = [c for c in feature_columns(config, freq)[1:] if c not in BTYD_COLUMNS]  # joined after: build.py
    return {name: np.asarray(out[name], dtype=np.float64) for name in names}
