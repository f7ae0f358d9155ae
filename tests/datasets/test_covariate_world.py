"""The covariates world: seeded, its oracle matches what it generates, its effects point the declared way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spendlab.datasets.worlds.covariates import EFFECTS, generate


@pytest.fixture(scope="module")
def world():
    return generate(users=1500, months=12, seed=3)


def test_the_same_seed_gives_the_same_world():
    a, b = generate(users=50, months=4, seed=1), generate(users=50, months=4, seed=1)
    assert a.lines.equals(b.lines) and a.households.equals(b.households) and a.oracle.equals(b.oracle)


def test_realized_monthly_spend_matches_the_oracle_on_average(world):
    lines = world.lines.assign(period_start=pd.to_datetime(world.lines["ts"]).dt.to_period("M").dt.start_time.dt.date)
    real = lines.groupby(["household_key", "period_start"])["amount"].sum()
    o = world.oracle.set_index(["user_id", "period_start"])["expected_spend"]
    # months after each household's first (its first month forces an order), where the oracle is > 0
    first = lines.groupby("household_key")["period_start"].min()
    keep = [(u, p) for u, p in o.index if p > first.get(u, p)]
    realized = real.reindex(keep, fill_value=0.0)
    assert realized.sum() == pytest.approx(o.loc[keep].sum(), rel=0.03)


def test_amounts_are_positive_and_discounts_are_never_positive(world):
    assert (world.lines["amount"] > 0).all()
    assert (world.lines["retail_disc"] <= 0).all() and (world.lines["coupon_disc"] <= 0).all()


def test_household_size_and_income_raise_spend_as_declared(world):
    hh = world.households.drop_duplicates("household_key", keep="first").set_index("household_key")
    per_month = world.oracle.groupby("user_id")["expected_spend"].mean()
    df = hh.join(per_month.rename("spend"), how="inner")
    by_income = df.groupby("income_band")["spend"].mean()
    assert by_income["low"] < by_income["mid"] < by_income["high"]
    assert np.corrcoef(np.log(df["household_size"]), np.log(df["spend"]))[0, 1] > 0.3
    assert EFFECTS["b_size"] > 0 and EFFECTS["a_size"] > 0


def test_rows_after_a_size_change_carry_their_valid_from(world):
    moved = world.households[world.households["valid_from"] != ""]
    assert len(moved) > 0
    assert moved["valid_from"].str.match(r"^\d{4}-\d{2}-01$").all()
