"""Weighted thinning of the zero-target training rows: hand-computed strata, exact weights, seeds,
and the backtest's use of it (the pooled models thinned, the others not, no leakage)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.errors import ConfigError
from spendlab.forecast.backtest import run_backtest
from spendlab.forecast.protocol import ExperimentConfig
from spendlab.forecast.sampling import recency_bucket, thin_zero_targets, training_rows
from spendlab.models import registry
from tests.forecast.test_backtest import CUTOFF, experiment, store_for, tx_frame

D = dt.date


def stacked(origins: list[str], recency: list[float]) -> pd.DataFrame:
    """A stacked frame indexed (origin, row) with a recency column and a row id column."""
    X = pd.DataFrame({"days_since_last_purchase": recency, "rid": np.arange(len(recency))})
    X.index = pd.MultiIndex.from_arrays([pd.to_datetime(origins), np.arange(len(origins))], names=["origin", "row"])
    return X


def test_recency_buckets_follow_the_day_edges_and_nan_has_its_own() -> None:
    days = np.array([0, 30, 31, 91, 92, 182, 183, 365, 366, 1000, np.nan])
    assert recency_bucket(days).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def test_hand_computed_strata_keep_every_spender_and_weight_zero_rows_to_their_stratum_size() -> None:
    # Origin A: one spender; two recent zeros (bucket 0) and two dormant zeros (bucket 4).
    # Origin B: three zero rows without any purchase (the NaN bucket).
    # fraction 0.5: A's zero strata keep 1 of 2 (weight 2); B's keeps rint(1.5) = 2 of 3 (weight 1.5).
    X = stacked(["1997-01-31"] * 5 + ["1997-02-28"] * 3, [10, 10, 10, 400, 400, np.nan, np.nan, np.nan])
    y = np.array([5.0, 0, 0, 0, 0, 0, 0, 0])
    Xk, yk, w = thin_zero_targets(X, y, fraction=0.5, seed=0)
    rid = Xk["rid"].to_numpy()
    assert list(rid) == sorted(rid)  # original order kept
    assert rid[0] == 0 and yk[0] == 5.0 and w[0] == 1.0  # the spender, weight 1
    assert len(rid) == 5
    assert len(set(rid) & {1, 2}) == 1 and len(set(rid) & {3, 4}) == 1 and len(set(rid) & {5, 6, 7}) == 2
    assert w.tolist() == [1.0, 2.0, 2.0, 1.5, 1.5]
    assert (yk[1:] == 0).all()
    assert w.sum() == len(y)


def test_weights_sum_exactly_to_each_strata_rows_and_only_zero_rows_are_thinned() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    origins = np.repeat(["1997-01-31", "1997-02-28", "1997-03-31"], n // 3)
    recency = rng.choice([3.0, 50.0, 120.0, 250.0, 900.0, np.nan], n)
    y = np.where(rng.random(n) < 0.15, rng.gamma(2.0, 20.0, n), 0.0)
    X = stacked(list(origins), list(recency))
    for fraction in (0.05, 0.25, 0.6):
        Xk, yk, w = thin_zero_targets(X, y, fraction=fraction, seed=1)
        kept = Xk["rid"].to_numpy()
        assert set(np.flatnonzero(y > 0)) <= set(kept)  # every spender kept
        np.testing.assert_array_equal(w[yk > 0], 1.0)
        full_bucket = recency_bucket(recency)
        for o in np.unique(origins):
            for b in range(6):
                zeros = (origins == o) & (full_bucket == b) & (y == 0)
                at = np.isin(kept, np.flatnonzero(zeros))
                if zeros.sum() == 0:
                    assert not at.any()
                    continue
                assert at.sum() == max(1, round(fraction * zeros.sum()))
                assert w[at].sum() == pytest.approx(zeros.sum(), rel=1e-12)


def test_the_weighted_sum_is_unbiased_over_seeds() -> None:
    """E[sum of w * x over the kept rows] = sum of x over all rows (a stratified random sample)."""
    rng = np.random.default_rng(2)
    n = 400
    X = stacked(["1997-01-31"] * n, list(rng.choice([5.0, 500.0], n)))
    x = rng.gamma(2.0, 1.0, n)
    y = np.where(rng.random(n) < 0.2, 1.0, 0.0)
    estimates = []
    for seed in range(300):
        Xk, _, w = thin_zero_targets(X, y, fraction=0.2, seed=seed)
        estimates.append(float((w * x[Xk["rid"].to_numpy()]).sum()))
    sd = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - x.sum()) < 4 * sd
    assert np.std(estimates) > 0


def test_the_draw_is_seeded_and_an_origin_draws_the_same_rows_in_every_stack() -> None:
    rng = np.random.default_rng(3)
    n = 600
    recency = list(rng.choice([10.0, 400.0], n))
    y = np.where(rng.random(n) < 0.1, 3.0, 0.0)
    X = stacked(["1997-01-31"] * 300 + ["1997-02-28"] * 300, recency)
    a = thin_zero_targets(X, y, fraction=0.3, seed=7)[0]["rid"].to_numpy()
    b = thin_zero_targets(X, y, fraction=0.3, seed=7)[0]["rid"].to_numpy()
    c = thin_zero_targets(X, y, fraction=0.3, seed=8)[0]["rid"].to_numpy()
    np.testing.assert_array_equal(a, b)
    assert set(a) != set(c)
    # February's rows alone draw what they drew stacked under January's.
    feb = thin_zero_targets(X.iloc[300:], y[300:], fraction=0.3, seed=7)[0]["rid"].to_numpy()
    np.testing.assert_array_equal(feb, a[a >= 300])


def test_fraction_one_returns_the_inputs_unweighted_and_bad_fractions_are_refused() -> None:
    X = stacked(["1997-01-31"] * 3, [1.0, 2.0, 3.0])
    y = np.array([0.0, 1.0, 0.0])
    Xk, yk, w = thin_zero_targets(X, y, fraction=1.0)
    assert Xk is X and w is None
    np.testing.assert_array_equal(yk, y)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            thin_zero_targets(X, y, fraction=bad)
    with pytest.raises(ValueError, match="days_since_last_purchase"):
        thin_zero_targets(X.drop(columns=["days_since_last_purchase"]), y, fraction=0.5)


def test_only_the_pooled_models_get_thinned_rows() -> None:
    X = stacked(["1997-01-31"] * 6, [400.0] * 6)
    y = np.array([0.0, 0, 0, 0, 0, 2.0])
    for key in registry.MODELS:
        Xk, _, w = training_rows(key, X, y, zero_fraction=0.4, seed=0)
        if key in registry.WEIGHTED_FIT:
            assert len(Xk) == 3 and w.tolist() == [2.5, 2.5, 1.0]
        else:
            assert Xk is X and w is None


def test_the_experiment_option_defaults_to_every_row_and_is_validated() -> None:
    base = {"name": "x", "dataset": {"input": "mem", "format": "generic"}, "validation": {"dates": [D(2024, 3, 31)]},
            "test": {"dates": [D(2024, 5, 31)]}}
    assert ExperimentConfig.model_validate(base).train_zero_fraction == 1.0
    assert ExperimentConfig.model_validate({**base, "train_zero_fraction": 0.2}).train_zero_fraction == 0.2
    for bad in (0, 1.2):
        with pytest.raises((ValueError, ConfigError), match="train_zero_fraction"):
            ExperimentConfig.model_validate({**base, "train_zero_fraction": bad})


@pytest.fixture(scope="module")
def store():
    return store_for(tx_frame(n_users=90))


@pytest.mark.parametrize("key", ["last_period", "bgnbd_gg", "lightgbm", "sm_tweedie_glm"])
def test_backtest_thins_the_pooled_models_only(key: str, store) -> None:
    full = experiment([CUTOFF])
    thin = full.model_copy(update={"train_zero_fraction": 0.3})
    a = run_backtest(store, experiment=full, model_key=key, origins="test")
    b = run_backtest(store, experiment=thin, model_key=key, origins="test")
    assert a.per_origin["n_train"].tolist() == b.per_origin["n_train"].tolist()  # the stacked set is the same
    moved = not np.allclose(a.predictions["y_pred"], b.predictions["y_pred"], rtol=0, atol=1e-9)
    assert moved == (key in registry.WEIGHTED_FIT)
