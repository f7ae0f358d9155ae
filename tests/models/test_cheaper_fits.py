"""The cheaper fits keep their contracts.

- The statsmodels GLM's Newton solver lands on plain IRLS's coefficients and standard errors (the
  oracle: statsmodels' own IRLS on the same design), for Tweedie powers across the family.
- ``lightgbm_clv``'s booster defaults yield to given (tuned) parameters, key by key.
- The hurdle's defaults are constructor parameters, so tuned values replace them; its classifier is
  calibrated over ``calibration_folds`` unshuffled folds (2 by default; 2 when a class is too rare).
- ``random_forest`` weighs a fifth of the features at each split by default; a given ``max_features`` wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from spendlab.models.customer_base import ClvBoostedRegressor
from spendlab.models.hurdle import HurdleRegressor
from spendlab.models.registry import factory_defaults, make_model
from spendlab.models.statsmodels_glm import StatsmodelsTweedieGLM


def _spend_frame(seed: int, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Three spend-like features and a zero-inflated target that depends on them."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"spend_lag1": rng.gamma(0.5, 20.0, n) * (rng.random(n) < 0.4),
                      "spend_lag2": rng.gamma(0.5, 20.0, n) * (rng.random(n) < 0.4),
                      "days_since_last_purchase": rng.integers(0, 400, n).astype(float)})
    rate = np.exp(0.5 + 0.3 * np.log1p(X["spend_lag1"]) - 0.004 * X["days_since_last_purchase"])
    y = rng.gamma(2.0, 10.0, n) * (rng.random(n) < np.clip(rate / 10.0, 0.02, 0.9))
    return X, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("power", [1.2, 1.5, 1.8])
def test_glm_newton_matches_irls_coefficients_and_standard_errors(seed: int, power: float) -> None:
    X, y = _spend_frame(seed)
    glm = StatsmodelsTweedieGLM(var_power=power).fit(X, y)
    family = sm.families.Tweedie(var_power=power, link=sm.families.links.Log())
    irls = sm.GLM(y, glm._design(X), family=family).fit(maxiter=100)  # the oracle: statsmodels' default solver
    np.testing.assert_allclose(glm.coef_, irls.params, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(glm.coef_stats_["std_err"], irls.bse, rtol=1e-6)
    np.testing.assert_allclose(glm.predict(X), irls.predict(), rtol=1e-6)


def test_glm_falls_back_to_irls_when_newton_does_not_converge() -> None:
    X, y = _spend_frame(3)
    # One iteration: Newton cannot report convergence, so the fit is IRLS's (same max_iter)
    glm = StatsmodelsTweedieGLM(max_iter=1).fit(X, y)
    family = sm.families.Tweedie(var_power=1.5, link=sm.families.links.Log())
    irls = sm.GLM(y, glm._design(X), family=family).fit(maxiter=1)
    np.testing.assert_allclose(glm.coef_, irls.params, rtol=1e-10)


def test_glm_on_a_rank_deficient_design_is_irls_fit() -> None:
    X, y = _spend_frame(4)
    X = X.assign(spend_lag3=X["spend_lag2"])  # two identical columns: no unique optimum
    glm = StatsmodelsTweedieGLM().fit(X, y)
    family = sm.families.Tweedie(var_power=1.5, link=sm.families.links.Log())
    irls = sm.GLM(y, glm._design(X), family=family).fit(maxiter=100)
    np.testing.assert_allclose(glm.coef_, irls.params, rtol=1e-10, atol=1e-12)
    assert np.isfinite(glm.coef_stats_["std_err"]).all()


def test_clv_booster_defaults_and_given_params_override_them_key_by_key() -> None:
    X, y = _spend_frame(0)
    freq = ((X["spend_lag1"] > 0).astype(float) + (X["spend_lag2"] > 0)).to_numpy()
    X = X.assign(bgnbd_frequency=freq, bgnbd_T_days=X["days_since_last_purchase"] + 60.0,
                 bgnbd_recency_days=np.where(freq > 0, 30.0, 0.0), bgnbd_monetary=np.where(freq > 0, 25.0, 0.0))
    booster = factory_defaults("lightgbm")  # one source of the booster's defaults: the lightgbm entry's
    default = make_model("lightgbm_clv").fit(X, y).booster_.estimator_
    assert default.n_estimators == booster["n_estimators"]
    assert default.learning_rate == booster["learning_rate"]
    tuned = ClvBoostedRegressor(lightgbm_params={"n_estimators": 40}).fit(X, y).booster_.estimator_
    assert tuned.n_estimators == 40  # the given value wins ...
    assert tuned.learning_rate == booster["learning_rate"]  # ... and the other default stays


def test_hurdle_tuned_params_replace_the_defaults() -> None:
    est = make_model("hurdle", {"n_estimators": 30, "learning_rate": 0.2})
    assert (est.n_estimators, est.learning_rate) == (30, 0.2)
    assert HurdleRegressor().get_params()["n_estimators"] != 30


@pytest.mark.parametrize("folds", [2, 3, 4])
def test_hurdle_calibrates_over_the_given_number_of_folds(folds: int) -> None:
    X, y = _spend_frame(5)
    hurdle = make_model("hurdle", {"calibration_folds": folds, "n_estimators": 10}).fit(X, y)
    assert len(hurdle.classifier_.calibrated_classifiers_) == folds  # one calibrated classifier per fold
    assert hurdle.predict(X).shape == (len(X),)


def test_hurdle_default_calibration_is_two_folds() -> None:
    X, y = _spend_frame(6)
    hurdle = make_model("hurdle", {"n_estimators": 10}).fit(X, y)
    assert len(hurdle.classifier_.calibrated_classifiers_) == 2


def test_hurdle_with_too_few_buyers_for_the_folds_calibrates_over_two() -> None:
    X, y = _spend_frame(8, n=60)
    y = np.where(np.arange(60) % 20 == 0, 5.0, 0.0)  # 3 buyers: fewer than 4 folds
    hurdle = make_model("hurdle", {"calibration_folds": 4, "n_estimators": 5, "min_child_samples": 2}).fit(X, y)
    assert len(hurdle.classifier_.calibrated_classifiers_) == 2



def _wide_frame(seed: int, n: int = 300, k: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` spend-like features (the forest's per-split feature count is a fraction of ``k``)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"spend_lag{i + 1}": rng.gamma(0.5, 20.0, n) * (rng.random(n) < 0.4) for i in range(k)})
    y = rng.gamma(2.0, 10.0, n) * (rng.random(n) < 0.3) + 0.1 * X["spend_lag1"].to_numpy()
    return X, y


def test_random_forest_default_splits_on_a_fifth_of_the_features() -> None:
    X, y = _wide_frame(9)
    forest = make_model("random_forest", {"n_estimators": 3}).fit(X, y).estimator_
    assert all(tree.max_features_ == 2 for tree in forest.estimators_)  # 0.2 x 10 features


def test_random_forest_given_max_features_replaces_the_default() -> None:
    X, y = _wide_frame(10)
    forest = make_model("random_forest", {"n_estimators": 3, "max_features": "sqrt"}).fit(X, y).estimator_
    assert all(tree.max_features_ == 3 for tree in forest.estimators_)  # floor(sqrt(10))
    assert factory_defaults("random_forest")["max_features"] == 0.2
