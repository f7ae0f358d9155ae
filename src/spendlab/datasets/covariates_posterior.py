"""The Bayes limit of the ``covariates`` world: the posterior mean of next month's spend given the export.

A forecaster sees the line items (department, discounts, amount) and the household table up to the
cutoff. The best it can do under squared error is the posterior mean of next month's spend under the
generator's own model and priors (:mod:`spendlab.datasets.worlds.covariates`). Its RMSE is the
floor for any forecaster of that data; the share of the best-peer-to-oracle gap it closes is the
most any model can close.

Per household the unknowns are its department mix ``pi`` (Dirichlet prior), discount sensitivity
``s`` (Beta prior), rate noise ``e_r`` and basket noise ``e_b`` (Normal priors), and its last active
month ``L``. Size and income are read from the household table (the row valid at each month).

- departments: each line's department is Categorical(``pi``): the posterior of ``pi`` alone is
  Dirichlet(``alpha + counts``), used as the proposal, so its likelihood cancels in the weights;
- discounts: each line has a retail discount with probability ``0.1 + 0.5 s`` and a coupon with
  probability ``0.4 s``: ``s`` is drawn from that likelihood times its prior on a fine grid;
- gross line amounts (amount minus its discounts): ``log g ~ N(o_m + a_meat pi_meat + e_b, line_sigma^2)``
  with ``o_m`` the size and income part; ``e_b`` integrates out in closed form (Normal-Normal);
- orders and churn: Poisson(``r_m``) orders in active months (at least one in the first),
  ``L`` geometric with hazard ``h(s)``; ``L`` sums out as in :mod:`spendlab.datasets.covariates_bound`;
  ``e_r`` is drawn from a widened Laplace approximation of the order likelihood.

Self-normalised importance sampling with ``draws`` draws a household gives the posterior mean of
``P(active next month) x r_{c+1} x E[order value]``. Two approximations: the one-cent rounding and
the 2.00 floor of gross amounts are ignored, and a size change dated in the target month itself
(unknown at the cutoff) is not anticipated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spendlab.datasets.worlds.covariates import (
    COUPON,
    DAYS_PER_MONTH,
    DEPARTMENTS,
    DISCOUNTS,
    EFFECTS,
    INCOME_BANDS,
    PRIORS,
)

_GRID = np.linspace(0.0005, 0.9995, 1000)


def _months(ts: pd.Series, start: str) -> np.ndarray:
    t, base = pd.to_datetime(ts), pd.Timestamp(start)
    return ((t.dt.year - base.year) * 12 + (t.dt.month - base.month)).to_numpy()


def _offsets(households: pd.DataFrame, users: np.ndarray, n_months: int, start: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the known log-rate and log-basket parts (users x months) from each month's valid table row."""
    e = EFFECTS
    hh = households.assign(vf=households["valid_from"].fillna("").astype(str))
    base = hh[hh["vf"] == ""].set_index("household_key").loc[users]
    size = np.repeat(base["household_size"].to_numpy(dtype=float)[:, None], n_months, axis=1)
    moved = hh[hh["vf"] != ""]
    pos = pd.Index(users).get_indexer(moved["household_key"])
    first_m = _months(moved["vf"], start)
    for i, m, s in zip(pos, first_m, moved["household_size"].to_numpy(dtype=float), strict=True):
        if i >= 0 and m < n_months:
            size[i, max(m, 0):] = s
    inc = pd.Index(INCOME_BANDS).get_indexer(base["income_band"])
    b_inc, a_inc = np.asarray(e["b_income"])[inc], np.asarray(e["a_income"])[inc]  # type: ignore[index]
    log_rate = e["b0"] + e["b_size"] * np.log(size) + b_inc[:, None]  # type: ignore[operator]
    log_basket = e["a0"] + e["a_size"] * np.log(size) + a_inc[:, None]  # type: ignore[operator]
    return log_rate, log_basket


def _line_stats(lines: pd.DataFrame, users: np.ndarray, log_basket: np.ndarray, start: str) -> dict[str, np.ndarray]:
    """Return each household's department counts, discount counts and gross-amount sums."""
    idx = pd.Index(users).get_indexer(lines["household_key"])
    m = _months(lines["ts"], start)
    gross = (lines["amount"] - lines["retail_disc"] - lines["coupon_disc"]).to_numpy(dtype=float)
    z = np.log(np.maximum(gross, 0.01)) - log_basket[idx, m]
    n = len(users)
    dept = np.zeros((n, len(DEPARTMENTS)))
    np.add.at(dept, (idx, pd.Index(DEPARTMENTS).get_indexer(lines["department"])), 1.0)
    out = {"dept": dept}
    for name, val in (("lines", np.ones(len(idx))), ("retail", (lines["retail_disc"] < 0).to_numpy(float)),
                      ("coupon", (lines["coupon_disc"] < 0).to_numpy(float)), ("z1", z), ("z2", z * z)):
        out[name] = np.bincount(idx, weights=val, minlength=n)
    return out


