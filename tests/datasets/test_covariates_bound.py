"""The informed limit of the covariates world (``spendlab.datasets.covariates_bound``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spendlab.datasets.covariates_bound import informed_expected_spend, order_counts
from spendlab.datasets.worlds.covariates import generate, monthly_means


def _means(rates: list[float], *, first: int = 0, hazard: float = 0.2, value: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"user_id": "u", "month": range(len(rates)), "expected_orders": rates,
                         "expected_order_value": value, "first_month": first, "last_month": 99, "hazard": hazard})


def _counts(orders: dict[int, int]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": "u", "month": list(orders), "orders": list(orders.values())})


def test_a_hand_computed_posterior():
    # orders only in month 0, cutoff month 2: L = 0, 1 or >= 2 with weights h e^(r1+r2), h(1-h) e^r2, (1-h)^2
    h, r = 0.2, [1.0, 0.5, 2.0, 3.0]
    out = informed_expected_spend(_means(r, hazard=h), _counts({0: 1}), 2)
    alive = (1 - h) ** 2
    p = (1 - h) * alive / (alive + h * (1 - h) * math.exp(2.0) + h * math.exp(2.5))
    assert out["p_active"].iloc[0] == pytest.approx(p, rel=1e-12)
    assert out["expected_spend"].iloc[0] == pytest.approx(p * 3.0 * 10.0, rel=1e-12)


@pytest.mark.parametrize("cutoff", [0, 1, 3])
def test_an_order_in_the_cutoff_month_leaves_only_the_hazard(cutoff):
    out = informed_expected_spend(_means([0.7] * 5, hazard=0.3), _counts({0: 1, cutoff: 2}), cutoff)
    assert out["p_active"].iloc[0] == pytest.approx(0.7, rel=1e-12)


def test_a_household_not_yet_seen_is_left_out():
    out = informed_expected_spend(_means([1.0] * 5, first=3), _counts({3: 1}), 2)
    assert out.empty


@pytest.mark.parametrize("hazard,rate", [(0.05, 0.4), (0.15, 0.8), (0.3, 2.0)])
def test_the_posterior_matches_simulation(hazard, rate):
    # an independent oracle: simulate the generator's churn and orders, condition on the last order month
    rng = np.random.default_rng(7)
    n, c = 400_000, 4
    last_active = rng.geometric(hazard, size=n) - 1  # L = first + G - 1, first = 0
    orders = rng.poisson(rate, size=(n, c + 1)) * (np.arange(c + 1) <= last_active[:, None])
    orders[:, 0] = np.maximum(orders[:, 0], 1)
    last_order = c - np.argmax(orders[:, ::-1] > 0, axis=1)
    active_next = last_active >= c + 1
    for l_month in range(c + 1):
        pick = last_order == l_month
        pattern = {0: 1, l_month: 1}
        p = informed_expected_spend(_means([rate] * (c + 2), hazard=hazard), _counts(pattern), c)["p_active"].iloc[0]
        se = math.sqrt(p * (1 - p) / pick.sum())
        assert abs(active_next[pick].mean() - p) < 5 * se + 1e-3


def test_monthly_means_reproduce_the_oracle_and_the_orders():
    world, means = generate(users=400, months=8, seed=2), monthly_means(users=400, months=8, seed=2)
    active = means[(means["first_month"] <= means["month"]) & (means["month"] < means["last_month"])]
    got = active.assign(expected_spend=active["expected_orders"] * active["expected_order_value"])
    o = world.oracle.merge(got, on=["user_id", "period_start"], how="outer", suffixes=("", "_means"))
    assert len(o) == len(world.oracle) == len(got)
    assert np.array_equal(o["expected_spend"].to_numpy(), o["expected_spend_means"].to_numpy())
    counts = order_counts(world.lines)
    seen = counts.merge(means, on=["user_id", "month"])
    assert len(seen) == len(counts)  # every order falls in an active month of its household
    assert ((seen["month"] >= seen["first_month"]) & (seen["month"] < seen["last_month"])).all()


def test_the_informed_forecast_lies_between_the_oracle_and_a_peer_on_a_world():
    world, means = generate(users=1500, months=12, seed=4), monthly_means(users=1500, months=12, seed=4)
    counts, c = order_counts(world.lines), 9
    inf = informed_expected_spend(means, counts, c).set_index("user_id")
    lines = world.lines.assign(month=pd.to_datetime(world.lines["ts"]).dt.month - 1)
    y = lines[lines["month"] == c + 1].groupby("household_key")["amount"].sum().reindex(inf.index, fill_value=0.0)
    o = world.oracle[world.oracle["period_start"].astype(str) == f"2022-{c + 2:02d}-01"].set_index("user_id")
    orc = o["expected_spend"].reindex(inf.index, fill_value=0.0)
    last = lines[lines["month"] <= c].groupby("household_key")["amount"].sum().reindex(inf.index, fill_value=0) / (c + 1)
    mse = {k: float(((y - v) ** 2).mean()) for k, v in
           {"oracle": orc, "informed": inf["expected_spend"], "mean": last}.items()}
    assert mse["oracle"] < mse["informed"] < mse["mean"]
