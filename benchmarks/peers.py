"""Frequency-generic peers for the benchmarks: what a user would fit instead of spendlab, per cutoff.

The target of an experiment with ``freq`` (``month`` or ``week``, ISO weeks Monday-Sunday) and
``horizon`` H at a cutoff (the last day of a period) is each user's gross spend (positive amounts)
in the H periods after the cutoff's period. Every peer here sees only the transactions up to the
cutoff (``hist``) and predicts that target:

- :func:`actuals`: the target itself, computed with pandas periods (``M`` / ``W-SUN``), an oracle
  independent of spendlab's SQL;
- :func:`last_periods`: the spend of the last ``k * H`` periods divided by ``k`` (``k=1``: the last
  horizon-period, ``k=3``: the mean of the last 3 horizon-periods);
- :func:`peer_mlforecast`: one global LightGBM (mlforecast) on each user's zero-filled period series,
  on lags and a rolling mean, forecast recursively ``h=H`` periods and summed;
- :func:`peer_lifetimes`: BG/NBD + Gamma-Gamma over the days of the target window.

The monthly benchmarks (accuracy_cdnow.py, accuracy_synth.py) keep their own monthly functions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

#: pandas period alias and mlforecast ``freq`` of each spendlab frequency; a weekly series is labelled
#: by its ISO week's Sunday (``W-SUN``: the week ending on Sunday).
PERIOD = {"month": "M", "week": "W-SUN"}
MLF_FREQ = {"month": "MS", "week": "W-SUN"}


def periods(ts: pd.Series, freq: str) -> pd.Series:
    """The pandas period (calendar month, or ISO week Monday-Sunday) of each timestamp."""
    return ts.dt.to_period(PERIOD[freq])


def _positive_by_user(tx: pd.DataFrame, mask: pd.Series, users: np.ndarray) -> np.ndarray:
    win = tx[mask & (tx["amount"] > 0)]
    return win.groupby("user_id")["amount"].sum().reindex(users, fill_value=0.0).to_numpy(dtype=np.float64)


def actuals(tx: pd.DataFrame, cutoff: dt.date, users: np.ndarray, freq: str, horizon: int) -> np.ndarray:
    """Gross spend of each user in the ``horizon`` periods after the period of ``cutoff`` (pandas oracle)."""
    p = periods(tx["ts"], freq)
    now = pd.Period(cutoff, PERIOD[freq])
    return _positive_by_user(tx, (p > now) & (p <= now + horizon), users)


def last_periods(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, freq: str, horizon: int,
                 k: int = 1) -> np.ndarray:
    """Gross spend of the last ``k * horizon`` periods up to the cutoff's period, divided by ``k``."""
    p = periods(hist["ts"], freq)
    now = pd.Period(cutoff, PERIOD[freq])
    return _positive_by_user(hist, (p > now - k * horizon) & (p <= now), users) / k


def period_panel(hist: pd.DataFrame, cutoff: dt.date, freq: str) -> pd.DataFrame:
    """Zero-filled gross spend per user and period, from the user's first period to the cutoff's.

    Returns ``unique_id, ds, y`` (mlforecast's long format); ``ds`` is the month's first day, or the
    ISO week's Sunday.
    """
    how = "start" if freq == "month" else "end"
    p = periods(hist["ts"], freq)
    h = hist.assign(ds=p.dt.to_timestamp(how=how).dt.normalize(), y=hist["amount"].clip(lower=0))
    m = h.groupby(["user_id", "ds"], as_index=False)["y"].sum()
    last = pd.Period(cutoff, PERIOD[freq]).to_timestamp(how=how).normalize()
    grid = pd.date_range(m["ds"].min(), last, freq=MLF_FREQ[freq])
    first = m.groupby("user_id")["ds"].min()
    full = pd.MultiIndex.from_product([first.index, grid], names=["user_id", "ds"]).to_frame(index=False)
    full = full[full["ds"] >= full["user_id"].map(first)]
    out = full.merge(m, on=["user_id", "ds"], how="left").fillna({"y": 0.0})
    return out.rename(columns={"user_id": "unique_id"})


def peer_mlforecast(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, freq: str, horizon: int,
                    lags: int = 8, window: int = 4) -> np.ndarray:
    """Global LightGBM on lags 1..``lags`` and a ``window``-period rolling mean of lag 1; the sum of h=horizon."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    panel = period_panel(hist, cutoff, freq)
    fc = MLForecast(models={"lgb": LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=31,
                                                 random_state=0, n_jobs=1, verbose=-1)},
                    freq=MLF_FREQ[freq], lags=list(range(1, lags + 1)),
                    lag_transforms={1: [RollingMean(window_size=window)]})
    fc.fit(panel, id_col="unique_id", time_col="ds", target_col="y", static_features=[], dropna=False)
    pred = fc.predict(h=horizon)
    total = pred["lgb"].clip(lower=0).groupby(pred["unique_id"]).sum()
    return total.reindex(users).fillna(0.0).to_numpy(dtype=np.float64)


def window_days(cutoff: dt.date, freq: str, horizon: int) -> int:
    """Days of the target window: ``7 * horizon`` for weeks, the days of the next ``horizon`` months."""
    now = pd.Period(cutoff, PERIOD[freq])
    return int(((now + horizon).end_time.normalize() - now.end_time.normalize()).days)


def peer_lifetimes(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, freq: str, horizon: int,
                   penalized: list[tuple[dt.date, float]]) -> np.ndarray:
    """BG/NBD + Gamma-Gamma over the target window's days (accuracy_synth's L2 fallback when it does not converge)."""
    from accuracy_synth import lifetimes_peer

    return lifetimes_peer(hist, cutoff, users, window_days(cutoff, freq, horizon), penalized)