def _draw_disc(rng: np.random.Generator, st: dict[str, np.ndarray], k: int) -> np.ndarray:
    """Draw ``s`` from its prior times the discount likelihood, on a grid (jittered within a cell)."""
    d = DISCOUNTS
    pr = d["retail_base"] + d["retail_slope"] * _GRID
    pc = d["coupon_slope"] * _GRID
    logp = ((PRIORS["disc_a"] - 1) * np.log(_GRID) + (PRIORS["disc_b"] - 1) * np.log1p(-_GRID)
            + st["retail"][:, None] * np.log(pr) + (st["lines"] - st["retail"])[:, None] * np.log1p(-pr)
            + st["coupon"][:, None] * np.log(pc) + (st["lines"] - st["coupon"])[:, None] * np.log1p(-pc))
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random((len(p), k)) * cdf[:, -1:]
    cell = np.array([np.searchsorted(c, row) for c, row in zip(cdf, u, strict=True)])
    step = _GRID[1] - _GRID[0]
    return np.clip(_GRID[np.minimum(cell, len(_GRID) - 1)] + (rng.random(cell.shape) - 0.5) * step, 1e-4, 1 - 1e-4)


def _basket(st: dict[str, np.ndarray], meat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the log marginal likelihood of the gross amounts given ``pi_meat`` and E[exp(e_b)] (e_b integrated out)."""
    e = EFFECTS
    var, tau2 = float(e["line_sigma"]) ** 2, float(e["basket_noise"]) ** 2  # type: ignore[arg-type]
    mu = float(e["a_meat"]) * meat  # type: ignore[arg-type]
    n, s1, s2 = st["lines"][:, None], st["z1"][:, None], st["z2"][:, None]
    prec = 1 / tau2 + n / var
    resid = (s1 - n * mu) / var
    loglik = -0.5 * (s2 - 2 * mu * s1 + n * mu * mu) / var + 0.5 * resid * resid / prec
    return loglik, np.exp(mu + resid / prec + 0.5 / prec)


# long: the order and churn likelihood, summed over the last active month, in one vectorised pass
def _orders(counts: np.ndarray, log_rate: np.ndarray, days: np.ndarray, first: np.ndarray, lam: np.ndarray,
            hazard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the log likelihood of the orders and P(active next month) for each draw."""
    n_users, c1 = counts.shape
    expo = np.exp(log_rate[:, :c1]) * days[None, :c1] / DAYS_PER_MONTH
    live = np.arange(c1)[None, :] >= first[:, None]
    expo = np.where(live, expo, 0.0)
    n_o = counts.sum(axis=1)
    el = np.exp(lam)
    loglik = n_o[:, None] * lam + (counts * np.where(live, log_rate[:, :c1], 0.0)).sum(axis=1)[:, None]
    loglik -= el * expo.sum(axis=1)[:, None]
    r_first = el * expo[np.arange(n_users), first][:, None]
    one = counts[np.arange(n_users), first] == 1
    loglik += np.where(one[:, None], np.log1p(r_first) - np.log(r_first), 0.0)
    last = c1 - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    tail = np.cumsum(expo[:, ::-1], axis=1)[:, ::-1]
    log_alive = np.log1p(-hazard) * np.maximum(c1 - 1 - first, 0)[:, None]
    log_all = log_alive
    for j in range(c1 - 1):
        ok = ((j >= last) & (j >= first))[:, None]
        log_w = np.log(hazard) + np.log1p(-hazard) * np.maximum(j - first, 0)[:, None] + el * tail[:, j + 1:j + 2]
        log_all = np.where(ok, np.logaddexp(log_all, log_w), log_all)
    return loglik + log_all, (1 - hazard) * np.exp(log_alive - log_all)


def posterior_expected_spend(lines: pd.DataFrame, households: pd.DataFrame, cutoff_month: int, *,
                             draws: int = 1000, seed: int = 0, start: str = "2022-01-01",
                             chunk: int = 2000) -> pd.DataFrame:
    """Return the posterior mean of month ``cutoff_month + 1``'s spend for every household seen by the cutoff.

    Parameters
    ----------
    lines : pandas.DataFrame
        The world's line items; only those up to the cutoff month are read.
    households : pandas.DataFrame
        The household table (``household_key``, ``valid_from``, ``income_band``, ``household_size``).
    cutoff_month : int
        The month holding the cutoff (0 = the month of ``start``).
    draws : int
        Importance-sampling draws per household.
    seed : int
        The random seed.
    start : str
        The world's first day.
    chunk : int
        Households sampled at a time (memory grows with ``chunk x draws``).

    Returns
    -------
    pandas.DataFrame
        ``user_id``, ``expected_spend`` and ``ess`` (the effective sample size of the household's draws).
    """
    c = int(cutoff_month)
    rng = np.random.default_rng(seed)
    seen = lines[_months(lines["ts"], start) <= c]
    orders = seen.drop_duplicates("order_id")
    users = np.sort(orders["household_key"].unique())
    uidx, om = pd.Index(users).get_indexer(orders["household_key"]), _months(orders["ts"], start)
    counts = np.zeros((len(users), c + 1))
    np.add.at(counts, (uidx, om), 1.0)
    first = np.argmax(counts > 0, axis=1)
    log_rate, log_basket = _offsets(households, users, c + 2, start)
    st = _line_stats(seen, users, log_basket, start)
    bounds = pd.date_range(start, periods=c + 3, freq="MS")
    days = np.diff(bounds).astype("timedelta64[D]").astype(float)
    spend, ess = np.zeros(len(users)), np.zeros(len(users))
    for lo in range(0, len(users), chunk):  # bounded memory: draws x households at a time
        part = slice(lo, lo + chunk)
        sub = {k: v[part] for k, v in st.items()}
        spend[part], ess[part] = _chunk(rng, counts[part], log_rate[part], log_basket[part], first[part], sub, days,
                                        draws)
    return pd.DataFrame({"user_id": users, "expected_spend": spend, "ess": ess})


def _chunk(rng: np.random.Generator, counts: np.ndarray, log_rate: np.ndarray, log_basket: np.ndarray,
           first: np.ndarray, st: dict[str, np.ndarray], days: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the posterior mean of next month's spend and the effective sample size for a block of households."""
    c = counts.shape[1] - 1
    g = rng.gamma(PRIORS["mix_alpha"] + st["dept"][:, :, None], size=(len(counts), len(DEPARTMENTS), draws))
    mix = g / g.sum(axis=1, keepdims=True)
    s = _draw_disc(rng, st, draws)
    lam, log_q = _draw_rate(rng, counts, log_rate, days, first, mix[:, 0], s)
    e = EFFECTS
    e_r = lam - e["b_produce"] * mix[:, 0] - e["b_disc"] * s  # type: ignore[operator]
    hazard = e["churn_base"] + e["churn_disc"] * s  # type: ignore[operator]
    ll_orders, p_active = _orders(counts, log_rate, days, first, lam, hazard)
    ll_basket, basket = _basket(st, mix[:, 1])
    log_w = ll_orders + ll_basket - 0.5 * (e_r / float(e["rate_noise"])) ** 2 - log_q  # type: ignore[arg-type]
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    d = DISCOUNTS
    gross = np.exp(log_basket[:, c + 1])[:, None] * basket * np.exp(0.5 * float(e["line_sigma"]) ** 2)  # type: ignore[arg-type]
    value = 3.0 * (gross * (1 - (d["retail_base"] + d["retail_slope"] * s) * d["retail_mean"])
                   - d["coupon_slope"] * s * COUPON)
    rate = np.exp(lam + log_rate[:, c + 1:c + 2]) * days[c + 1] / DAYS_PER_MONTH
    spend = (w * p_active * rate * value).sum(axis=1)
    return spend, 1.0 / (w * w).sum(axis=1)


def _draw_rate(rng: np.random.Generator, counts: np.ndarray, log_rate: np.ndarray, days: np.ndarray,
               first: np.ndarray, produce: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw the log-rate shift from a widened Laplace approximation; return it and its log proposal density."""
    e = EFFECTS
    c1 = counts.shape[1]
    last = c1 - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    m = np.arange(c1)[None, :]
    expo = np.exp(log_rate[:, :c1]) * days[None, :c1] / DAYS_PER_MONTH
    exposure = np.where((m >= first[:, None]) & (m <= last[:, None]), expo, 0.0).sum(axis=1)
    n_o = counts.sum(axis=1)
    prior_mean = e["b_produce"] * produce + e["b_disc"] * s  # type: ignore[operator]
    prior_prec = 1.0 / float(e["rate_noise"]) ** 2  # type: ignore[arg-type]
    prec = prior_prec + n_o
    mean = (prior_mean * prior_prec + (n_o * np.log(n_o / exposure))[:, None]) / prec[:, None]
    sd = np.sqrt(2.0 / prec)[:, None]
    z = rng.standard_normal(mean.shape)
    return mean + sd * z, -0.5 * z * z
