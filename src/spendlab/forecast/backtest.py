"""Rolling-origin backtests: one model at a time, or several on threads with results in order.

For a cutoff ``c`` the model is trained on stacked examples (features at an earlier cutoff
``c_k``, spend in the ``horizon`` periods after ``c_k``) for the ``train_origins`` most recent
``c_k`` whose target window ends on or before ``c`` -- so every label is known at ``c`` -- and
then predicts the ``horizon`` periods after ``c`` from the features at ``c`` (users without any purchase
by ``c`` get the registered scorer's cold-start fallback, :mod:`spendlab.forecast.cold_start`). Features come from
:func:`spendlab.features.build_features`, which reads only through the as-of view; the target
of ``c`` itself is read only to score the forecast.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from spendlab.calendar import Freq, shift_period
from spendlab.errors import SpendlabError
from spendlab.models.registry import fit_cost, make_model, model_params

if TYPE_CHECKING:
    import duckdb
    from sklearn.base import BaseEstimator

    from spendlab.features import FeatureConfig
    from spendlab.io.load import Transactions
from spendlab.features.config import at_origin
from spendlab.features.segments import segment_users
from spendlab.features.store import FeatureStore
from spendlab.forecast.cold_start import apply_fallback, cold_users, training_fallback
from spendlab.forecast.metrics import mean_metrics, origin_metrics
from spendlab.forecast.sampling import training_rows, weight_kwargs
from spendlab.forecast.split import training_set
from spendlab.threads import submit
from spendlab.timing import timed


@dataclass
class BacktestResult:
    """What one model did on a set of origins."""

    model_key: str
    params: dict[str, Any]
    per_origin: pd.DataFrame  # origin (step), split, cutoff, target_period, n_users, n_train + METRICS
    predictions: pd.DataFrame  # model, split, cutoff, target_period, user_id, segment, y_true, y_pred
    means: dict[str, float] = field(default_factory=dict)  # mean over origins, per split
    estimator: BaseEstimator | None = None  # fitted at the last origin
    feature_names: list[str] = field(default_factory=list)

    @property
    def residuals(self) -> pd.DataFrame:
        """Return the predictions with their residual ``y_true - y_pred``."""
        r = self.predictions[["split", "cutoff", "segment", "y_true", "y_pred"]].copy()
        r["residual"] = r["y_true"] - r["y_pred"]
        return r


def _fit_predict(model_key: str, params: dict[str, Any], X_train: pd.DataFrame, y_train: np.ndarray,
                 X_pred: pd.DataFrame, cutoff: dt.date,
                 sample_weight: np.ndarray | None = None) -> tuple[BaseEstimator, np.ndarray]:
    est = make_model(model_key, params)
    with timed("fit", model_key, cutoff):
        est.fit(X_train.drop(columns=["user_id"]), y_train, **weight_kwargs(sample_weight))
    with timed("predict", model_key, cutoff):
        pred = np.asarray(est.predict(at_origin(X_pred.drop(columns=["user_id"]), cutoff)), dtype=np.float64)
    if pred.shape != (len(X_pred),) or not np.isfinite(pred).all() or (pred < 0).any():
        raise SpendlabError(f"model {model_key!r} returned invalid predictions (need one finite value >= 0 per user)")
    return est, pred


class BacktestSpec(Protocol):
    """The only fields a backtest reads: an :class:`~spendlab.forecast.protocol.ExperimentConfig` is one."""

    freq: Freq
    horizon: int
    train_origins: Any  # a count, "all", or the first training cutoff (forecast.split.training_set)
    params: dict[str, dict[str, Any]]
    segments: Any  # .active_window: lags that make a user "active"
    interval_level: float  # the cold-start fallback's interval level
    train_zero_fraction: float  # share of zero-target rows the pooled models fit on (forecast.sampling)
    seed: int

    def origins(self, which: Literal["validation", "test", "all"]) -> list[dt.date]:
        """Return the cutoffs of the ``which`` origins."""


def run_backtest(
    tx_or_con: Transactions | duckdb.DuckDBPyConnection | FeatureStore,
    *,
    experiment: BacktestSpec,
    model_key: str,
    params: dict[str, Any] | None = None,
    origins: Literal["validation", "test", "all"] = "test",
    on_origin: Callable[[int, float], None] | None = None,
    feature_config: FeatureConfig | None = None,
    params_by_cutoff: Mapping[dt.date, dict[str, Any]] | None = None,
    origin_jobs: int = 1,
) -> BacktestResult:
    """Backtest ``model_key`` on the experiment's ``origins``.

    ``on_origin(i, mean_rmse_so_far)`` is called after each origin (Optuna pruning hooks in here).
    ``params`` default to the experiment's ``params[model_key]``; ``params_by_cutoff[c]`` replaces them
    at origin ``c`` (tuned settings chosen without that validation origin: cross-fitting).
    ``origin_jobs`` > 1 fits that many origins at a time on threads (each fit single-threaded, so the
    numbers are those of one origin at a time); it is ignored when ``on_origin`` is given, which needs
    the origins in order.
    """
    store = FeatureStore.from_source(tx_or_con, freq=experiment.freq, horizon=experiment.horizon,
                                     feature_config=feature_config)
    params = dict(experiment.params.get(model_key, {}) if params is None else params)
    val = set(experiment.origins("validation"))
    cutoffs = experiment.origins(origins)
    for cutoff in cutoffs:
        store.check_cutoff(cutoff)

    def one(i: int, cutoff: dt.date) -> tuple[dict[str, Any], pd.DataFrame, BaseEstimator]:
        split = "validation" if cutoff in val else "test"
        return _one_origin(store, experiment, model_key, dict((params_by_cutoff or {}).get(cutoff, params)),
                           i, cutoff, split)

    if origin_jobs > 1 and on_origin is None and len(cutoffs) > 1:
        with ThreadPoolExecutor(max_workers=origin_jobs, thread_name_prefix="spendlab-origin") as pool:
            futures = [submit(pool, one, i, c) for i, c in enumerate(cutoffs)]
            done = [f.result() for f in futures]
    else:
        done = []
        for i, cutoff in enumerate(cutoffs):
            done.append(one(i, cutoff))
            if on_origin is not None:
                on_origin(i, float(np.mean([r["rmse"] for r, _, _ in done])))
    per_origin = pd.DataFrame([r for r, _, _ in done])
    feature_names = [c for c in store.features(cutoffs[-1]).columns if c != "user_id"]
    return BacktestResult(model_key=model_key, params=params, per_origin=per_origin,
                          predictions=pd.concat([p for _, p, _ in done], ignore_index=True),
                          means=mean_metrics(per_origin), estimator=done[-1][2], feature_names=feature_names)


def _one_origin(store: FeatureStore, experiment: BacktestSpec, model_key: str, params: dict[str, Any], i: int,
                cutoff: dt.date, split: str) -> tuple[dict[str, Any], pd.DataFrame, BaseEstimator]:
    """Fit at one origin and score its forecast: the per-origin row, the predictions and the estimator."""
    with timed("training_set", model_key, cutoff):
        X_train, y_train = training_set(store, cutoff, experiment.train_origins)
        X_fit, y_fit, w_fit = training_rows(model_key, X_train, y_train, seed=getattr(experiment, "seed", 0),
                                            zero_fraction=getattr(experiment, "train_zero_fraction", 1.0))
    X_c = store.features(cutoff)
    est, pred = _fit_predict(model_key, params, X_fit, y_fit, X_c, cutoff, w_fit)
    fallback = training_fallback(X_train, y_train, active_window=experiment.segments.active_window,
                                 level=experiment.interval_level)  # the registered scorer's fallback
    pred = apply_fallback(pd.DataFrame({"prediction": pred}), cold_users(X_c), fallback)["prediction"].to_numpy()
    y_true = store.target(cutoff)  # read only now, to score
    with timed("metrics", model_key, cutoff):
        seg = segment_users(X_c, active_window=experiment.segments.active_window)
        metrics = origin_metrics(y_true, pred, seg)
    target_period = shift_period(cutoff, experiment.freq, 1)
    row = {"origin": i, "split": split, "cutoff": cutoff, "target_period": target_period,
           "n_users": len(X_c), "n_train": len(X_train),
           "train_spend_rate": float(np.mean(np.asarray(y_train) > 0)), **metrics}
    preds = pd.DataFrame({"model": model_key, "split": split, "cutoff": cutoff, "target_period": target_period,
                          "user_id": X_c["user_id"].to_numpy(), "segment": seg, "y_true": y_true, "y_pred": pred})
    return row, preds, est


@dataclass
class BacktestOutcome:
    """One model's backtest on every origin (or the exception it raised), and what it cost."""

    key: str
    tuned: bool
    result: BacktestResult | None = None
    estimator_params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: BaseException | None = None
    started: float = 0.0  # epoch seconds: the model's MLflow run is dated by its backtest

    @property
    def timing(self) -> tuple[float, float]:
        """(start, end) of the backtest, epoch seconds."""
        return self.started, self.started + self.seconds


