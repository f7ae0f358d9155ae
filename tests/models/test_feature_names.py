"""Models read features by the names the feature set declares, for every frequency.

The GLM once listed month windows (3/6/12) by hand, so on weekly features (4/13/26) its rolling
means silently vanished; baselines retyped the same names. These tests derive the expected
columns from :func:`spendlab.features.feature_columns` and check each model finds all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spendlab.features import FeatureConfig, feature_columns
from spendlab.features.config import rolling_name
from spendlab.models.baselines import MovingAverage, SeasonalNaive
from spendlab.models.statsmodels_glm import StatsmodelsTweedieGLM, default_columns


def _frame(freq: str, n: int = 60) -> pd.DataFrame:
    cols = [c for c in feature_columns(FeatureConfig(), freq) if c != "user_id"]
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.gamma(1.0, 10.0, size=(n, len(cols))), columns=cols)


@pytest.mark.parametrize("freq", ["month", "week"])
def test_glm_reads_every_declared_spend_rolling_mean(freq: str) -> None:
    spec = FeatureConfig().for_freq(freq)
    means = [rolling_name("spend", "mean", w) for r in spec.rolling if r.column == "spend" and "mean" in r.stats
             for w in r.windows]
    assert means  # the default feature set declares them
    chosen = default_columns(list(_frame(freq).columns))
    assert set(means) <= set(chosen)
    X = _frame(freq)
    glm = StatsmodelsTweedieGLM().fit(X, np.abs(X["spend_lag1"].to_numpy()) + 1.0)
    assert set(means) <= set(glm.feature_names_in_)


@pytest.mark.parametrize("freq", ["month", "week"])
def test_moving_average_uses_the_declared_rolling_column_for_each_window(freq: str) -> None:
    X = _frame(freq)
    for r in FeatureConfig().for_freq(freq).rolling:
        for w in r.windows:
            ma = MovingAverage(window=w).fit(X)
            assert ma.columns_ == [rolling_name("spend", "mean", w)]
            np.testing.assert_allclose(ma.predict(X), X[rolling_name("spend", "mean", w)].clip(lower=0))


@pytest.mark.parametrize("freq", ["month", "week"])
def test_seasonal_naive_finds_its_columns(freq: str) -> None:
    X = _frame(freq)
    assert len(SeasonalNaive().fit(X).predict(X)) == len(X)
