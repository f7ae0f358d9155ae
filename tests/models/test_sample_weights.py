"""Sample weights in the pooled models: an integer weight fits as that many copies of the row."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.split import training_set
from spendlab.models.customer_base import BgNbdGammaGamma
from spendlab.models.registry import WEIGHTED_FIT, make_model
from tests.forecast.test_backtest import store_for, tx_frame


@pytest.fixture(scope="module")
def weighted_and_repeated() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Stacked training rows with integer weights 1..3, and the same rows repeated weight times."""
    store = store_for(tx_frame(n_users=90))
    X, y = training_set(store, dt.date(2024, 6, 30), 3)
    X = X.drop(columns=["user_id"])
    w = np.random.default_rng(0).integers(1, 4, len(y)).astype(np.float64)
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    return X, y, w, X.iloc[rep], y[rep]


@pytest.mark.parametrize("key", ["sm_tweedie_glm", "ridge", "tweedie_glm"])
def test_a_weight_of_k_fits_like_k_copies_of_the_row(key: str, weighted_and_repeated) -> None:
    X, y, w, X_rep, y_rep = weighted_and_repeated
    a = make_model(key).fit(X, y, sample_weight=w)
    b = make_model(key).fit(X_rep, y_rep)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-6, atol=1e-9)
    c = make_model(key).fit(X, y)
    assert not np.allclose(a.predict(X), c.predict(X), rtol=1e-6, atol=1e-9)  # the weights did something


def test_the_customer_base_fit_weighs_its_likelihoods_like_copies(weighted_and_repeated) -> None:
    X, y, w, X_rep, y_rep = weighted_and_repeated
    a = BgNbdGammaGamma(fit_origin="all").fit(X, sample_weight=w)
    b = BgNbdGammaGamma(fit_origin="all").fit(X_rep)
    for k in a.bg_params_:
        assert a.bg_params_[k] == pytest.approx(b.bg_params_[k], rel=1e-3)
    assert a.mean_monetary_ == pytest.approx(b.mean_monetary_, rel=1e-12)


def test_the_hurdle_weighs_its_base_rate_and_mean_spend(weighted_and_repeated) -> None:
    X, y, w, X_rep, y_rep = weighted_and_repeated
    h = make_model("hurdle").fit(X, y, sample_weight=w)
    assert h.base_rate_ == pytest.approx(np.average(y > 0, weights=w), rel=1e-12)
    assert h.mean_spend_ == pytest.approx(y_rep[y_rep > 0].mean(), rel=1e-12)


@pytest.mark.parametrize("key", sorted(WEIGHTED_FIT))
def test_every_pooled_model_takes_sample_weight(key: str, weighted_and_repeated) -> None:
    X, y, w, _, _ = weighted_and_repeated
    params = {"n_estimators": 20} if key in ("lightgbm", "random_forest", "hurdle") else {}
    p = make_model(key, params).fit(X, y, sample_weight=w).predict(X)
    assert p.shape == (len(X),) and np.isfinite(p).all() and (p >= 0).all()