def backtest_one(store: FeatureStore, cfg: BacktestSpec, key: str, params: dict[str, Any], tuned: bool,
                 fold_params: Mapping[dt.date, dict[str, Any]] | None = None, origin_jobs: int = 1) -> BacktestOutcome:
    """Backtest one model on every origin (``origin_jobs`` at a time); an exception is returned, not raised."""
    started, t0 = time.time(), time.perf_counter()
    try:
        res = run_backtest(store, experiment=cfg, model_key=key, params=params, origins="all",
                           params_by_cutoff=fold_params, origin_jobs=origin_jobs)
    except Exception as exc:  # raised again on the logging thread, inside the model's run
        return BacktestOutcome(key, tuned, error=exc, seconds=time.perf_counter() - t0, started=started)
    return BacktestOutcome(key, tuned, res, model_params(make_model(key, params)), time.perf_counter() - t0,
                    started=started)


def backtest_models(store: FeatureStore, cfg: BacktestSpec, resolved: dict[str, tuple[dict[str, Any], bool]], *,
                    jobs: int, progress: Any | None = None,
                    fold_params: Mapping[str, Mapping[dt.date, dict[str, Any]]] | None = None,
                    ) -> Iterator[BacktestOutcome]:
    """Backtest every model of ``resolved`` (key -> (params, tuned)), yielding outcomes in its order.

    ``fold_params[key][c]``: the parameters that score validation origin ``c`` (tuned without it).

    The first backtest builds every cutoff's features and targets (cached in the store); the others
    then run ``jobs`` at a time on threads: each fits single-threaded (LightGBM n_jobs=1, BLAS capped at
    one thread: a Tweedie GLM's solver took 3x the CPU with two BLAS threads beside another backtest)
    and releases the GIL in LightGBM, numpy and DuckDB. Each outcome is yielded as soon as it and those
    before it are done, so the caller's logging overlaps the backtests still running. Backtests not yet started
    are cancelled when the caller stops early (a failure).
    """
    keys = list(resolved)
    total = len(keys)

    def run(key: str, origin_jobs: int = 1) -> BacktestOutcome:
        params, tuned = resolved[key]
        say_progress(progress, f"[{keys.index(key) + 1}/{total}] backtesting {key}{' (tuned params)' if tuned else ''}")
        return backtest_one(store, cfg, key, params, tuned, (fold_params or {}).get(key), origin_jobs)

    with threadpool_limits(limits=1, user_api="blas"):  # process-wide, so set once for every thread
        yield from _run_all(keys, run, jobs, resolved)


