"""Rolling-origin backtests: the time split, training sets, metrics per origin.

For a cutoff ``c`` the model is trained on stacked examples (features at an earlier cutoff
``c_k``, spend in the ``horizon`` periods after ``c_k``) for the ``train_origins`` most recent
``c_k`` whose target window ends on or before ``c`` -- so every label is known at ``c`` -- and
then predicts the ``horizon`` periods after ``c`` from the features at ``c``. Features come from
:func:`spendlab.features.build_features`, which reads only through the as-of view; the target
of ``c`` itself is read only to score the forecast.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from spendlab.calendar import Freq, period_end, shift_period
from spendlab.errors import NoDataError, SpendlabError
from spendlab.forecast.intervals import SEGMENTS
from spendlab.models.registry import make_model

if TYPE_CHECKING:
    import duckdb
    from sklearn.base import BaseEstimator

    from spendlab.jobs.experiment import ExperimentConfig
    from spendlab.features import FeatureConfig
    from spendlab.io.load import Transactions

METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "wape", "top10_capture",
                            "rmse_new", "rmse_active", "rmse_lapsed")


# --- the time split ------------------------------------------------------------------------


def target_window_end(cutoff: dt.date, freq: Freq, horizon: int) -> dt.date:
    """Last day of the ``horizon`` periods after the period ending at ``cutoff``."""
    return period_end(shift_period(cutoff, freq, horizon), freq)


def training_origins(cutoff: dt.date, *, freq: Freq, horizon: int, n: int,
                     first_cutoff: dt.date | None = None) -> list[dt.date]:
    """The ``n`` latest earlier cutoffs whose target window ends on or before ``cutoff``.

    Oldest first. ``first_cutoff`` (the end of the data's first period) bounds them below.
    """
    out = []
    for j in range(horizon, horizon + n):
        c_k = period_end(shift_period(cutoff, freq, -j), freq)
        if first_cutoff is not None and c_k < first_cutoff:
            break
        assert target_window_end(c_k, freq, horizon) <= cutoff  # the label is known at the cutoff
        out.append(c_k)
    return sorted(out)


def segment_users(X: pd.DataFrame, *, active_window: int = 3) -> np.ndarray:
    """``new`` / ``active`` / ``lapsed`` per row of an as-of feature frame.

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


# --- metrics ---------------------------------------------------------------------------------


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


# --- features per cutoff, computed once per run ------------------------------------------------


class FeatureStore:
    """Features and targets per cutoff on one DuckDB connection, each computed once per run."""

    def __init__(self, con: "duckdb.DuckDBPyConnection", *, freq: Freq, horizon: int,
                 feature_config: "FeatureConfig | None" = None, view: str = "transactions") -> None:
        self.con, self.freq, self.horizon, self.view = con, freq, horizon, view
        self.feature_config = feature_config
        self._lock = threading.RLock()
        self._features: dict[dt.date, pd.DataFrame] = {}
        self._targets: dict[dt.date, pd.DataFrame] = {}
        lo, hi = con.execute(f'SELECT MIN(ts), MAX(ts) FROM "{view}"').fetchone()
        if lo is None:
            raise NoDataError(f"view {view!r} holds no transactions")
        self.first_day: dt.date = pd.Timestamp(lo).date()
        self.last_day: dt.date = pd.Timestamp(hi).date()

    @classmethod
    def from_source(cls, source: "Transactions | duckdb.DuckDBPyConnection | FeatureStore", *, freq: Freq,
                    horizon: int, feature_config: "FeatureConfig | None" = None) -> "FeatureStore":
        """A store over a ``Transactions``, a connection with a ``transactions`` view, or a store.

        A store is reused as it is; it is refused if it was built for another ``freq``/``horizon``, or
        for another feature config when ``feature_config`` is given.
        """
        if isinstance(source, FeatureStore):
            if (source.freq, source.horizon) != (freq, horizon):
                raise ValueError("the FeatureStore was built for another freq/horizon")
            from spendlab.features import FeatureConfig

            if feature_config is not None and (source.feature_config or FeatureConfig()) != feature_config:
                raise ValueError("the FeatureStore was built with another feature config")
            return source
        import duckdb

        if not isinstance(source, duckdb.DuckDBPyConnection):  # Transactions (a connection has .register too)
            from spendlab.io.load import connect

            con = connect()
            source.register(con)  # type: ignore[union-attr]
            return cls(con, freq=freq, horizon=horizon, feature_config=feature_config)
        return cls(source, freq=freq, horizon=horizon, feature_config=feature_config)  # type: ignore[arg-type]

    @property
    def first_cutoff(self) -> dt.date:
        return period_end(self.first_day, self.freq)

    def features(self, cutoff: dt.date) -> pd.DataFrame:
        with self._lock:  # one DuckDB query at a time: backtests may share the store across threads
            if cutoff not in self._features:
                from spendlab.features import build_features

                self._features[cutoff] = build_features(self.con, freq=self.freq, as_of=cutoff,
                                                        config=self.feature_config, view=self.view)
            return self._features[cutoff]

    def target(self, cutoff: dt.date) -> np.ndarray:
        """Target aligned row for row with :meth:`features` (READS PAST ``cutoff``)."""
        with self._lock:
            if cutoff not in self._targets:
                from spendlab.features import build_target

                self._targets[cutoff] = build_target(self.con, freq=self.freq, as_of=cutoff,
                                                     horizon=self.horizon, view=self.view)
        feats, tgt = self.features(cutoff), self._targets[cutoff]
        if not feats["user_id"].equals(tgt["user_id"]):
            aligned = feats[["user_id"]].merge(tgt, on="user_id", how="left")
            return aligned["target"].fillna(0.0).to_numpy(dtype=np.float64)
        return tgt["target"].to_numpy(dtype=np.float64)

    def check_cutoff(self, cutoff: dt.date) -> None:
        """The cutoff's target window must lie inside the data."""
        end = target_window_end(cutoff, self.freq, self.horizon)
        if end > self.last_day:
            raise SpendlabError(f"origin {cutoff}: its target window ends {end}, after the data ends "
                                f"({self.last_day}); drop the origin or use more data")
        if cutoff < self.first_cutoff:
            raise SpendlabError(f"origin {cutoff} is before the data's first period ends ({self.first_cutoff})")

    def training_set(self, cutoff: dt.date, n_origins: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Stacked (features at c_k, target after c_k) for the training origins of ``cutoff``."""
        origins = training_origins(cutoff, freq=self.freq, horizon=self.horizon, n=n_origins,
                                   first_cutoff=self.first_cutoff)
        if not origins:
            raise SpendlabError(f"origin {cutoff}: no earlier origin has a known target; "
                                "move the origins later or shorten the horizon")
        frames = [self.features(c) for c in origins]
        X = pd.concat(frames, ignore_index=True)
        y = np.concatenate([self.target(c) for c in origins])
        return X, y


# --- the backtest ------------------------------------------------------------------------------


@dataclass
class BacktestResult:
    """What one model did on a set of origins."""

    model_key: str
    params: dict[str, Any]
    per_origin: pd.DataFrame  # origin (step), split, cutoff, target_period, n_users, n_train + METRICS
    predictions: pd.DataFrame  # model, split, cutoff, target_period, user_id, segment, y_true, y_pred
    means: dict[str, float] = field(default_factory=dict)  # mean over origins, per split
    estimator: "BaseEstimator | None" = None  # fitted at the last origin
    feature_names: list[str] = field(default_factory=list)

    @property
    def residuals(self) -> pd.DataFrame:
        r = self.predictions[["split", "cutoff", "segment", "y_true", "y_pred"]].copy()
        r["residual"] = r["y_true"] - r["y_pred"]
        return r


def _fit_predict(model_key: str, params: dict[str, Any], X_train: pd.DataFrame, y_train: np.ndarray,
                 X_pred: pd.DataFrame) -> tuple["BaseEstimator", np.ndarray]:
    est = make_model(model_key, params)
    est.fit(X_train.drop(columns=["user_id"]), y_train)
    pred = np.asarray(est.predict(X_pred.drop(columns=["user_id"])), dtype=np.float64)
    if pred.shape != (len(X_pred),) or not np.isfinite(pred).all() or (pred < 0).any():
        raise SpendlabError(f"model {model_key!r} returned invalid predictions (need one finite value >= 0 per user)")
    return est, pred


def run_backtest(
    tx_or_con: "Transactions | duckdb.DuckDBPyConnection | FeatureStore",
    *,
    experiment: "ExperimentConfig",
    model_key: str,
    params: dict[str, Any] | None = None,
    origins: Literal["validation", "test", "all"] = "test",
    on_origin: Callable[[int, float], None] | None = None,
    feature_config: "FeatureConfig | None" = None,
) -> BacktestResult:
    """Backtest ``model_key`` on the experiment's ``origins``.

    ``on_origin(i, mean_rmse_so_far)`` is called after each origin (Optuna pruning hooks in here).
    ``params`` default to the experiment's ``params[model_key]``.
    """
    if feature_config is None and not isinstance(tx_or_con, FeatureStore) and experiment.features is not None:
        from spendlab.features import load_feature_config

        feature_config = load_feature_config(experiment.features)
    store = FeatureStore.from_source(tx_or_con, freq=experiment.freq, horizon=experiment.horizon,
                                     feature_config=feature_config)
    params = dict(experiment.params.get(model_key, {}) if params is None else params)
    val = set(experiment.origins("validation"))
    cutoffs = experiment.origins(origins)
    rows, preds = [], []
    est = None
    for i, cutoff in enumerate(cutoffs):
        store.check_cutoff(cutoff)
        X_train, y_train = store.training_set(cutoff, experiment.train_origins)
        X_c = store.features(cutoff)
        est, pred = _fit_predict(model_key, params, X_train, y_train, X_c)
        y_true = store.target(cutoff)  # read only now, to score
        seg = segment_users(X_c, active_window=experiment.segments.active_window)
        split = "validation" if cutoff in val else "test"
        target_period = shift_period(cutoff, experiment.freq, 1)
        metrics = origin_metrics(y_true, pred, seg)
        rows.append({"origin": i, "split": split, "cutoff": cutoff, "target_period": target_period,
                     "n_users": len(X_c), "n_train": len(X_train), **metrics})
        preds.append(pd.DataFrame({"model": model_key, "split": split, "cutoff": cutoff,
                                   "target_period": target_period, "user_id": X_c["user_id"].to_numpy(),
                                   "segment": seg, "y_true": y_true, "y_pred": pred}))
        if on_origin is not None:
            on_origin(i, float(np.mean([r["rmse"] for r in rows])))
    per_origin = pd.DataFrame(rows)
    feature_names = [c for c in store.features(cutoffs[-1]).columns if c != "user_id"]
    return BacktestResult(model_key=model_key, params=params, per_origin=per_origin,
                          predictions=pd.concat(preds, ignore_index=True), means=mean_metrics(per_origin),
                          estimator=est, feature_names=feature_names)


def mean_metrics(per_origin: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """``<split>_<metric>`` means over the origins of each split (NaN stays NaN: flagged later)."""
    out: dict[str, float] = {}
    for split, g in per_origin.groupby("split", sort=True):
        for m in metrics:
            if m in g.columns:
                vals = g[m].to_numpy(dtype=np.float64)
                out[f"{split}_{m}"] = float(vals.mean()) if np.isfinite(vals).all() else math.nan
    return out


def ensemble_result(members: dict[str, BacktestResult], weights: dict[str, float], *,
                    key: str = "ensemble") -> BacktestResult:
    """The ensemble's backtest composed from its members' predictions (deterministic members, so
    identical to refitting each member inside :class:`~spendlab.models.ensemble.EnsembleRegressor`)."""
    first = next(iter(members.values()))
    base = first.predictions[["split", "cutoff", "target_period", "user_id", "segment", "y_true"]].copy()
    pred = np.zeros(len(base))
    for m, w in weights.items():
        other = members[m].predictions
        if not other["user_id"].equals(first.predictions["user_id"]):
            raise SpendlabError(f"ensemble member {m} predicted a different population")
        pred += w * other["y_pred"].to_numpy()
    base.insert(0, "model", key)
    base["y_pred"] = np.clip(pred, 0.0, None)
    rows = []
    for i, ((split, cutoff), g) in enumerate(base.groupby(["split", "cutoff"], sort=False)):
        po = first.per_origin.loc[first.per_origin["cutoff"] == cutoff].iloc[0]
        rows.append({"origin": int(po["origin"]), "split": split, "cutoff": cutoff,
                     "target_period": po["target_period"], "n_users": len(g), "n_train": int(po["n_train"]),
                     **origin_metrics(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["segment"].to_numpy())})
    per_origin = pd.DataFrame(rows).sort_values("origin", ignore_index=True)
    return BacktestResult(model_key=key, params={"members": list(weights), "weights": dict(weights)},
                          per_origin=per_origin, predictions=base, means=mean_metrics(per_origin))
