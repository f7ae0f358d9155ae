"""One conformance test over every registry key (sktime's test_all_forecasters pattern)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from spendlab.models.registry import MODELS, SEARCH_SPACES, make_model


def synthetic_feature_frame(n_users: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """An as-of feature frame shaped like spendlab.features' output, with a next-period target.

    A fifth of the users have one period of history only (every lag but lag1 is zero).
    """
    rng = np.random.default_rng(seed)
    k = 6
    active = rng.random((n_users, k)) < 0.4
    lags = np.where(active, rng.gamma(2.0, 20.0, (n_users, k)), 0.0)
    newcomer = np.arange(n_users) % 5 == 0
    lags[newcomer, 1:] = 0.0
    lags[newcomer, 0] = rng.gamma(2.0, 20.0, newcomer.sum())
    frame = pd.DataFrame({"user_id": [f"u{i:04d}" for i in range(n_users)]})
    for j in range(k):
        frame[f"spend_lag{j + 1}"] = lags[:, j]
    frame["spend_rolling_mean_lag1_window3"] = lags[:, :3].mean(axis=1)
    frame["n_periods"] = np.where(newcomer, 1.0, float(k))
    frame["spend_same_period_last_year"] = np.where(newcomer, 0.0, rng.gamma(1.0, 15.0, n_users))
    frame["has_last_year"] = (~newcomer & (np.arange(n_users) % 2 == 0)).astype(float)
    n_days = (active.sum(axis=1) + newcomer).astype(float)
    frame["bgnbd_frequency"] = np.maximum(n_days - 1, 0)
    frame["bgnbd_T_days"] = np.where(newcomer, 20.0, 180.0)
    frame["bgnbd_recency_days"] = np.where(frame["bgnbd_frequency"] > 0, frame["bgnbd_T_days"] * 0.6, 0.0)
    frame["bgnbd_monetary"] = np.where(frame["bgnbd_frequency"] > 0, lags.sum(axis=1) / np.maximum(n_days, 1), 0.0)
    frame["days_since_last_purchase"] = rng.integers(0, 180, n_users).astype(float)
    frame["target_days_in_period"] = 30.0
    y = np.where(rng.random(n_users) < 0.35, rng.gamma(2.0, 25.0, n_users), 0.0) + 0.3 * lags[:, 0]
    return frame, y


@pytest.mark.parametrize("key", sorted(MODELS))
def test_every_registered_model_fits_predicts_one_non_negative_float_per_user(key: str) -> None:
    X, y = synthetic_feature_frame()
    before = X.copy()
    est = make_model(key)
    with pytest.raises(NotFittedError):
        est.predict(X)
    fresh = clone(est)
    assert fresh is not est and fresh.get_params().keys() == est.get_params().keys()
    assert fresh.fit(X, y) is fresh
    pred = fresh.predict(X)
    pd.testing.assert_frame_equal(X, before)  # inputs never mutated
    assert pred.shape == (len(X),) and pred.dtype == np.float64
    assert np.isfinite(pred).all() and (pred >= 0).all()
    # Users with a single period of history get a prediction like everyone else.
    newcomers = X["spend_lag2"].eq(0) & X["spend_lag3"].eq(0) & X["spend_lag1"].gt(0)
    assert np.isfinite(pred[newcomers.to_numpy()]).all()
    # A clone of a fitted model is unfitted again.
    with pytest.raises(NotFittedError):
        clone(fresh).predict(X)


@pytest.mark.parametrize("key", sorted(SEARCH_SPACES))
def test_search_space_params_build_a_valid_model(key: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = SEARCH_SPACES[key](trial)
    X, y = synthetic_feature_frame(120)
    pred = make_model(key, params).fit(X, y).predict(X)
    assert (pred >= 0).all() and len(pred) == len(X)


@pytest.mark.parametrize("key", sorted(SEARCH_SPACES))
def test_search_space_holds_the_factory_defaults(key: str) -> None:
    """`spendlab tune` enqueues the current settings as its first trial: each must lie inside its distribution.

    A default outside its range (or off its step) runs anyway, but Optuna warns on every tune and its samplers
    model that trial outside the space, so the baseline the study measures is not a point the space can draw.
    """
    import optuna

    from spendlab.models.registry import factory_defaults

    trial = optuna.trial.FixedTrial(factory_defaults(key))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FixedTrial warns of a fixed value its distribution cannot draw
        params = SEARCH_SPACES[key](trial)
    assert params == {name: factory_defaults(key)[name] for name in params}


def test_search_space_keys_are_registered_models() -> None:
    assert set(SEARCH_SPACES) <= set(MODELS)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_predict_threads_reach_lightgbm_and_leave_predictions_unchanged(key: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch scoring's ``predict_threads``: same predictions; LightGBM members get the thread count."""
    from lightgbm import LGBMRegressor

    from spendlab.models.base import predict_threads

    X, y = synthetic_feature_frame()
    est = make_model(key).fit(X, y)
    alone = est.predict(X)
    seen: list[object] = []
    original = LGBMRegressor.predict

    def spy(self: LGBMRegressor, data: object, **kwargs: object) -> np.ndarray:
        seen.append(kwargs.get("num_threads"))
        return original(self, data, **kwargs)

    monkeypatch.setattr(LGBMRegressor, "predict", spy)
    with predict_threads(2):
        threaded = est.predict(X)
    np.testing.assert_array_equal(threaded, alone)
    assert all(n == 2 for n in seen)
    # The default blend has LightGBM; the hurdle's spend part is a LightGBM regressor.
    assert bool(seen) == (key.startswith("lightgbm") or key in ("ensemble", "stack", "hurdle"))
    seen.clear()
    est.predict(X)  # outside the block: the model's own setting again
    assert all(n is None for n in seen)


def test_complexity_order_covers_every_registered_model() -> None:
    from spendlab.models.registry import BASELINES, COMPLEXITY, PEERS

    assert set(COMPLEXITY) == set(MODELS)
    assert BASELINES < PEERS and "bgnbd_gg" in PEERS
    assert max(COMPLEXITY[b] for b in PEERS) < min(COMPLEXITY[m] for m in ("lightgbm", "hurdle", "ensemble"))


def test_hurdle_is_the_product_of_a_calibrated_buy_probability_and_buyer_spend() -> None:
    X, y = synthetic_feature_frame(600, seed=3)
    est = make_model("hurdle").fit(X, y)
    p = est.classifier_.predict_proba(est._matrix(X))[:, 1]
    np.testing.assert_allclose(est.predict(X), p * est.spend_.predict(X))
    assert 0.0 <= p.min() and p.max() <= 1.0
    # Calibrated: the mean probability is close to the share of buyers it was fitted on.
    assert abs(p.mean() - (y > 0).mean()) < 0.05
