"""Realized accuracy of a scoring run: its rows joined with what users spent in the target period.

The point-forecast metrics are :func:`spendlab.forecast.metrics.origin_metrics`, the backtests' own
code, on the scores' rows in their order: the champion's scores of a backtest's cutoff give exactly
that backtest origin's test metrics.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.forecast.metrics import origin_metrics

#: Columns a scores file must carry to be monitored.
SCORE_COLUMNS: tuple[str, ...] = ("user_id", "prediction", "p_spend", "lower", "upper", "segment", "basis")
#: Metrics reported overall and per segment.
ACCURACY_METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "gini_norm", "top10_capture", "interval_coverage",
                                     "brier_p_spend", "n_users", "realized_total", "predicted_total")


def join_realized(scores: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    """Add each scored user's realized spend (``y_true``), keeping the scores' rows and order.

    Parameters
    ----------
    scores : pandas.DataFrame
        A scoring run's rows (:data:`SCORE_COLUMNS`).
    realized : pandas.DataFrame
        ``user_id``, ``target``: spend in the target period; a scored user missing here spent 0.

    Returns
    -------
    pandas.DataFrame
        ``scores`` with ``y_true``.

    Raises
    ------
    SpendlabError
        A column is missing, or a user is scored twice.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise SpendlabError(f"the scores lack columns {missing}")
    if scores["user_id"].duplicated().any():
        dup = scores.loc[scores["user_id"].duplicated(), "user_id"].iloc[0]
        raise SpendlabError(f"the scores hold user {dup!r} more than once")
    spend = realized.set_index(realized["user_id"].astype(str))["target"]
    out = scores.copy()
    out["y_true"] = spend.reindex(out["user_id"].astype(str)).fillna(0.0).to_numpy(dtype=np.float64)
    return out


def _one(rows: pd.DataFrame) -> dict[str, float]:
    y = rows["y_true"].to_numpy(dtype=np.float64)
    p = rows["prediction"].to_numpy(dtype=np.float64)
    if len(y) == 0:
        return {m: math.nan for m in ACCURACY_METRICS} | {"n_users": 0.0}
    base = origin_metrics(y, p)
    inside = (y >= rows["lower"].to_numpy(dtype=np.float64)) & (y <= rows["upper"].to_numpy(dtype=np.float64))
    hit = (y > 0).astype(np.float64)
    return {"rmse": base["rmse"], "mae": base["mae"], "bias": base["bias"], "gini_norm": base["gini_norm"],
            "top10_capture": base["top10_capture"], "interval_coverage": float(inside.mean()),
            "brier_p_spend": float(np.mean((rows["p_spend"].to_numpy(dtype=np.float64) - hit) ** 2)),
            "n_users": float(len(y)), "realized_total": float(y.sum()), "predicted_total": float(p.sum())}


def realized_accuracy(joined: pd.DataFrame) -> pd.DataFrame:
    """Measure the joined rows overall and per segment.

    Parameters
    ----------
    joined : pandas.DataFrame
        From :func:`join_realized`.

    Returns
    -------
    pandas.DataFrame
        One row per group (``all``, then each segment in sorted order), :data:`ACCURACY_METRICS` as
        columns. Ratios with no realized spend are NaN.
    """
    rows = [{"group": "all", **_one(joined)}]
    for seg, g in joined.groupby("segment", sort=True):
        rows.append({"group": str(seg), **_one(g)})
    return pd.DataFrame(rows)


def bootstrap_interval(joined: pd.DataFrame, *, metric: str = "rmse", n_boot: int = 500, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a realized metric over users resampled with replacement.

    Parameters
    ----------
    joined : pandas.DataFrame
        From :func:`join_realized`.
    metric : str
        ``rmse``, ``realized_total`` or ``interval_coverage``.
    n_boot : int
        Replicates.
    seed : int
        Seed of the one generator (same inputs, same interval).
    level : float
        Interval level.

    Returns
    -------
    tuple of float
        (low, high).
    """
    y = joined["y_true"].to_numpy(dtype=np.float64)
    if metric == "rmse":
        values = (joined["prediction"].to_numpy(dtype=np.float64) - y) ** 2
    elif metric == "realized_total":
        values = y * len(y)
    elif metric == "interval_coverage":
        values = ((y >= joined["lower"].to_numpy()) & (y <= joined["upper"].to_numpy())).astype(np.float64)
    else:
        raise ValueError(f"no bootstrap for metric {metric!r}")
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.array([values[rng.integers(0, n, size=n)].mean() for _ in range(n_boot)])
    stats = np.sqrt(means) if metric == "rmse" else means
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
