"""Backtest several registry models on one store, a few at a time on threads, results in order."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from spendlab.features.store import FeatureStore
from spendlab.forecast.backtest import BacktestResult, run_backtest
from spendlab.forecast.protocol import ExperimentConfig
from spendlab.models.registry import make_model, model_params


@dataclass
class _Outcome:
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


def _backtest_one(store: FeatureStore, cfg: ExperimentConfig, key: str, params: dict[str, Any], tuned: bool,
                  fold_params: Mapping[dt.date, dict[str, Any]] | None = None) -> _Outcome:
    started, t0 = time.time(), time.perf_counter()
    try:
        res = run_backtest(store, experiment=cfg, model_key=key, params=params, origins="all",
                           params_by_cutoff=fold_params)
    except Exception as exc:  # raised again on the logging thread, inside the model's run
        return _Outcome(key, tuned, error=exc, seconds=time.perf_counter() - t0, started=started)
    return _Outcome(key, tuned, res, model_params(make_model(key, params)), time.perf_counter() - t0,
                    started=started)


def backtest_models(store: FeatureStore, cfg: ExperimentConfig, resolved: dict[str, tuple[dict[str, Any], bool]], *,
                    jobs: int, progress: Any | None = None,
                    fold_params: Mapping[str, Mapping[dt.date, dict[str, Any]]] | None = None) -> Iterator[_Outcome]:
    """Backtest every model of ``resolved`` (key -> (params, tuned)), yielding outcomes in its order.
    ``fold_params[key][c]``: the parameters that score validation origin ``c`` (tuned without it).

    The first backtest builds every cutoff's features and targets (cached in the store); the others
    then run ``jobs`` at a time on threads: each fits single-threaded (LightGBM n_jobs=1) and releases
    the GIL in LightGBM, numpy and DuckDB. Each outcome is yielded as soon as it and those before it
    are done, so the caller's logging overlaps the backtests still running. Backtests not yet started
    are cancelled when the caller stops early (a failure).
    """
    keys = list(resolved)
    total = len(keys)

    def run(key: str) -> _Outcome:
        params, tuned = resolved[key]
        _say(progress, f"[{keys.index(key) + 1}/{total}] backtesting {key}{' (tuned params)' if tuned else ''}")
        return _backtest_one(store, cfg, key, params, tuned, (fold_params or {}).get(key))

    first = run(keys[0])
    yield first
    if first.error is not None:
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="spendlab-backtest") as pool:
        # Tuned models first: a search tends to land on bigger models (CDNOW: 350 trees against 150,
        # the longest backtest), and the longest job should start first so both threads finish together.
        submitted = {key: pool.submit(run, key) for key in sorted(keys[1:], key=lambda k: not resolved[k][1])}
        try:
            for key in keys[1:]:
                yield submitted[key].result()
        finally:
            for future in submitted.values():
                future.cancel()


def _say(progress: Any | None, msg: str) -> None:
    if progress is not None:
        progress(msg)
