"""Users outside the model's domain at a cutoff, and the one fallback forecast they get.

A user with no purchase at all by the cutoff (only zero amounts or refunds) has features the model
never learned from. Backtests and the registered scorer give such a user the same forecast, through
the functions here: new users' next-period spend in the training examples of that cutoff. One code
path, so a backtest's test metrics and the registered model's scores of the same cutoff agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spendlab.features.segments import segment_users

#: ``basis`` values: how a prediction was made.
BASIS_MODEL = "model"
BASIS_COLD_START = "cold_start_fallback"
#: The forecast columns a fallback replaces.
FALLBACK_COLUMNS: tuple[str, ...] = ("prediction", "p_spend", "median", "lower", "upper")


def cold_start_fallback(y_new: np.ndarray, *, level: float = 0.8) -> dict[str, float]:
    """Summarise new users' next-period spend in training as a fallback forecast.

    Parameters
    ----------
    y_new : numpy.ndarray
        Next-period spend of the training examples whose user was new at their cutoff.
    level : float
        Central interval level.

    Returns
    -------
    dict
        ``prediction`` (mean), ``p_spend`` (share spending), ``median``, ``lower``, ``upper``.
    """
    y = np.asarray(y_new, dtype=np.float64)
    if len(y) == 0:
        return {"prediction": 0.0, "p_spend": 0.0, "median": 0.0, "lower": 0.0, "upper": 0.0}
    alpha = 1.0 - level
    return {"prediction": float(np.mean(y)), "p_spend": float(np.mean(y > 0)), "median": float(np.quantile(y, 0.5)),
            "lower": float(np.quantile(y, alpha / 2)), "upper": float(np.quantile(y, 1 - alpha / 2))}


def training_fallback(X_train: pd.DataFrame, y_train: np.ndarray, *, active_window: int,
                      level: float = 0.8) -> dict[str, float]:
    """Compute the fallback of one training set: :func:`cold_start_fallback` of its new users.

    Parameters
    ----------
    X_train : pandas.DataFrame
        Stacked as-of features of the training examples.
    y_train : numpy.ndarray
        Their targets, row for row.
    active_window : int
        The segments' active window.
    level : float
        Central interval level.

    Returns
    -------
    dict
        The fallback forecast.
    """
    segments = segment_users(X_train, active_window=active_window)
    return cold_start_fallback(np.asarray(y_train, dtype=np.float64)[segments == "new"], level=level)


def cold_users(features: pd.DataFrame) -> np.ndarray:
    """Flag the rows of an as-of feature frame whose user has no purchase by the cutoff.

    Parameters
    ----------
    features : pandas.DataFrame
        As-of features; without ``n_transactions_total`` no row is flagged.

    Returns
    -------
    numpy.ndarray
        Booleans, row for row.
    """
    if "n_transactions_total" not in features.columns:
        return np.zeros(len(features), dtype=bool)
    return features["n_transactions_total"].to_numpy() <= 0


def apply_fallback(frame: pd.DataFrame, cold: np.ndarray, fallback: dict[str, Any]) -> pd.DataFrame:
    """Replace the forecast columns of the cold rows by the fallback and add ``basis``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Forecast rows; whichever of ``prediction, p_spend, median, lower, upper`` it holds are replaced.
    cold : numpy.ndarray
        Booleans from :func:`cold_users`, row for row.
    fallback : dict
        From :func:`cold_start_fallback`.

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is not changed).
    """
    out = frame.copy()
    for col in FALLBACK_COLUMNS:
        if col in out.columns:
            out[col] = np.where(cold, float(fallback[col]), out[col].to_numpy(dtype="float64"))
    out["basis"] = np.where(cold, BASIS_COLD_START, BASIS_MODEL)
    return out
