"""The ``covariates`` world: a grocery line-item export and a household table whose attributes drive spend.

Every household has an age band, an income band and a size (the household table), a department mix
(Dirichlet over :data:`DEPARTMENTS`) and a discount sensitivity ``s`` in [0, 1]. They set its purchase
rate and basket with known effects (:data:`EFFECTS`):

    log rate   = b0 + b_size log(size) + b_income[income] + b_produce mix[PRODUCE] + b_disc s + e_rate
    log basket = a0 + a_size log(size) + a_income[income] + a_meat mix[MEAT] + e_basket

with small user noise ``e``. Orders arrive as a Poisson process from the household's first month
(staggered over the window) at that rate until it leaves (a monthly hazard ``0.01 + 0.12 s``: discount
hunters leave sooner); an order has 1 + Poisson(2) lines whose
departments follow the mix, a retail discount on a line with probability ``0.1 + 0.5 s`` and a coupon
(0.50 off) with probability ``0.4 s``. A household's size changes for a tenth of them during the window: the
table then holds a second row with its ``valid_from`` date and the rate follows the new size from
then on. The oracle is each household's true expected spend per calendar month (rate x days /
30.4375 x expected basket while it is a customer, 0 once it has left), so the gain from covariates is measured
against the truth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEPARTMENTS: tuple[str, ...] = ("PRODUCE", "MEAT", "DAIRY", "BAKERY", "SNACKS", "HOUSEHOLD")
AGE_BANDS: tuple[str, ...] = ("19-34", "35-54", "55+")
INCOME_BANDS: tuple[str, ...] = ("low", "mid", "high")
STORES: tuple[str, ...] = ("S1", "S2", "S3", "S4")

#: The known effects (log scale). Income effects are per band, in INCOME_BANDS order.
EFFECTS: dict[str, object] = {
    "b0": -0.6, "b_size": 0.6, "b_income": (-0.35, 0.0, 0.3), "b_produce": 1.6, "b_disc": 0.9,
    "a0": 2.9, "a_size": 0.35, "a_income": (-0.25, 0.0, 0.3), "a_meat": 1.4,
    "rate_noise": 0.15, "basket_noise": 0.1, "line_sigma": 0.5, "churn_base": 0.01, "churn_disc": 0.12,
}
DAYS_PER_MONTH = 30.4375
COUPON = 0.5  # a coupon takes 0.50 off a line
#: The priors of the latents no table shows: department mix ~ Dirichlet(mix_alpha), discount sensitivity ~ Beta.
PRIORS: dict[str, float] = {"mix_alpha": 0.7, "disc_a": 1.2, "disc_b": 2.0}
#: A line's discounts: retail with probability retail_base + retail_slope x s (mean rate retail_mean),
#: a coupon with probability coupon_slope x s.
DISCOUNTS: dict[str, float] = {"retail_base": 0.1, "retail_slope": 0.5, "retail_mean": 0.2, "coupon_slope": 0.4}
_MIN_LINE = 2.0  # the smallest gross line amount (so a discounted line stays positive)


@dataclass(frozen=True)
class CovariateWorld:
    """A generated world: line items, the household table, and the oracle."""

    lines: pd.DataFrame  # order_id, household_key, ts, amount, department, retail_disc, coupon_disc, store_id
    households: pd.DataFrame  # household_key, valid_from (str, "" = always), age_band, income_band, household_size
    oracle: pd.DataFrame  # user_id, period_start, expected_spend


def _latent(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    e = EFFECTS
    size = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.28, 0.34, 0.16, 0.14, 0.08])
    income = rng.choice(3, size=n, p=[0.35, 0.45, 0.20])
    age = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
    mix = rng.dirichlet(np.full(len(DEPARTMENTS), PRIORS["mix_alpha"]), size=n)
    disc = rng.beta(PRIORS["disc_a"], PRIORS["disc_b"], size=n)
    log_rate = (e["b0"] + e["b_size"] * np.log(size) + np.asarray(e["b_income"])[income]  # type: ignore[index]
                + e["b_produce"] * mix[:, 0] + e["b_disc"] * disc + e["rate_noise"] * rng.standard_normal(n))
    log_basket = (e["a0"] + e["a_size"] * np.log(size) + np.asarray(e["a_income"])[income]  # type: ignore[index]
                  + e["a_meat"] * mix[:, 1] + e["basket_noise"] * rng.standard_normal(n))
    return {"size": size, "income": income, "age": age, "mix": mix, "disc": disc, "log_rate": log_rate,
            "log_basket": log_basket, "store": rng.integers(0, len(STORES), size=n)}


def _month_starts(start: dt.date, months: int) -> list[dt.date]:
    return [(pd.Timestamp(start) + pd.DateOffset(months=k)).date() for k in range(months + 1)]


def _households(rng: np.random.Generator, users: int, months: int) -> dict[str, np.ndarray]:
    """Draw every household's latents, its first and last month, and its size change (in the RNG's order)."""
    e = EFFECTS
    lat = _latent(rng, users)
    lat["first_month"] = rng.integers(0, max(1, months - 2), size=users)  # new households keep arriving
    # discount hunters leave sooner: a monthly churn hazard of churn_base + churn_disc x s
    lat["hazard"] = e["churn_base"] + e["churn_disc"] * lat["disc"]  # type: ignore[operator]
    lat["last_month"] = lat["first_month"] + rng.geometric(lat["hazard"])  # the first month without the household
    # a tenth of the households change size once, at a month start in the window
    lat["moves"] = rng.random(users) < 0.1
    lat["move_month"] = rng.integers(1, months, size=users)
    lat["new_size"] = np.clip(lat["size"] + rng.choice([-1, 1], size=users), 1, 5)
    return lat


def _month_means(lat: dict[str, np.ndarray], m: int, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return month ``m``'s expected orders, gross basket and expected order value, as if every household were active."""
    e = EFFECTS
    step = np.where(lat["moves"] & (m >= lat["move_month"]), np.log(lat["new_size"]) - np.log(lat["size"]), 0.0)
    rate = np.exp(lat["log_rate"] + e["b_size"] * step) * days / DAYS_PER_MONTH  # type: ignore[operator]
    basket = np.exp(lat["log_basket"] + e["a_size"] * step)  # type: ignore[operator]
    s_u = lat["disc"]
    # a line: gross x (1 - P(retail) x mean retail rate 0.2) - P(coupon) x 0.50; 3 lines an order
    mean_factor = np.exp(0.5 * e["line_sigma"] ** 2)  # type: ignore[operator]
    d = DISCOUNTS
    retail_p = d["retail_base"] + d["retail_slope"] * s_u
    exp_basket = 3.0 * (basket * mean_factor * (1 - retail_p * d["retail_mean"]) - d["coupon_slope"] * s_u * COUPON)
    return rate, basket, exp_basket


