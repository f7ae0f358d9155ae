"""An informed limit for the ``covariates`` world: the best forecast given every latent but the churn state.

The oracle of :mod:`spendlab.datasets.worlds.covariates` knows three things no forecaster sees: each
household's latent rate and basket (its exact department mix, discount sensitivity and noise draws),
its churn hazard, and **whether it is still a customer** in the target month. This module grants a
forecaster the first two and withholds only the third. Under squared error the best it can do is
the posterior mean of next month's spend given the household's orders up to the cutoff:

- ``L``, the household's last active month, is ``first + G - 1`` with ``G ~`` Geometric(h) on 1, 2, ...;
- orders are Poisson(``r_m``) in active months (at least one in the first), none after ``L``;
- given orders through month ``c`` whose last order is in month ``l``, ``L`` is ``j`` (``l <= j < c``)
  with weight ``h (1 - h)^(j - first) exp(r_{j+1} + ... + r_c)`` and ``>= c`` with weight
  ``(1 - h)^(c - first)`` (the common Poisson likelihood of the observed months cancels);
- ``E[spend in c + 1] = P(L >= c + 1 | orders) x r_{c+1} x value_{c+1}``,
  ``P(L >= c + 1 | orders) = (1 - h) P(L >= c | orders)``.

A forecaster that sees less (only the data) cannot do better in expectation, since conditioning on
more information never raises the expected squared error. So the share of the best-peer-to-oracle
gap this forecast closes is an upper bound on the share any model of the data can close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def order_counts(lines: pd.DataFrame, *, start: str = "2022-01-01") -> pd.DataFrame:
    """Return the orders of each household in each month (``user_id``, ``month``, ``orders``) from the line items.

    Parameters
    ----------
    lines : pandas.DataFrame
        The world's line items (``order_id``, ``household_key``, ``ts``).
    start : str
        The world's first day: month 0.
    """
    orders = lines.drop_duplicates("order_id")
    ts = pd.to_datetime(orders["ts"])
    base = pd.Timestamp(start)
    month = (ts.dt.year - base.year) * 12 + (ts.dt.month - base.month)
    out = pd.DataFrame({"user_id": orders["household_key"].to_numpy(), "month": month.to_numpy()})
    return out.groupby(["user_id", "month"], as_index=False).size().rename(columns={"size": "orders"})


def informed_expected_spend(means: pd.DataFrame, counts: pd.DataFrame, cutoff_month: int) -> pd.DataFrame:
    """Return the informed forecast of month ``cutoff_month + 1`` for every household seen by the cutoff.

    Parameters
    ----------
    means : pandas.DataFrame
        :func:`spendlab.datasets.worlds.covariates.monthly_means` of the world.
    counts : pandas.DataFrame
        :func:`order_counts` of the world's line items.
    cutoff_month : int
        The month holding the cutoff (its last day); only orders up to it are read.

    Returns
    -------
    pandas.DataFrame
        ``user_id``, ``p_active`` (the posterior probability that the household is a customer next
        month) and ``expected_spend``.

    Raises
    ------
    ValueError
        If ``means`` does not cover the target month.
    """
    c = int(cutoff_month)
    if c + 1 > int(means["month"].max()):
        raise ValueError(f"the world's means end before month {c + 1}")
    rate = means.pivot(index="user_id", columns="month", values="expected_orders")
    per_user = means.drop_duplicates("user_id").set_index("user_id").loc[rate.index]
    first, h = per_user["first_month"].to_numpy(), per_user["hazard"].to_numpy()
    seen = first <= c
    seen_counts = counts[counts["month"] <= c]
    n = seen_counts.pivot(index="user_id", columns="month", values="orders").reindex(
        index=rate.index, columns=range(c + 1), fill_value=0).fillna(0).to_numpy()
    r = rate.loc[:, list(range(c + 1))].to_numpy()
    last = np.where(n.sum(axis=1) > 0, c - np.argmax(n[:, ::-1] > 0, axis=1), first)
    tail = np.cumsum(r[:, ::-1], axis=1)[:, ::-1]  # tail[:, m] = r_m + ... + r_c
    weight_alive = (1.0 - h) ** np.maximum(c - first, 0)
    weight_gone = np.zeros(len(first))
    for j in range(c):
        ok = (j >= last) & (j >= first)
        w = h * (1.0 - h) ** np.maximum(j - first, 0) * np.exp(np.minimum(tail[:, j + 1], 700.0))
        weight_gone += np.where(ok, w, 0.0)
    p = (1.0 - h) * weight_alive / (weight_alive + weight_gone)
    nxt = means[means["month"] == c + 1].set_index("user_id").loc[rate.index]
    spend = p * nxt["expected_orders"].to_numpy() * nxt["expected_order_value"].to_numpy()
    return pd.DataFrame({"user_id": rate.index.to_numpy()[seen], "p_active": p[seen], "expected_spend": spend[seen]})
