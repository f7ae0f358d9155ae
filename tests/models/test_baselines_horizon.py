"""A target of several periods: every model predicts the window's spend, not one period's.

The baselines sum their per-period forecast over ``horizon`` periods (hand-computed fixture), the plan
hands every model that takes it the experiment's horizon, and on a synthetic weekly world each
horizon-aware model's mean forecast is of the target's size for horizons 1 and 4 (a one-period forecast
of a four-week target is a quarter of it).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spendlab.errors import ConfigError
from spendlab.features.config import HAS_LAST_YEAR, SAME_PERIOD_LAST_YEAR
from spendlab.models.registry import make_model


def _lags() -> pd.DataFrame:
    """Two users: A spends more every period (30 last, 20, 10 before), B a flat 5; A has last year's 7."""
    return pd.DataFrame({"spend_lag1": [30.0, 5.0], "spend_lag2": [20.0, 5.0], "spend_lag3": [10.0, 5.0],
                         "spend_lag4": [0.0, 5.0], SAME_PERIOD_LAST_YEAR: [7.0, 0.0], HAS_LAST_YEAR: [1.0, 0.0]})


@pytest.mark.parametrize("key,params,expected", [
    ("last_period", {"horizon": 1}, [30.0, 5.0]),
    ("last_period", {"horizon": 2}, [50.0, 10.0]),       # the last two periods
    ("last_period", {"horizon": 4}, [60.0, 20.0]),
    ("moving_average", {"window": 3, "horizon": 1}, [20.0, 5.0]),
    ("moving_average", {"window": 3, "horizon": 4}, [80.0, 20.0]),
    # line through (t=-2, 10), (t=-1, 20), (t=0, 30): step 1 -> 40, step 2 -> 50; B stays at 5.
    ("per_user_linear", {"window": 3, "horizon": 1}, [40.0, 5.0]),
    ("per_user_linear", {"window": 3, "horizon": 2}, [90.0, 10.0]),
    ("seasonal_naive", {"fallback_window": 3, "horizon": 4}, [28.0, 20.0]),  # 4 x last year's 7; 4 x mean 5
    ("zero", {}, [0.0, 0.0]),
])
def test_a_baseline_sums_its_per_period_forecast_over_the_horizon(key: str, params: dict, expected: list) -> None:
    X = _lags()
    np.testing.assert_allclose(make_model(key, params).fit(X).predict(X), expected)


def test_last_period_refuses_a_horizon_longer_than_its_lags() -> None:
    with pytest.raises(ValueError, match="spend_lag1..5"):
        make_model("last_period", {"horizon": 5}).fit(_lags())


def _config(horizon: int, params: dict | None = None) -> object:
    from spendlab.forecast.protocol import ExperimentConfig

    return ExperimentConfig.model_validate({
        "name": "h", "dataset": {"input": "x.csv", "format": "generic"}, "freq": "week", "horizon": horizon,
        "validation": {"start": "2023-09-24", "end": "2023-10-15"},
        "test": {"start": "2023-11-12", "end": "2023-12-03"}, "params": params or {}})


def test_the_plan_gives_every_model_that_takes_it_the_experiments_horizon(tmp_path: Path) -> None:
    from spendlab.jobs.plan import plan_model

    for key in ("last_period", "moving_average", "per_user_linear", "seasonal_naive"):
        plan = plan_model(_config(4), key, tmp_path)
        assert plan.resolved()["horizon"] == 4 and plan.sources["horizon"] == "experiment"
        assert make_model(key, plan.params).horizon == 4
    assert "horizon" not in plan_model(_config(4), "lightgbm", tmp_path).resolved()
    assert plan_model(_config(4, {"last_period": {"horizon": 4}}), "last_period", tmp_path).params["horizon"] == 4
    with pytest.raises(ConfigError, match="horizon is 2, but the experiment's horizon is 4"):
        plan_model(_config(4, {"last_period": {"horizon": 2}}), "last_period", tmp_path)


@pytest.fixture(scope="module")
def weekly_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spendlab.jobs.datasets import synth_transactions

    path = tmp_path_factory.mktemp("weekly") / "tx.parquet"
    synth_transactions(path, users=600, months=10, start="2023-01-01", seed=3)
    return path


@pytest.mark.parametrize("horizon", [1, 4])
@pytest.mark.parametrize("key", ["last_period", "moving_average", "per_user_linear", "seasonal_naive", "bgnbd_gg"])
def test_every_horizon_aware_model_forecasts_the_whole_window(weekly_world: Path, key: str, horizon: int,
                                                              tmp_path: Path) -> None:
    from spendlab.features.store import FeatureStore
    from spendlab.io import load_transactions
    from spendlab.jobs.plan import plan_model

    store = FeatureStore.from_source(load_transactions(weekly_world, "generic"), freq="week", horizon=horizon)
    fit_at, score_at = dt.date(2023, 7, 2), dt.date(2023, 8, 27)  # Sundays: ISO week ends
    X_fit = store.features(fit_at).drop(columns=["user_id"])
    est = make_model(key, plan_model(_config(horizon), key, tmp_path).params).fit(X_fit, store.target(fit_at))
    pred = est.predict(store.features(score_at).drop(columns=["user_id"]))
    ratio = pred.mean() / store.target(score_at).mean()
    assert 0.6 < ratio < 1.6, f"{key}, horizon {horizon}: mean forecast / mean target = {ratio:.3f}"