def monthly_means(*, users: int = 20_000, months: int = 24, start: str = "2022-01-01", seed: int = 0) -> pd.DataFrame:
    """Return what the oracle knows about every household in every month, active or not.

    The same arguments as :func:`generate` describe the same households. Columns: ``user_id``,
    ``month`` (0 = the first month), ``period_start``, ``expected_orders``, ``expected_order_value``,
    ``first_month``, ``last_month`` (the first month without the household) and ``hazard`` (its
    monthly churn probability). The oracle is ``expected_orders x expected_order_value`` while
    ``first_month <= month < last_month``.
    """
    lat = _households(np.random.default_rng(seed), users, months)
    bounds = _month_starts(dt.date.fromisoformat(start), months)
    ids = np.array([f"H{i:06d}" for i in range(users)])
    frames = []
    for m in range(months):
        rate, _, value = _month_means(lat, m, (bounds[m + 1] - bounds[m]).days)
        frames.append(pd.DataFrame({"user_id": ids, "month": m, "period_start": bounds[m], "expected_orders": rate,
                                    "expected_order_value": value, "first_month": lat["first_month"],
                                    "last_month": lat["last_month"], "hazard": lat["hazard"]}))
    return pd.concat(frames, ignore_index=True)


# long: one vectorised pass per month (orders, then lines); splitting it would pass a dozen arrays around
def generate(*, users: int = 20_000, months: int = 24, start: str = "2022-01-01", seed: int = 0) -> CovariateWorld:
    """Generate the world (seeded: the same arguments give the same frames).

    Parameters
    ----------
    users, months : int
        Households and calendar months of history.
    start : str
        The first day (a month start, ``YYYY-MM-DD``).
    seed : int
        The random seed.
    """
    rng = np.random.default_rng(seed)
    lat = _households(rng, users, months)
    e = EFFECTS
    first_month, last_month, moves = lat["first_month"], lat["last_month"], lat["moves"]
    bounds = _month_starts(dt.date.fromisoformat(start), months)
    frames, oracle = [], []
    ids = np.array([f"H{i:06d}" for i in range(users)])
    order_no = 0
    for m in range(months):
        days = (bounds[m + 1] - bounds[m]).days
        rate, basket, exp_basket = _month_means(lat, m, days)
        active = (first_month <= m) & (m < last_month)
        oracle.append(pd.DataFrame({"user_id": ids[active], "period_start": bounds[m],
                                    "expected_spend": (rate * exp_basket)[active]}))
        n_orders = rng.poisson(rate) * active
        n_orders[(first_month == m) & (n_orders == 0)] = 1  # acquisition: one order in the first month
        who = np.repeat(np.arange(users), n_orders)
        k = len(who)
        if k == 0:
            continue
        day = rng.integers(0, days, size=k)
        secs = rng.integers(8 * 3600, 21 * 3600, size=k)
        ts = pd.Timestamp(bounds[m]) + pd.to_timedelta(day, unit="D") + pd.to_timedelta(secs, unit="s")
        n_lines = 1 + rng.poisson(2.0, size=k)
        line_order = np.repeat(np.arange(k), n_lines)
        lu = who[line_order]
        cum = lat["mix"][lu].cumsum(axis=1)
        dept = (rng.random(len(lu))[:, None] > cum).sum(axis=1).clip(0, len(DEPARTMENTS) - 1)
        gross = np.round(basket[lu] * np.exp(e["line_sigma"] * rng.standard_normal(len(lu))), 2)  # type: ignore[operator]
        gross = np.maximum(gross, _MIN_LINE)
        s = lat["disc"][lu]
        retail_p = DISCOUNTS["retail_base"] + DISCOUNTS["retail_slope"] * s
        retail = np.where(rng.random(len(lu)) < retail_p, -np.round(gross * rng.uniform(0.1, 0.3, len(lu)), 2), 0.0)
        coupon = np.where(rng.random(len(lu)) < DISCOUNTS["coupon_slope"] * s, -COUPON, 0.0)
        store = np.where(rng.random(k) < 0.8, lat["store"][who], rng.integers(0, len(STORES), size=k))
        frames.append(pd.DataFrame({
            "order_id": np.array([f"O{order_no + i:08d}" for i in range(k)])[line_order],
            "household_key": ids[lu], "ts": ts[line_order].strftime("%Y-%m-%d %H:%M:%S"),
            "amount": np.round(gross + retail + coupon, 2), "department": np.asarray(DEPARTMENTS)[dept],
            "retail_disc": retail, "coupon_disc": coupon, "store_id": np.asarray(STORES)[store[line_order]]}))
        order_no += k
    lines = pd.concat(frames, ignore_index=True)
    base = pd.DataFrame({"household_key": ids, "valid_from": "", "age_band": np.asarray(AGE_BANDS)[lat["age"]],
                         "income_band": np.asarray(INCOME_BANDS)[lat["income"]], "household_size": lat["size"]})
    changed = base[moves].copy()
    changed["valid_from"] = [bounds[mm].isoformat() for mm in lat["move_month"][moves]]
    changed["household_size"] = lat["new_size"][moves]
    households = pd.concat([base, changed], ignore_index=True).sort_values(["household_key", "valid_from"],
                                                                            ignore_index=True)
    return CovariateWorld(lines, households, pd.concat(oracle, ignore_index=True))
