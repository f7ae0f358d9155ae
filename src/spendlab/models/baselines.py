"""Baselines that read the as-of lag columns: the rows every learned model must beat.

None of them learns from ``y``; ``fit`` only records which columns it will read, so the
scikit-learn contract (``clone``, ``NotFittedError`` before fit) holds like any estimator.

``horizon`` is the number of periods the target covers (the experiment's ``horizon``, which the plan
passes to every model that takes it): a per-period forecast is summed over that window, so a
baseline predicts the same quantity as the target (e.g. four weeks of spend, not one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from spendlab.features.config import HAS_LAST_YEAR, SAME_PERIOD_LAST_YEAR, rolling_name
from spendlab.models.base import as_frame, lag_columns, non_negative, require


class _LagBaseline(RegressorMixin, BaseEstimator):
    """Common ``fit``: remember the columns; subclasses implement ``_predict``."""

    def _columns(self, X: pd.DataFrame) -> list[str]:
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: object = None) -> _LagBaseline:
        frame = as_frame(X)
        self.columns_ = self._columns(frame)
        self.n_features_in_ = frame.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "columns_")
        frame = as_frame(X)
        require(frame, self.columns_, type(self).__name__)
        return non_negative(self._predict(frame))

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


class ZeroForecaster(_LagBaseline):
    """Predicts no spend for everyone (the floor: its RMSE is the RMS of next-period spend)."""

    def _columns(self, X: pd.DataFrame) -> list[str]:
        return []

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))


class LastPeriod(_LagBaseline):
    """The next ``horizon`` periods = the last ``horizon`` periods (``spend_lag1`` when ``horizon`` is 1)."""

    def __init__(self, horizon: int = 1) -> None:
        self.horizon = horizon

    def _columns(self, X: pd.DataFrame) -> list[str]:
        cols = lag_columns(X, self.horizon)
        if len(cols) < self.horizon:
            raise ValueError(f"last_period(horizon={self.horizon}) needs spend_lag1..{self.horizon}")
        return cols

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.columns_].to_numpy(dtype=np.float64).sum(axis=1)


class MovingAverage(_LagBaseline):
    """Predict the mean spend of the last ``window`` periods, for each of the ``horizon`` periods.

    ``spend_rolling_mean_lag1_window{window}`` when the frame has it (it averages only the periods a
    user has existed), else the mean of the lag columns.
    """

    def __init__(self, window: int = 3, horizon: int = 1) -> None:
        self.window = window
        self.horizon = horizon

    def _columns(self, X: pd.DataFrame) -> list[str]:
        rolling = rolling_name("spend", "mean", self.window)
        if rolling in X.columns:
            return [rolling]
        cols = lag_columns(X, self.window)
        if len(cols) < self.window:
            raise ValueError(f"moving_average(window={self.window}) needs {rolling} or spend_lag1..{self.window}")
        return cols

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.horizon * X[self.columns_].to_numpy(dtype=np.float64).mean(axis=1)


class SeasonalNaive(_LagBaseline):
    """Same period last year where the user has that history, else the ``fallback_window`` mean.

    Either per-period value counts ``horizon`` times for a target of several periods.
    """

    def __init__(self, fallback_window: int = 3, horizon: int = 1) -> None:
        self.fallback_window = fallback_window
        self.horizon = horizon

    def _columns(self, X: pd.DataFrame) -> list[str]:
        return [SAME_PERIOD_LAST_YEAR, HAS_LAST_YEAR, *lag_columns(X, self.fallback_window)]

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        seasonal = X[SAME_PERIOD_LAST_YEAR].to_numpy(dtype=np.float64)
        has = X[HAS_LAST_YEAR].to_numpy(dtype=np.float64) > 0.5
        fallback = X[self.columns_[2:]].to_numpy(dtype=np.float64).mean(axis=1)
        return self.horizon * np.where(has, seasonal, fallback)


class PerUserLinear(_LagBaseline):
    """A least-squares line through each user's last ``window`` period totals, summed over the next ``horizon`` steps.

    The closed form is vectorised over users: with t = -(k-1) .. 0 for lag k .. lag1, the slope
    is cov(t, s) / var(t) and the forecast of step h is mean(s) + slope * (h - mean(t)); the sum over
    h = 1 .. horizon is clipped at 0.
    """

    def __init__(self, window: int = 6, horizon: int = 1) -> None:
        self.window = window
        self.horizon = horizon

    def _columns(self, X: pd.DataFrame) -> list[str]:
        cols = lag_columns(X, self.window)
        if len(cols) < 2:
            raise ValueError("per_user_linear needs at least spend_lag1 and spend_lag2")
        return cols

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        s = X[self.columns_].to_numpy(dtype=np.float64)  # column j = lag j+1
        k = s.shape[1]
        t = -np.arange(k, dtype=np.float64)  # lag1 at t=0, lag2 at t=-1, ...
        tc = t - t.mean()
        slope = (s - s.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
        steps = np.arange(1, self.horizon + 1, dtype=np.float64)
        return self.horizon * s.mean(axis=1) + slope * float((steps - t.mean()).sum())
