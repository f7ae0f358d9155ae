"""Probabilistic next-period spend for a zero-inflated target: a hurdle calibrated on validation origins.

``p_spend = P(Y > 0)`` is an isotonic regression of ``1{y > 0}`` on the point forecast per segment;
the positive part is the empirical quantiles of the positive outcomes per segment and forecast bin.
The realized amount's median and 80% interval follow from the mixture ``(1 - p) delta_0 + p G``;
test coverage is measured (:func:`calibration_report`), never tuned. Method and reasons:
``docs/intervals.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from spendlab.forecast.cold_start import cold_start_fallback  # noqa: F401 - its home before cold_start

METHOD = "hurdle_isotonic_mondrian"
#: Probability grid on which each group's positive-spend quantiles are stored.
_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
SCORED_COLUMNS: tuple[str, ...] = ("p_spend", "median", "lower", "upper")


def _isotonic(pred: np.ndarray, hit: np.ndarray) -> dict[str, list[float]]:
    """P(y > 0) as a non-decreasing step-linear function of the forecast (knots for ``np.interp``)."""
    from sklearn.isotonic import IsotonicRegression

    if len(pred) == 0:
        return {"x": [0.0], "p": [0.0]}
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(pred, hit)
    return {"x": [float(v) for v in iso.X_thresholds_], "p": [float(v) for v in iso.y_thresholds_]}


def _bin_edges(pred: np.ndarray, n_bins: int) -> list[float]:
    if n_bins <= 1 or len(pred) == 0:
        return []
    qs = np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def _assign_bins(pred: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=np.float64), pred, side="right")


def _positive_quantiles(y_pos: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(y_pos, _GRID)] if len(y_pos) else [0.0] * len(_GRID)


def _group(pred: np.ndarray, y: np.ndarray, *, n_bins: int, min_positive: int,
           fallback: dict[str, Any] | None) -> dict[str, Any]:
    """One segment's calibration: P(spend) knots, forecast-bin edges, positive-spend quantiles per bin."""
    pos = y > 0
    spec: dict[str, Any] = {"n": len(y), "n_positive": int(pos.sum()), "p": _isotonic(pred, pos.astype(float))}
    if pos.sum() < min_positive and fallback is not None:
        spec["edges"], spec["quantiles"] = fallback["edges"], fallback["quantiles"]
        return spec
    k = max(1, min(n_bins, int(pos.sum()) // max(min_positive, 1)))
    edges = _bin_edges(pred[pos], k)
    bins = _assign_bins(pred[pos], edges)
    whole = _positive_quantiles(y[pos])
    spec["edges"] = edges
    spec["quantiles"] = [_positive_quantiles(y[pos][bins == b]) if (bins == b).sum() >= min_positive else whole
                         for b in range(len(edges) + 1)]
    return spec


def fit_calibration(rows: pd.DataFrame, *, level: float = 0.8, n_bins: int = 10, min_positive: int = 40,
                    min_segment: int = 200) -> dict[str, Any]:
    """Fit the hurdle calibration on validation rows (columns ``segment``, ``y_pred``, ``y_true``).

    Returns plain floats and lists (JSON): ``{"method", "level", "segments": {seg: spec}, "pooled": spec}``
    where a spec holds the isotonic knots of P(spend) (``p.x``, ``p.p``), the forecast-bin ``edges``
    and, per bin, the positive-spend ``quantiles`` on a 101-point probability grid. Segments with
    fewer than ``min_segment`` rows use the pooled spec; bins with fewer than ``min_positive``
    positive outcomes use their segment's positive quantiles.
    """
    missing = {"segment", "y_pred", "y_true"} - set(rows.columns)
    if missing:
        raise ValueError(f"fit_calibration needs columns {sorted(missing)}")
    if len(rows) == 0:
        raise ValueError("fit_calibration needs at least one validation row")
    pred = rows["y_pred"].to_numpy(dtype=np.float64)
    y = rows["y_true"].to_numpy(dtype=np.float64)
    pooled = _group(pred, y, n_bins=n_bins, min_positive=min_positive, fallback=None)
    out: dict[str, Any] = {"method": METHOD, "level": float(level), "n_bins": n_bins, "segments": {},
                           "pooled": pooled}
    for seg, g in rows.groupby("segment", sort=True):
        if len(g) < min_segment:
            continue
        out["segments"][str(seg)] = _group(g["y_pred"].to_numpy(dtype=np.float64),
                                           g["y_true"].to_numpy(dtype=np.float64),
                                           n_bins=n_bins, min_positive=min_positive, fallback=pooled)
    return out


def _mixture_quantile(p: np.ndarray, table: np.ndarray, key: np.ndarray, tau: float) -> np.ndarray:
    """``Q(tau)`` of ``(1 - p) * delta_0 + p * G`` per row; ``table[key[i]]`` = row i's G quantiles on ``_GRID``.

    Reads two grid points per row from the few distinct grids (one per segment and bin) rather than a
    copy of a whole grid per row.
    """
    zero = 1.0 - p
    u = np.clip((tau - zero) / np.where(p > 0, p, 1.0), 0.0, 1.0)
    # linear interpolation in the grid, row by row (the grid is shared: vectorised by index)
    pos = u * (len(_GRID) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(_GRID) - 1)
    frac = pos - lo
    val = table[key, lo] * (1 - frac) + table[key, hi] * frac
    return np.where(tau <= zero, 0.0, val)


def _calibrated_keys(frame: pd.DataFrame, calibration: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``P(spend)`` and the index of its positive-spend quantiles (on ``_GRID``) in a table of them."""
    pred = frame["y_pred"].to_numpy(dtype=np.float64)
    seg = frame["segment"].astype(str).to_numpy()
    p = np.zeros(len(pred))
    key = np.zeros(len(pred), dtype=np.int64)
    tables = [np.zeros((1, len(_GRID)))]
    specs = calibration["segments"]
    groups = [(specs[s], seg == s) for s in specs] + [(calibration["pooled"], ~np.isin(seg, list(specs)))]
    for spec, m in groups:
        if not m.any():
            continue
        p[m] = np.interp(pred[m], spec["p"]["x"], spec["p"]["p"])
        key[m] = sum(len(t) for t in tables) + _assign_bins(pred[m], spec["edges"])
        tables.append(np.asarray(spec["quantiles"], dtype=np.float64))
    return p, key, np.vstack(tables)


def apply_calibration(frame: pd.DataFrame, calibration: dict[str, Any]) -> pd.DataFrame:
    """``DataFrame[p_spend, median, lower, upper]`` (index of ``frame``) for columns ``segment``, ``y_pred``.

    Segments unseen at fit time get the pooled calibration. ``0 <= lower <= median <= upper``.
    """
    missing = {"segment", "y_pred"} - set(frame.columns)
    if missing:
        raise ValueError(f"apply_calibration needs columns {sorted(missing)}")
    p, key, table = _calibrated_keys(frame, calibration)
    level = float(calibration["level"])
    alpha = 1.0 - level
    # Central interval while P(Y = 0) < alpha/2; otherwise the interval starts at 0 and ends at Q(level):
    # [Q(alpha/2), Q(1 - alpha/2)] would then cover 1 - alpha/2, not level (its lower tail is inside the atom).
    from_zero = (1.0 - p) >= alpha / 2
    lower = np.where(from_zero, 0.0, _mixture_quantile(p, table, key, alpha / 2))
    upper = np.where(from_zero, _mixture_quantile(p, table, key, level),
                     _mixture_quantile(p, table, key, 1 - alpha / 2))
    return pd.DataFrame({"p_spend": p, "median": _mixture_quantile(p, table, key, 0.5), "lower": lower,
                         "upper": np.maximum(upper, lower)}, index=frame.index)


def expected_coverage(p_spend: np.ndarray, level: float) -> np.ndarray:
    """Return the coverage the model itself promises for its interval.

    ``level``, or ``P(Y = 0)`` where that exceeds it (the interval is then [0, 0], and every zero
    outcome is inside).
    """
    return np.maximum(1.0 - np.asarray(p_spend, dtype=np.float64), level)


def predictive_moments(frame: pd.DataFrame, calibration: dict[str, Any], *, points: int = 1001) -> pd.DataFrame:
    """Return each row's mean, variance and probability of its interval under the calibrated mixture.

    The mixture is ``(1 - p) delta_0 + p G`` of :func:`apply_calibration`; ``G``'s quantile function is
    the stored grid, linearly interpolated on ``points`` equally spaced probabilities (ties in ``G``
    are atoms, counted whole).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``segment``, ``y_pred``, ``lower``, ``upper``.
    calibration : dict
        From :func:`fit_calibration`.
    points : int
        Probabilities on which ``G`` is evaluated.

    Returns
    -------
    pandas.DataFrame
        ``mean``, ``var`` and ``p_inside`` (``P(lower <= Y <= upper)``; a zero outcome is inside when
        ``lower`` is 0), index of ``frame``.
    """
    p, inverse, rows = _calibrated_keys(frame, calibration)  # few distinct grids: one per segment and bin
    lower, upper = frame["lower"].to_numpy(dtype=np.float64), frame["upper"].to_numpy(dtype=np.float64)
    u = np.linspace(0.0, 1.0, points)
    fine = np.vstack([np.interp(u, _GRID, r) for r in rows])
    m1, m2 = np.trapezoid(fine, u, axis=1)[inverse], np.trapezoid(fine**2, u, axis=1)[inverse]
    share = np.zeros(len(p))
    for k in np.unique(inverse):
        q, m = fine[k], inverse == k
        share[m] = (np.searchsorted(q, upper[m], side="right") - np.searchsorted(q, lower[m], side="left")) / points
    return pd.DataFrame({"mean": p * m1, "var": np.maximum(p * m2 - (p * m1) ** 2, 0.0),
                         "p_inside": (1.0 - p) * (lower <= 0) + p * share}, index=frame.index)


def coverage(y_true: np.ndarray, bounds: pd.DataFrame) -> float:
    """Share of outcomes inside ``[lower, upper]``."""
    y = np.asarray(y_true, dtype=np.float64)
    return float(np.mean((y >= bounds["lower"].to_numpy()) & (y <= bounds["upper"].to_numpy())))


def calibrate(predictions: pd.DataFrame, *, level: float) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """Fit the calibration on a backtest's validation rows.

    Returns every row's ``p_spend, median, lower, upper`` (index of ``predictions``) and the coverage
    on the test and the validation rows.
    """
    val = predictions[predictions["split"] == "validation"]
    test = predictions[predictions["split"] == "test"]
    cal = fit_calibration(val, level=level)
    scored = apply_calibration(predictions, cal)
    cov = {"interval_coverage_80": coverage(test["y_true"].to_numpy(), scored.loc[test.index]),
           "validation_interval_coverage_80": coverage(val["y_true"].to_numpy(), scored.loc[val.index])}
    return cal, scored, cov


# --- calibration measured on the test origins ---------------------------------------------------------


def winkler(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float) -> np.ndarray:
    """Winkler (interval) score per row: width plus ``2/alpha`` times the distance outside the interval."""
    return (upper - lower) + (2 / alpha) * np.maximum(lower - y, 0) + (2 / alpha) * np.maximum(y - upper, 0)


def _deciles(values: np.ndarray) -> np.ndarray:
    """Decile 1..10 of each value (ranks, so ties at 0 are spread evenly and every decile has ~10%)."""
    ranks = pd.Series(values).rank(method="first").to_numpy()
    return np.minimum(10, np.ceil(ranks / max(len(values), 1) * 10).astype(int)).clip(1)


def calibration_report(test: pd.DataFrame, *, level: float = 0.8,
                       base_rate: float | None = None) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Metrics and tables of the probabilistic output on the **test** rows (measured, never tuned).

    ``test`` has ``segment, y_true, y_pred, p_spend, lower, upper``. ``base_rate``: the share of training
    examples with spend (the constant forecast p_spend is compared with); NaN when not given.
    Returns (metrics, tables): coverage overall / by segment, Brier score of p_spend and of the
    constant, mean width, mean Winkler score; tables of coverage by segment and by prediction decile,
    and the reliability of p_spend by decile.
    """
    y = test["y_true"].to_numpy(dtype=np.float64)
    lo, hi = test["lower"].to_numpy(dtype=np.float64), test["upper"].to_numpy(dtype=np.float64)
    p = test["p_spend"].to_numpy(dtype=np.float64)
    hit = (y > 0).astype(float)
    inside = (y >= lo) & (y <= hi)
    alpha = 1.0 - level
    frame = pd.DataFrame({"segment": test["segment"].astype(str).to_numpy(), "inside": inside, "hit": hit, "p": p,
                          "expected": expected_coverage(p, level),
                          "width": hi - lo, "winkler": winkler(y, lo, hi, alpha),
                          "pred_decile": _deciles(test["y_pred"].to_numpy(dtype=np.float64)),
                          "p_decile": _deciles(p)})
    base = float(base_rate) if base_rate is not None else math.nan
    metrics = {"interval_coverage_80": float(inside.mean()), "interval_coverage_80_expected": float(frame["expected"].mean()),
               "interval_width_mean": float((hi - lo).mean()),
               "winkler_80": float(frame["winkler"].mean()), "brier_p_spend": float(np.mean((p - hit) ** 2)),
               "brier_base_rate": float(np.mean((base - hit) ** 2)), "spend_rate_test": float(hit.mean()),
               "p_spend_mean": float(p.mean())}
    agg = {"rows": ("inside", "size"), "coverage": ("inside", "mean"), "expected_coverage": ("expected", "mean"),
           "zero_share": ("hit", lambda h: 1.0 - h.mean()), "spend_rate": ("hit", "mean"),
           "width_mean": ("width", "mean"), "winkler": ("winkler", "mean")}
    by_segment = frame.groupby("segment").agg(**agg).reset_index()
    by_decile = frame.groupby("pred_decile").agg(**agg).reset_index()
    reliability = frame.groupby("p_decile").agg(rows=("p", "size"), p_spend_mean=("p", "mean"),
                                                spend_rate=("hit", "mean")).reset_index()
    for _, r in by_segment.iterrows():
        metrics[f"interval_coverage_80_{r['segment']}"] = float(r["coverage"])
    for _, r in by_decile.iterrows():
        metrics[f"interval_coverage_80_decile{int(r['pred_decile']):02d}"] = float(r["coverage"])
    return metrics, {"coverage_by_segment.csv": by_segment, "coverage_by_decile.csv": by_decile,
                     "p_spend_reliability.csv": reliability}
