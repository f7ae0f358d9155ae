"""Accuracy of per-user forecasts at one origin, and their means over origins."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from spendlab.errors import NoDataError
from spendlab.forecast.segments import SEGMENTS

METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "wape", "top10_capture",
                            "rmse_new", "rmse_active", "rmse_lapsed")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def origin_metrics(y_true: np.ndarray, y_pred: np.ndarray, segment: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy of one origin's forecasts.

    ``bias`` = sum(pred - actual) / sum(actual); ``wape`` = sum|pred - actual| / sum(actual);
    ``top10_capture`` = share of the actual spend made by the ceil(10%) of users with the highest
    predictions (ties broken by row order). Ratios with zero actual spend are NaN (flagged, not logged).
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
