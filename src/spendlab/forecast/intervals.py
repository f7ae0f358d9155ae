"""Split-conformal 80% intervals for per-user spend, by segment and prediction bin.

Per-user spend is zero-inflated, so a symmetric band around the point forecast would cover
the zeros and miss the spenders. Instead, for each segment (new / active / lapsed, see
:func:`spendlab.forecast.backtest.segment_users`) and each of ``n_bins`` prediction-quantile bins, the
interval is ``[max(0, pred + q_lo), max(lower, pred + q_hi)]`` with ``q_lo``/``q_hi`` empirical
quantiles of the residual ``y - pred`` on the **validation** origins. Because clipping at 0 turns
every zero outcome into a hit, the quantile pair is chosen per group as the central level whose
*clipped* validation coverage is closest to the target (a coarse grid); test coverage is then
measured, never tuned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_LEVEL_GRID = np.round(np.arange(0.30, 0.991, 0.01), 2)


def _bin_edges(pred: np.ndarray, n_bins: int) -> list[float]:
    qs = np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(pred) else np.array([])
    return sorted(set(float(q) for q in qs))


def _assign_bins(pred: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=np.float64), pred, side="right")


def _choose(resid: np.ndarray, pred: np.ndarray, y: np.ndarray, target: float) -> tuple[float, float, float]:
    """(q_lo, q_hi, level): the central residual quantiles whose clipped coverage is nearest ``target``."""
    best = (0.0, 0.0, target, np.inf)
    for level in _LEVEL_GRID:
        lo_q, hi_q = np.quantile(resid, [(1 - level) / 2, (1 + level) / 2])
        lower = np.maximum(pred + lo_q, 0.0)
        upper = np.maximum(pred + hi_q, lower)
        cov = float(np.mean((y >= lower) & (y <= upper)))
        gap = abs(cov - target)
        if gap < best[3] - 1e-12:
            best = (float(lo_q), float(hi_q), float(level), gap)
    return best[0], best[1], best[2]


def fit_conformal(residuals: pd.DataFrame, *, level: float = 0.8, n_bins: int = 5,
                  min_group: int = 30) -> dict[str, Any]:
    """Interval quantiles from validation residuals.

    Parameters
    ----------
    residuals
        Columns ``segment``, ``y_pred``, ``y_true`` (one row per user and validation origin).
    level
        Target coverage (0.8 = 80%).
    n_bins
        Prediction-quantile bins per segment (fewer when a segment has few rows).
    min_group
        Groups smaller than this use their segment's pooled quantiles.

    Returns
    -------
    dict
        ``{"level", "n_bins", "segments": {segment: {"edges", "q_lo", "q_hi", "levels"}}, "pooled"}``,
        plain floats and lists, so it can be written as YAML/JSON and logged to MLflow.
    """
    missing = {"segment", "y_pred", "y_true"} - set(residuals.columns)
    if missing:
        raise ValueError(f"fit_conformal needs columns {sorted(missing)}")
    if len(residuals) == 0:
        raise ValueError("fit_conformal needs at least one validation residual")
    pred_all = residuals["y_pred"].to_numpy(dtype=np.float64)
    y_all = residuals["y_true"].to_numpy(dtype=np.float64)
    lo, hi, lev = _choose(y_all - pred_all, pred_all, y_all, level)
    out: dict[str, Any] = {"level": level, "n_bins": n_bins, "segments": {},
                           "pooled": {"q_lo": lo, "q_hi": hi, "level": lev}}
    for seg, g in residuals.groupby("segment", sort=True):
        pred = g["y_pred"].to_numpy(dtype=np.float64)
        y = g["y_true"].to_numpy(dtype=np.float64)
        seg_lo, seg_hi, seg_lev = _choose(y - pred, pred, y, level) if len(g) >= min_group else (lo, hi, lev)
        k = max(1, min(n_bins, len(g) // max(min_group, 1)))
        edges = _bin_edges(pred, k)
        bins = _assign_bins(pred, edges)
        q_lo, q_hi, levels = [], [], []
        for b in range(len(edges) + 1):
            m = bins == b
            if m.sum() >= min_group:
                a, c, lv = _choose(y[m] - pred[m], pred[m], y[m], level)
            else:
                a, c, lv = seg_lo, seg_hi, seg_lev
            q_lo.append(a)
            q_hi.append(c)
            levels.append(lv)
        out["segments"][str(seg)] = {"edges": edges, "q_lo": q_lo, "q_hi": q_hi, "levels": levels}
    return out


def apply_intervals(pred_df: pd.DataFrame, quantiles: dict[str, Any]) -> pd.DataFrame:
    """``DataFrame[lower, upper]`` (same index as ``pred_df``) for columns ``segment``, ``y_pred``.

    Segments unseen at fit time get the pooled quantiles. ``0 <= lower <= upper`` always.
    """
    missing = {"segment", "y_pred"} - set(pred_df.columns)
    if missing:
        raise ValueError(f"apply_intervals needs columns {sorted(missing)}")
    pred = pred_df["y_pred"].to_numpy(dtype=np.float64)
    seg = pred_df["segment"].astype(str).to_numpy()
    q_lo = np.full(len(pred), quantiles["pooled"]["q_lo"], dtype=np.float64)
    q_hi = np.full(len(pred), quantiles["pooled"]["q_hi"], dtype=np.float64)
    for name, spec in quantiles["segments"].items():
        m = seg == name
        if not m.any():
            continue
        bins = _assign_bins(pred[m], spec["edges"])
        q_lo[m] = np.asarray(spec["q_lo"], dtype=np.float64)[bins]
        q_hi[m] = np.asarray(spec["q_hi"], dtype=np.float64)[bins]
    lower = np.maximum(pred + q_lo, 0.0)
    upper = np.maximum(pred + q_hi, lower)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=pred_df.index)


def coverage(y_true: np.ndarray, bounds: pd.DataFrame) -> float:
    """Share of outcomes inside ``[lower, upper]``."""
    y = np.asarray(y_true, dtype=np.float64)
    return float(np.mean((y >= bounds["lower"].to_numpy()) & (y <= bounds["upper"].to_numpy())))


def cold_start_fallback(y_new: np.ndarray) -> dict[str, float]:
    """Prediction and 80% band for users outside the model's domain: new users' next-period spend."""
    if len(y_new) == 0:
        return {"prediction": 0.0, "lower": 0.0, "upper": 0.0}
    return {
        "prediction": float(np.mean(y_new)),
        "lower": float(np.quantile(y_new, 0.1)),
        "upper": float(np.quantile(y_new, 0.9)),
    }


def calibrate(predictions: pd.DataFrame, *, level: float) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """Conformal quantiles fitted on a backtest's validation rows; the test rows' bounds; coverage on both."""
    val = predictions[predictions["split"] == "validation"]
    test = predictions[predictions["split"] == "test"]
    q = fit_conformal(val, level=level)
    bounds = apply_intervals(test, q)
    cov = {"interval_coverage_80": coverage(test["y_true"].to_numpy(), bounds),
           "validation_interval_coverage_80": coverage(val["y_true"].to_numpy(), apply_intervals(val, q))}
    return q, bounds, cov
