"""Accuracy of per-user forecasts at one origin, and their means over origins."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from spendlab.errors import NoDataError
from spendlab.features.segments import SEGMENTS

METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "wape", "top10_capture", "gini_norm", "spearman",
                            "decile_mape", "rmse_new", "rmse_active", "rmse_lapsed")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _concentration_area(y: np.ndarray, order_by: np.ndarray) -> float:
    """Area under the concentration curve of ``y`` when users are ranked by ``order_by`` (descending).

    The curve is the share of total ``y`` held by the top fraction ``x`` of users. Tied scores form one
    block whose share grows linearly across it: the expected curve over every order of the ties, so
    a model that ties many users (``last_period``: most are 0) is not credited with a lucky order.
    """
    s = pd.DataFrame({"k": order_by, "y": y}).groupby("k", sort=True)["y"].agg(["sum", "size"]).iloc[::-1]
    x = np.concatenate([[0.0], np.cumsum(s["size"].to_numpy(dtype=np.float64)) / len(y)])
    c = np.concatenate([[0.0], np.cumsum(s["sum"].to_numpy(dtype=np.float64)) / float(y.sum())])
    return float(np.sum((x[1:] - x[:-1]) * (c[1:] + c[:-1]) / 2.0))


def normalized_gini(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Gini of the predicted ordering / Gini of the perfect ordering (1 = perfect ranking, 0 = random).

    Gini of an ordering = 2 x (area under its concentration curve) - 1. NaN when there is no spend.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.sum() <= 0:
        return math.nan
    perfect = 2.0 * _concentration_area(y, y) - 1.0
    return _ratio(2.0 * _concentration_area(y, p) - 1.0, perfect)


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ry = pd.Series(y_true).rank().to_numpy(dtype=np.float64)
    rp = pd.Series(y_pred).rank().to_numpy(dtype=np.float64)
    if ry.std() == 0 or rp.std() == 0:
        return math.nan
    return float(np.corrcoef(ry, rp)[0, 1])


def decile_mape(y_true: np.ndarray, y_pred: np.ndarray, n_groups: int = 10) -> float:
    """Mean over prediction deciles of |mean predicted - mean actual| / mean actual.

    Users are ranked by prediction (ties by row order) and cut into ``n_groups`` groups of (nearly)
    equal size; groups whose actual mean is 0 have no defined percentage error and are skipped.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    errs = []
    for idx in np.array_split(order, min(n_groups, len(y))):
        actual = float(y[idx].mean())
        if actual > 0:
            errs.append(abs(float(p[idx].mean()) - actual) / actual)
    return float(np.mean(errs)) if errs else math.nan


def origin_metrics(y_true: np.ndarray, y_pred: np.ndarray, segment: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy of one origin's forecasts.

    ``bias`` = sum(pred - actual) / sum(actual); ``wape`` = sum|pred - actual| / sum(actual);
    ``top10_capture`` = share of the actual spend made by the ceil(10%) of users with the highest
    predictions (ties broken by row order); ``gini_norm``, ``spearman`` and ``decile_mape``: see
    :func:`normalized_gini`, :func:`spearman`, :func:`decile_mape`. Ratios with zero actual spend are
    NaN (flagged, not logged).
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ in shape")
    if len(y) == 0:
        raise NoDataError("no users to score at this origin")
    e = p - y
    total = float(y.sum())
    k = max(1, math.ceil(0.1 * len(y)))
    top = np.argsort(-p, kind="stable")[:k]
    out = {
        "rmse": float(np.sqrt(np.mean(e ** 2))),
        "mae": float(np.mean(np.abs(e))),
        "bias": _ratio(float(e.sum()), total),
        "wape": _ratio(float(np.abs(e).sum()), total),
        "top10_capture": _ratio(float(y[top].sum()), total),
        "gini_norm": normalized_gini(y, p),
        "spearman": spearman(y, p),
        "decile_mape": decile_mape(y, p),
    }
    if segment is not None:
        for seg in SEGMENTS:
            m = segment == seg
            out[f"rmse_{seg}"] = float(np.sqrt(np.mean(e[m] ** 2))) if m.any() else math.nan
    return out


def mean_metrics(per_origin: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """``<split>_<metric>`` means over the origins of each split (NaN stays NaN: flagged later)."""
    out: dict[str, float] = {}
    for split, g in per_origin.groupby("split", sort=True):
        for m in metrics:
            if m in g.columns:
                vals = g[m].to_numpy(dtype=np.float64)
                out[f"{split}_{m}"] = float(vals.mean()) if np.isfinite(vals).all() else math.nan
    return out
