"""The Bayes limit of a synthetic world (``spendlab.datasets.synth_posterior``).

Three independent checks:

- **Numerical integration**: for hand-made purchase histories, the closed form equals a brute-force
  posterior: a sum over churn months with the Beta-geometric prior integrated numerically over q,
  the rate integrated numerically over r, the basket mean over mu.
- **Calibration on a simulated population**: users are drawn from the prior, so within any group of
  users chosen from their observed data, the mean realised spend next month must match the mean
  posterior forecast (the defining property of a conditional expectation), up to sampling error.
  A posterior built with the wrong churn prior fails the same check.
- **No look-ahead**: rows after the cutoff do not change the forecast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from spendlab.datasets.synth import PROFILES, SynthWorld
from spendlab.datasets.synth_posterior import cutoff_month, posterior_expected_spend
from spendlab.errors import SpendlabError


def _world(profile: str = "default", **kw) -> SynthWorld:
    return SynthWorld(users=kw.pop("users", 10), months=kw.pop("months", 8), start="2023-01-01", seed=3,
                      profile=profile, **kw)


def _brute(world: SynthWorld, counts: list[int], logs: list[float], t: int) -> float:
    """Posterior mean of next month's spend by numerical integration (counts: months 0..t, user
    acquired in the first month with a purchase)."""
    p, s = world.profile, world.season
    a = next(i for i, c in enumerate(counts) if c > 0)
    last = max(i for i, c in enumerate(counts) if c > 0)

    def lik(r: float, end: int) -> float:  # end = first inactive month
        out = 1.0
        for m in range(a, t + 1):
            lam = r * s[m]
            if m == a:
                out *= stats.poisson.pmf(counts[m], lam) + (stats.poisson.pmf(0, lam) if counts[m] == 1 else 0.0)
            elif m < end:
                out *= stats.poisson.pmf(counts[m], lam)
            elif counts[m]:
                return 0.0
        return out

    def beta_mean(f) -> float:  # E[f(q)] with q ~ Beta(churn_a, churn_b), by quadrature
        return integrate.quad(lambda q: f(q) * stats.beta.pdf(q, p.churn_a, p.churn_b), 0, 1, limit=200)[0]

    prior_r = stats.gamma(p.rate_shape, scale=p.rate_scale)

    def moments(end: int) -> tuple[float, float]:  # integrals of lik x prior and r x lik x prior
        return tuple(integrate.quad(lambda r, j=j: r ** j * lik(r, end) * prior_r.pdf(r), 0, 80, limit=200)[0]
                     for j in (0, 1))

    D = t - a
    num = den = 0.0
    for g in range(max(1, last - a), D + 1):  # churned by t: last active month a + g
        den += beta_mean(lambda q: q * (1 - q) ** (g - 1)) * moments(a + 1 + g)[0]  # noqa: B023
    i0, i1 = moments(t + 2)  # G > D: active through t + 1; every such G has the same likelihood
    tail = beta_mean(lambda q: (1 - q) ** D)
    den += tail * i0
    num += tail * i1
    rate = num / den
    v, sd = p.basket_sigma ** 2, p.basket_sd
    post = lambda mu: np.prod(stats.norm.pdf(logs, mu, np.sqrt(v))) * stats.norm.pdf(mu, p.basket_mean, sd)  # noqa: E731
    z = integrate.quad(post, p.basket_mean - 8 * sd, p.basket_mean + 8 * sd)[0]
    e_exp_mu = integrate.quad(lambda mu: np.exp(mu) * post(mu), p.basket_mean - 8 * sd, p.basket_mean + 8 * sd)[0] / z
    return float(s[t + 1] * rate * e_exp_mu * np.exp(v / 2))


HISTORIES = [  # (purchases per month 0..t, t)
    ([1, 0, 0, 0, 0, 0], 5),  # one purchase, then silence: likely churned
    ([3, 2, 4, 1, 3, 2], 5),  # steady buyer
    ([0, 0, 2, 0, 0, 1], 5),  # acquired in month 2, quiet, came back
    ([0, 0, 0, 0, 0, 1], 5),  # acquired in the cutoff's month
    ([2, 5, 0, 0, 0, 0, 0], 6),  # heavy, then long silence
]


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize(("counts", "t"), HISTORIES)
def test_closed_form_equals_numerical_integration(profile, counts, t):
    world = _world(profile)
    rng = np.random.default_rng(sum(counts) + t)
    rows, logs = [], []
    for m, c in enumerate(counts):
        start = world.segment_starts[m]
        for j in range(c):
            amount = float(np.round(np.exp(rng.normal(3.3, 0.6)), 2))
            rows.append(("u1", start + pd.Timedelta(days=j + 1, hours=10), amount))
            logs.append(np.log(amount))
    tx = pd.DataFrame(rows, columns=["user_id", "ts", "amount"])
    cutoff = (world.segment_starts[t + 1] - pd.Timedelta(days=1)).date()
    got = posterior_expected_spend(world, tx, cutoff)
    assert list(got.index) == ["u1"]
    assert got["u1"] == pytest.approx(_brute(world, counts, logs, t), rel=2e-4)


def _population(profile: str, users: int = 20_000, months: int = 14, seed: int = 11):
    world = SynthWorld(users=users, months=months, start="2023-01-01", seed=seed, profile=profile)
    frames = []
    for c in range(world.n_chunks):
        latent = world.latent(c)
        u, ts, amount = world.purchases(c, latent)
        frames.append(pd.DataFrame({"user_id": world.user_ids(c)[u],
                                    "ts": pd.to_datetime(ts, unit="us", utc=True), "amount": amount}))
    return world, pd.concat(frames, ignore_index=True)


def _calibration_z(world: SynthWorld, tx: pd.DataFrame, posterior_world: SynthWorld, t: int) -> np.ndarray:
    """z-scores of (mean actual - mean forecast) next month, per forecast decile and per
    months-since-last-purchase group (groups with at least 30 spenders), with sampling errors
    from the actuals."""
    cutoff = (world.segment_starts[t + 1] - pd.Timedelta(days=1)).date()
    f = posterior_expected_spend(posterior_world, tx, cutoff)
    lo, hi = world.segment_starts[t + 1], world.segment_starts[t + 2]
    ts = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    nxt = tx[(ts >= lo) & (ts < hi) & (tx["amount"] > 0)].groupby("user_id")["amount"].sum()
    y = nxt.reindex(f.index, fill_value=0.0)
    last = tx[(ts < lo) & (tx["amount"] > 0)].assign(ts=ts).groupby("user_id")["ts"].max().reindex(f.index)
    quiet = np.minimum(((lo - last).dt.days // 30).to_numpy(), 6)
    groups = [pd.qcut(f.rank(method="first"), 10, labels=False).to_numpy(), 100 + quiet]
    z = []
    for g in groups:
        for key in np.unique(g):
            sel = g == key
            if (y[sel] > 0).sum() < 30:  # too few spenders for a normal approximation of the mean
                continue
            diff = y[sel].mean() - f[sel].mean()
            se = y[sel].std(ddof=1) / np.sqrt(sel.sum())
            z.append(diff / se)
    return np.asarray(z)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_posterior_mean_is_calibrated_on_users_drawn_from_the_prior(profile):
    world, tx = _population(profile)
    z = _calibration_z(world, tx, world, t=11)
    assert len(z) >= 12
    assert np.abs(z).max() < 4.5, np.round(z, 2)  # seen up to 4.02 over seeds 11-17 and t 9, 11
    # The same check has power: a posterior that believes churn is ten times rarer over-forecasts
    # the quiet users.
    wrong = dataclasses.replace(world.profile, churn_b=world.profile.churn_b * 10)
    mis = SynthWorld(users=world.users, months=world.months, start="2023-01-01", seed=11, profile=profile)
    mis.profile = wrong
    assert np.abs(_calibration_z(world, tx, mis, t=11)).max() > 6.0


def test_rows_after_the_cutoff_change_nothing():
    world, tx = _population("default", users=2_000, months=10)
    cutoff = (world.segment_starts[7] - pd.Timedelta(days=1)).date()
    base = posterior_expected_spend(world, tx, cutoff)
    later = tx["ts"] >= pd.Timestamp(world.segment_starts[7], tz="UTC")
    poisoned = tx.copy()
    poisoned.loc[later, "amount"] *= 1000
    extra = pd.DataFrame({"user_id": ["new-user", base.index[0]], "amount": [50.0, 70.0],
                          "ts": pd.Timestamp(world.segment_starts[8], tz="UTC")})
    pd.testing.assert_series_equal(posterior_expected_spend(world, pd.concat([poisoned, extra]), cutoff), base)
    pd.testing.assert_series_equal(posterior_expected_spend(world, tx[~later], cutoff), base)


def test_cutoff_must_close_a_month_of_the_world():
    world = _world()
    assert cutoff_month(world, dt.date(2023, 3, 31)) == 2
    with pytest.raises(SpendlabError, match="not the last day"):
        cutoff_month(world, dt.date(2023, 3, 30))
