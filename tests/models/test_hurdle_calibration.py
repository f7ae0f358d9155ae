"""The hurdle's buy probability: fitted on the earlier origins, calibrated on the latest one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.isotonic import IsotonicRegression

from spendlab.features.config import ORIGIN_LEVEL
from spendlab.models.hurdle import HurdleRegressor
from tests.models.test_registry_conformance import synthetic_feature_frame


def stacked(n_origins: int, n_users: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Training rows of ``n_origins`` cutoffs stacked oldest first, indexed by (origin, row)."""
    parts = [synthetic_feature_frame(n_users, seed=10 + k) for k in range(n_origins)]
    X = pd.concat([f.drop(columns=["user_id"]) for f, _ in parts], ignore_index=True)
    cutoffs = pd.date_range("2024-01-31", periods=n_origins, freq="ME")
    X.index = pd.MultiIndex.from_arrays([np.repeat(cutoffs, n_users), np.arange(len(X))], names=[ORIGIN_LEVEL, "row"])
    return X, np.concatenate([y for _, y in parts])


def inner(est: HurdleRegressor) -> LGBMClassifier:
    (cal,) = est.classifier_.calibrated_classifiers_
    return getattr(cal.estimator, "estimator", cal.estimator)  # FrozenEstimator wraps it (scikit-learn >= 1.6)


@pytest.mark.parametrize("n_origins", [2, 3, 5])
def test_classifier_sees_the_earlier_origins_and_isotonic_maps_the_latest(n_origins: int) -> None:
    X, y = stacked(n_origins)
    est = HurdleRegressor(n_estimators=20).fit(X, y)
    latest = np.asarray(X.index.get_level_values(ORIGIN_LEVEL) == X.index.get_level_values(ORIGIN_LEVEL).max())
    m = X.to_numpy(np.float64)
    # Oracle 1: the same LightGBM classifier fitted on the earlier origins' rows only.
    oracle = LGBMClassifier(**inner(est).get_params()).fit(m[~latest], (y[~latest] > 0).astype(int))
    np.testing.assert_array_equal(inner(est).predict_proba(m), oracle.predict_proba(m))
    # Oracle 2: an isotonic fit of the latest origin's buys on those raw scores (scikit-learn calibrates
    # LightGBM's log-odds, its decision_function).
    raw = oracle.decision_function(m)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw[latest], y[latest] > 0)
    np.testing.assert_allclose(est.classifier_.predict_proba(m)[:, 1], iso.predict(raw), atol=1e-12)


def test_the_latest_origin_labels_only_move_the_calibration() -> None:
    X, y = stacked(3)
    latest = np.asarray(X.index.get_level_values(ORIGIN_LEVEL) == X.index.get_level_values(ORIGIN_LEVEL).max())
    y2 = y.copy()
    y2[latest] = np.roll(y2[latest], 7)
    a, b = HurdleRegressor(n_estimators=20).fit(X, y), HurdleRegressor(n_estimators=20).fit(X, y2)
    m = X.to_numpy(np.float64)
    np.testing.assert_array_equal(inner(a).predict_proba(m), inner(b).predict_proba(m))


@pytest.mark.parametrize("case", ["no_origin_level", "one_origin", "latest_without_buyers"])
def test_without_a_usable_latest_origin_it_cross_fits_three_folds(case: str) -> None:
    X, y = stacked(1 if case == "one_origin" else 3)
    if case == "no_origin_level":
        X = X.reset_index(drop=True)
    if case == "latest_without_buyers":
        y = y.copy()
        y[-400:] = 0.0
    est = HurdleRegressor(n_estimators=20).fit(X, y)
    assert len(est.classifier_.calibrated_classifiers_) == 3
    p = est.classifier_.predict_proba(est._matrix(X))[:, 1]
    assert 0.0 <= p.min() and p.max() <= 1.0