def _run_all(keys: list[str], run: Callable[..., BacktestOutcome], jobs: int,
             resolved: dict[str, tuple[dict[str, Any], bool]]) -> Iterator[BacktestOutcome]:
    """Return the first backtest alone (it builds the features), then the others ``jobs`` at a time, in order.

    The others start costliest first (tuned, then :func:`~spendlab.models.registry.fit_cost`); the
    outcomes are still yielded in ``keys`` order.

    The first backtest runs ``jobs`` origins at a time: alone, it would leave the other cores idle (and a
    one-model experiment is only that backtest).
    """
    first = run(keys[0], jobs)
    yield first
    if first.error is not None:
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="spendlab-backtest") as pool:
        # Longest first, so both threads finish together: tuned models (a search tends to land on bigger
        # models: CDNOW 350 trees against 150), then by expected cost (registry.FIT_COST).
        # Each task runs in a copy of this context: it records into the job's timings, if any.
        order = sorted(keys[1:], key=lambda k: (not resolved[k][1], -fit_cost(k)))
        submitted = {key: submit(pool, run, key) for key in order}
        try:
            for key in keys[1:]:
                yield submitted[key].result()
        finally:
            for future in submitted.values():
                future.cancel()


def say_progress(progress: Callable[[str], None] | None, msg: str) -> None:
    """Send ``msg`` to a ``progress(str)`` callback, if there is one.

    Parameters
    ----------
    progress : callable or None
        The job's status-line callback.
    msg : str
        One status line; ``[i/n] ...`` lines mark step i of n.
    """
    if progress is not None:
        progress(msg)
