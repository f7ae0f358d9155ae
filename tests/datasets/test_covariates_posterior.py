"""The Bayes limit of the covariates world (``spendlab.datasets.covariates_posterior``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spendlab.datasets.covariates_bound import informed_expected_spend, order_counts
from spendlab.datasets.covariates_posterior import posterior_expected_spend
from spendlab.datasets.worlds.covariates import generate, monthly_means

USERS, MONTHS, SEED, CUT = 1500, 14, 11, 11


@pytest.fixture(scope="module")
def world():
    return generate(users=USERS, months=MONTHS, seed=SEED)


@pytest.fixture(scope="module")
def posterior(world):
    return posterior_expected_spend(world.lines, world.households, CUT, draws=300, seed=0)


def _realized(world, month: int) -> pd.Series:
    m = pd.to_datetime(world.lines["ts"]).dt.month - 1 + 12 * (pd.to_datetime(world.lines["ts"]).dt.year - 2022)
    return world.lines[m == month].groupby("household_key")["amount"].sum()


def test_every_household_seen_by_the_cutoff_gets_one_finite_forecast(world, posterior):
    counts = order_counts(world.lines)
    seen = set(counts.loc[counts["month"] <= CUT, "user_id"])
    assert set(posterior["user_id"]) == seen and posterior["user_id"].is_unique
    assert np.isfinite(posterior["expected_spend"]).all() and (posterior["expected_spend"] >= 0).all()
    # the proposals keep the importance weights usable (a few households with odd histories weigh few draws)
    assert (posterior["ess"] > 20).mean() > 0.99 and posterior["ess"].median() > 100


def test_it_is_calibrated_and_lies_between_the_informed_limit_and_a_naive_mean(world, posterior):
    post = posterior.set_index("user_id")["expected_spend"]
    y = _realized(world, CUT + 1).reindex(post.index, fill_value=0.0)
    slope = float((post * y).sum() / (post * post).sum())  # E[Y | posterior mean] = posterior mean
    assert slope == pytest.approx(1.0, abs=0.06)
    inf = informed_expected_spend(monthly_means(users=USERS, months=MONTHS, seed=SEED), order_counts(world.lines),
                                  CUT).set_index("user_id")["expected_spend"].reindex(post.index)
    past = sum(_realized(world, m).reindex(post.index, fill_value=0.0) for m in range(CUT - 5, CUT + 1)) / 6
    mse = {k: float(((y - v) ** 2).mean()) for k, v in {"informed": inf, "bayes": post, "mean6": past}.items()}
    assert mse["informed"] < mse["bayes"] < mse["mean6"]


def test_nothing_after_the_cutoff_is_read(world, posterior):
    month = pd.to_datetime(world.lines["ts"]).dt.month - 1 + 12 * (pd.to_datetime(world.lines["ts"]).dt.year - 2022)
    poisoned = world.lines.copy()
    later = month > CUT
    poisoned.loc[later, "amount"] = poisoned.loc[later, "amount"] * 50
    poisoned.loc[later, "department"] = "MEAT"
    again = posterior_expected_spend(poisoned, world.households, CUT, draws=300, seed=0)
    pd.testing.assert_frame_equal(again, posterior)


def test_more_draws_in_smaller_chunks_agree(world, posterior):
    more = posterior_expected_spend(world.lines, world.households, CUT, draws=1200, seed=1, chunk=400)
    a, b = posterior["expected_spend"].to_numpy(), more["expected_spend"].to_numpy()
    assert np.median(np.abs(a - b) / np.maximum(b, 1.0)) < 0.03


def test_a_quiet_household_is_more_likely_gone():
    lines = pd.DataFrame({"order_id": ["a1", "a2", "b1", "b2"], "household_key": ["A", "A", "B", "B"],
                          "ts": ["2022-01-05 10:00:00", "2022-02-05 10:00:00", "2022-01-05 10:00:00",
                                 "2022-06-05 10:00:00"],
                          "amount": [40.0] * 4, "department": ["MEAT"] * 4, "retail_disc": 0.0, "coupon_disc": 0.0})
    hh = pd.DataFrame({"household_key": ["A", "B"], "valid_from": "", "age_band": "35-54", "income_band": "mid",
                       "household_size": 2})
    out = posterior_expected_spend(lines, hh, 5, draws=2000, seed=0).set_index("user_id")["expected_spend"]
    # the same two orders, but A has been silent for four months: its posterior of being active is lower
    assert out["A"] < 0.5 * out["B"]
