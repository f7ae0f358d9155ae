"""Is a lead real? A paired bootstrap over users, stratified by origin, of mean-over-origins RMSE.

A leaderboard's RMSE is the mean over origins of each origin's RMSE over users. Resampling the users
of each origin with replacement (the same draw for every model: *paired*) and recomputing that mean
gives each model's bootstrap distribution; the percentile interval of a difference between two models
says whether a lead is larger than what the choice of users alone would produce. Origins are strata
(each keeps its size), so a model is never credited with a different mix of months.

The draws come from one seeded generator in a fixed order: the same inputs give the same intervals.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError

_CHUNK = 50  # replicates per draw: bounds memory at _CHUNK x users counts


def bootstrap_rmse(predictions: Mapping[str, pd.DataFrame], *, split: str, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """``n_boot`` x models: each replicate's mean over ``split`` origins of per-origin RMSE.

    ``predictions[model]`` has columns ``split``, ``cutoff``, ``user_id``, ``y_true``, ``y_pred``, one row
    per user and origin, every model on the same rows in the same order (a backtest's predictions).
    """
    if not predictions:
        raise SpendlabError("bootstrap_rmse needs at least one model")
    names = list(predictions)
    first = predictions[names[0]]
    mask = (first["split"] == split).to_numpy()
    if not mask.any():
        return pd.DataFrame(np.full((n_boot, len(names)), np.nan), columns=names)
    for m in names[1:]:
        other = predictions[m]
        if len(other) != len(first) or not other["user_id"].equals(first["user_id"]) \
                or not other["cutoff"].equals(first["cutoff"]):
            raise SpendlabError(f"bootstrap: model {m} predicted other rows than {names[0]}; pairs need the same users")
    sq = np.column_stack([((predictions[m]["y_pred"].to_numpy(dtype=np.float64)
                            - predictions[m]["y_true"].to_numpy(dtype=np.float64)) ** 2)[mask] for m in names])
    cutoffs = first["cutoff"].to_numpy()[mask]
    rng = np.random.default_rng(seed)
    origins = list(pd.unique(cutoffs))
    total = np.zeros((n_boot, len(names)))
    for c in origins:
        e2 = sq[cutoffs == c]
        n = len(e2)
        done = 0
        while done < n_boot:
            k = min(_CHUNK, n_boot - done)
            idx = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
            counts = np.bincount(idx.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
            total[done:done + k] += np.sqrt(counts @ e2 / n)
            done += k
    return pd.DataFrame(total / len(origins), columns=names)


def delta_interval(boot: pd.DataFrame, a: str, b: str, *, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of RMSE(a) - RMSE(b) over the paired replicates (negative: ``a`` is better)."""
    d = (boot[a] - boot[b]).to_numpy(dtype=np.float64)
    if not np.isfinite(d).all():
        return float("nan"), float("nan")
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
