"""The coming period estimated before any actual is known, with its own uncertainty.

From the model's outputs alone (``prediction``, ``p_spend``, the interval and, for the spread, the
calibrated mixture ``(1 - p) delta_0 + p G`` the interval was cut from):

- the **total**: the sum of expected spend; its standard deviation adds the per-user predictive
  variances (the realized total's noise were the model right) and the model's own error of a total,
  ``model_error * total`` (the root mean square of the relative error of the total on the backtest's
  test origins that ended by the cutoff: known before the actuals);
- the **interval coverage**: the mean over users of ``P(lower <= Y <= upper)`` under the model (a
  zero outcome is inside when ``lower`` is 0); its standard deviation is that of a sum of independent
  Bernoulli draws with those probabilities.

Cold-start rows were not cut from the calibrated mixture: their coverage is ``max(level, P(Y = 0))``
and their variance that of spending ``prediction / p_spend`` with probability ``p_spend``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from spendlab.calendar import period_end
from spendlab.forecast.intervals import expected_coverage, predictive_moments

#: Standard normal quantile of the estimate's two-sided 95% interval.
Z95 = 1.959963984540054
COLD_START = "cold_start_fallback"


def _moments(scores: pd.DataFrame, calibration: dict[str, Any] | None, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user predictive variance and interval probability (model rows from the mixture)."""
    p = scores["p_spend"].to_numpy(dtype=np.float64)
    pred = scores["prediction"].to_numpy(dtype=np.float64)
    inside = expected_coverage(p, level)
    var = np.where(p > 0, p * (1 - p) * (pred / np.where(p > 0, p, 1.0)) ** 2, 0.0)
    model = scores["basis"].astype(str).to_numpy() != COLD_START
    if calibration is not None and model.any():
        rows = scores.loc[model, ["segment", "prediction", "lower", "upper"]].rename(columns={"prediction": "y_pred"})
        mom = predictive_moments(rows, calibration)
        var[model], inside[model] = mom["var"].to_numpy(), mom["p_inside"].to_numpy()
    return var, inside


def pre_actuals_estimate(scores: pd.DataFrame, *, level: float, calibration: dict[str, Any] | None = None,
                         model_error: float = 0.0, z: float = Z95) -> dict[str, float]:
    """Return what the model expects of the coming period, with an interval, from its own outputs alone.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``prediction``, ``p_spend``, ``lower``, ``upper``, ``segment``, ``basis``.
    level : float
        The intervals' nominal level.
    calibration : dict, optional
        The model's interval calibration (:func:`spendlab.forecast.intervals.fit_calibration`); without
        it every row is treated as a cold-start row (see module docstring).
    model_error : float
        The model's relative error of a total (root mean square over backtest origins); 0 counts the
        users' noise only.
    z : float
        Normal quantile of the intervals (default 95%).

    Returns
    -------
    dict
        ``expected_total`` (sum of ``prediction``) with ``expected_total_sd``, ``expected_total_low``
        and ``expected_total_high``; ``expected_coverage`` (mean ``P(lower <= Y <= upper)``) with
        ``expected_coverage_sd``, ``_low``, ``_high``; ``expected_spenders`` (sum of ``p_spend``),
        ``cold_start_share`` and ``model_error``.
    """
    n = len(scores)
    if n == 0:
        keys = ("expected_total", "expected_total_sd", "expected_total_low", "expected_total_high",
                "expected_coverage", "expected_coverage_sd", "expected_coverage_low", "expected_coverage_high")
        return {**dict.fromkeys(keys, math.nan), "expected_total": 0.0, "expected_spenders": 0.0,
                "cold_start_share": math.nan, "model_error": float(model_error)}
    var, inside = _moments(scores, calibration, level)
    total = float(scores["prediction"].sum())
    sd = math.sqrt(float(var.sum()) + (float(model_error) * total) ** 2)
    cov = float(inside.mean())
    cov_sd = math.sqrt(float((inside * (1 - inside)).sum())) / n
    return {"expected_total": total, "expected_total_sd": sd, "expected_total_low": max(total - z * sd, 0.0),
            "expected_total_high": total + z * sd, "expected_coverage": cov, "expected_coverage_sd": cov_sd,
            "expected_coverage_low": max(cov - z * cov_sd, 0.0), "expected_coverage_high": min(cov + z * cov_sd, 1.0),
            "expected_spenders": float(scores["p_spend"].sum()),
            "cold_start_share": float(np.mean(scores["basis"].astype(str).to_numpy() == COLD_START)),
            "model_error": float(model_error)}


def backtest_total_error(backtest: pd.DataFrame, *, as_of: dt.date, freq: str) -> float:
    """Return the root mean square relative error of the total on backtest origins complete by a cutoff.

    Parameters
    ----------
    backtest : pandas.DataFrame
        Per test origin: ``cutoff`` and ``bias`` (``sum(pred - actual) / sum(actual)``).
    as_of : datetime.date
        The estimate's cutoff: only origins whose target period (the period after their cutoff) ended
        on or before it are used, so the estimate sees no actual of a later day.
    freq : str
        The periods' frequency.

    Returns
    -------
    float
        ``sqrt(mean(bias^2))``; NaN when no origin qualifies.
    """
    if backtest is None or len(backtest) == 0 or not {"bias", "cutoff"} <= set(backtest.columns):
        return math.nan
    ends = [period_end(pd.Timestamp(c).date() + dt.timedelta(days=1), freq) for c in backtest["cutoff"]]  # type: ignore[arg-type]
    bias = backtest["bias"].to_numpy(dtype=np.float64)[np.array([e <= as_of for e in ends], dtype=bool)]
    bias = bias[np.isfinite(bias)]
    return float(np.sqrt(np.mean(bias**2))) if len(bias) else math.nan
