"""Segment the users of an as-of feature frame: new, active, lapsed.

The segments are read by the backtests, the scorer and the stacking ensemble, which weighs its
members per segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError

SEGMENTS: tuple[str, ...] = ("new", "active", "lapsed")


def segment_users(X: pd.DataFrame, *, active_window: int = 3) -> np.ndarray:
    """Label each row of an as-of feature frame ``new``, ``active`` or ``lapsed``.

    - **new**: the user's first period is the as-of period (``n_periods == 1``);
    - **active**: otherwise, spend in at least one of the last ``active_window`` periods
      (``spend_lag1 .. spend_lag{active_window}``);
    - **lapsed**: no spend in the last ``active_window`` periods.
    """
    lags = [f"spend_lag{i}" for i in range(1, active_window + 1)]
    missing = [c for c in ("n_periods", *lags) if c not in X.columns]
    if missing:
        raise SpendlabError(f"segment_users needs feature columns {missing}")
    new = X["n_periods"].to_numpy() <= 1
    recent = (X[lags].to_numpy(dtype=np.float64) > 0).any(axis=1)
    return np.where(new, "new", np.where(recent, "active", "lapsed"))
