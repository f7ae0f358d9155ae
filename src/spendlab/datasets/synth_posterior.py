"""The Bayes limit of a synthetic world: the best forecast the observed data allows.

The oracle (:meth:`SynthWorld.oracle`) knows every user's latent parameters: purchase rate, churn
month, basket mean. No forecaster can: it sees each user's purchases up to a cutoff. The best it can
do under squared error is the **posterior mean** of next period's spend given those purchases, under
the generator's own model and priors (the season, the Gamma rate prior, the Beta-geometric churn,
the Normal prior of the log basket). Its RMSE is what a perfect model of this generator would score;
the distance from the oracle down to it is information the data does not hold.

Closed form, per user (``a`` = acquisition month, ``t`` = the cutoff's month, ``s_m`` = the season):

- churn: ``G ~`` Geometric(q) on 1, 2, ..., ``q ~`` Beta(alpha, beta), active months ``a .. a + G``;
  ``P(G = g) = B(alpha + 1, beta + g - 1) / B(alpha, beta)``, ``P(G > D) = B(alpha, beta + D) / B(alpha, beta)``;
- purchases: Poisson(r s_m) in active months, at least one in month ``a`` (so a single purchase in
  ``a`` has likelihood ``e^{-r s_a} (1 + r s_a)``); ``r ~`` Gamma(k, theta) integrates out in closed
  form for each ``g`` (a Gamma integral), given no purchases after ``a + g``;
- ``E[purchases in t + 1] = s_{t+1} E[r 1{G > t - a} | data]``;
- basket: log amount ~ Normal(mu, sigma^2), ``mu ~`` Normal(m0, s0^2), conjugate:
  ``E[basket] = exp(mu_post + v_post / 2 + sigma^2 / 2)`` (the 50-cent floor ignored: with the
  profiles' settings it is below 1e-4 of the mean).

Rate and churn are independent of the basket a priori and the likelihood factorises, so the
posterior mean of spend is the product of the two posterior means.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from spendlab.errors import SpendlabError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from spendlab.datasets.synth import SynthWorld


def month_index(world: SynthWorld, ts: pd.Series) -> np.ndarray:
    """Index of the world's month segment holding each (UTC) timestamp."""
    import numpy as np
    import pandas as pd

    t = pd.to_datetime(ts)
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.searchsorted(world.segment_starts.values, t.to_numpy(dtype="datetime64[ns]"), side="right") - 1


def cutoff_month(world: SynthWorld, cutoff: dt.date) -> int:
    """Return the index of the month segment that ``cutoff`` (its last day) closes."""
    starts = [d.date() for d in world.segment_starts]
    nxt = cutoff + dt.timedelta(days=1)
    if nxt not in starts[1:-1]:  # a month with a month after it
        raise SpendlabError(f"cutoff {cutoff} is not the last day of one of the world's months")
    return starts.index(nxt) - 1


def posterior_expected_spend(world: SynthWorld, tx: pd.DataFrame, cutoff: dt.date) -> pd.Series:
    """E[gross spend in the month after ``cutoff`` | every purchase up to ``cutoff``], per user.

    ``tx``: ``user_id``, ``ts`` (UTC), ``amount`` (purchases > 0; refunds, < 0, carry no
    information the model uses). Users with a purchase by the cutoff are returned, indexed by
    ``user_id``; rows after the cutoff are ignored.
    """
    import numpy as np
    import pandas as pd

    t = cutoff_month(world, cutoff)
    buy = tx.loc[tx["amount"] > 0, ["user_id", "ts", "amount"]]
    m = month_index(world, buy["ts"])
    keep = m <= t
    buy, m = buy[keep], m[keep]
    if buy.empty:
        return pd.Series(dtype=np.float64, name="bayes_expected_spend")
    counts = pd.crosstab(buy["user_id"].to_numpy(), m).reindex(columns=range(t + 1), fill_value=0)
    rate_alive = _rate_if_active(world, counts.to_numpy(dtype=np.float64), t)
    logs = pd.Series(np.log(buy["amount"].to_numpy(dtype=np.float64)), index=buy["user_id"].to_numpy())
    per_user = logs.groupby(level=0)
    basket = _basket(world, per_user.sum().reindex(counts.index).to_numpy(),
                     per_user.count().reindex(counts.index).to_numpy())
    out = world.season[t + 1] * rate_alive * basket
    return pd.Series(out, index=pd.Index(counts.index, name="user_id"), name="bayes_expected_spend")


def _rate_if_active(world: SynthWorld, C: np.ndarray, t: int) -> np.ndarray:
    """E[r 1{active in month t + 1} | purchase counts ``C`` (users x months 0..t)]."""
    import numpy as np
    from scipy.special import betaln, gammaln, logsumexp

    p, season = world.profile, world.season
    n = len(C)
    rows = np.arange(n)
    a = (C > 0).argmax(axis=1)  # acquisition month: the first with a purchase
    last = t - (C[:, ::-1] > 0).argmax(axis=1)  # last month with a purchase
    D = t - a  # months observed after the acquisition month
    n_a, s_a = C[rows, a], season[a]
    k, theta = p.rate_shape, p.rate_scale
    months = np.arange(t + 1)[None, :]

    def gamma_terms(after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the logs of the integrals over r of (likelihood x prior) and of r x (likelihood x prior).

        Both are up to factors common to every churn month, for the active months ``after`` a.
        """
        N = (C * after).sum(axis=1)
        log_b = np.log(1.0 / theta + s_a + (season[None, : t + 1] * after).sum(axis=1))
        many = k + n_a + N  # two or more purchases in month a: a Poisson term, constants dropped
        one = k + N  # exactly one: e^{-r s_a} (1 + r s_a)

        def lg(A: np.ndarray) -> np.ndarray:  # log of the Gamma integral of r^(A-1) e^(-r B)
            return gammaln(A) - A * log_b

        i_one = np.logaddexp(lg(one), np.log(s_a) + lg(one + 1))
        m_one = np.logaddexp(lg(one + 1), np.log(s_a) + lg(one + 2))
        return np.where(n_a >= 2, lg(many), i_one), np.where(n_a >= 2, lg(many + 1), m_one)

    g_max = int(D.max())
    log_w = np.full((n, g_max + 1), -np.inf)
    for g in range(1, g_max + 1):  # churned: last active month a + g <= t, nothing bought after it
        ok = (g <= D) & (last - a <= g)
        prior = betaln(p.churn_a + 1, p.churn_b + g - 1) - betaln(p.churn_a, p.churn_b)
        i, _ = gamma_terms((months > a[:, None]) & (months <= a[:, None] + g))
        log_w[:, g - 1] = np.where(ok, prior + i, -np.inf)
    alive_prior = betaln(p.churn_a, p.churn_b + D) - betaln(p.churn_a, p.churn_b)  # still active in t + 1
    i, mm = gamma_terms(months > a[:, None])
    log_w[:, g_max] = alive_prior + i
    return np.exp(alive_prior + mm - logsumexp(log_w, axis=1))


def _basket(world: SynthWorld, sum_log: np.ndarray, n_log: np.ndarray) -> np.ndarray:
    """E[basket | the user's log amounts] (conjugate Normal prior of the log basket mean)."""
    import numpy as np

    p = world.profile
    var = p.basket_sigma ** 2
    precision = 1.0 / p.basket_sd ** 2 + n_log / var
    mu = (p.basket_mean / p.basket_sd ** 2 + sum_log / var) / precision
    return np.exp(mu + 0.5 / precision + var / 2.0)
