"""The ``habit`` world: households that shop on a routine, not a Poisson clock.

Every household has a cadence (a main trip every week, or every other week) on its own weekday,
keeps that trip with a probability, and adds occasional top-up trips. Its usual basket drifts as a
slow random walk in log space around a household trend and the calendar season. A share of
households disengage: from a random week on, trip probability, top-ups and basket fall gradually
with a household half-life (no sudden death). Parameters and their sources: docs/synthetic-worlds.md.

Latent parameters (cadence, weekday, trip probability, the basket path, the disengagement) of chunk
``c`` come from ``SeedSequence(seed, spawn_key=(0, c))``; trips and baskets of replicate ``r`` from
``SeedSequence(seed, spawn_key=(1, r, c))``. The oracle is the exact expectation given the latent
path: ``sum over trips of P(trip) * E[basket]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spendlab.datasets.synth import FUTURE_PERIODS, SynthWorld

_DAY_US = 86_400_000_000
_MIN_BASKET = 0.5
#: Relative share of grocery trips by hour of day (late-morning and after-work peaks).
HOUR_WEIGHT = (0.05, 0.02, 0.01, 0.01, 0.01, 0.05, 0.2, 0.5, 0.9, 1.3, 1.6, 1.7,
               1.6, 1.4, 1.3, 1.4, 1.7, 1.9, 1.8, 1.3, 0.8, 0.5, 0.3, 0.1)


@dataclass(frozen=True)
class HabitParams:
    """The habit world's population (weekly units; see docs/synthetic-worlds.md for the sources)."""

    weekly_share: float = 0.6  # households on a weekly main trip; the others shop every other week
    keep_a: float = 8.0  # P(a scheduled trip happens) ~ Beta(keep_a, keep_b): mean 0.8
    keep_b: float = 2.0
    topup_shape: float = 1.0  # top-up trips per week ~ Gamma(shape, scale): mean 0.4
    topup_scale: float = 0.4
    topup_basket: float = 0.3  # a top-up basket is this share of the usual one
    basket_mean: float = math.log(35.0)  # log of the usual main-trip basket (household mean)
    basket_sd: float = 0.5  # between households
    trip_sigma: float = 0.45  # log sd of one basket around the household's current usual basket
    drift_sd: float = 0.03  # weekly random-walk step of the usual basket (log)
    trend_sd: float = 0.002  # household trend per week (log): about +-10% a year at one sd
    disengage_share: float = 0.35  # households that start to disengage during the window
    half_life_lo: float = 8.0  # weeks for engagement to halve, uniform between these
    half_life_hi: float = 40.0
    join_share: float = 0.2  # households recruited during the first two thirds of the window
    season: tuple[float, ...] = (0.95, 0.94, 0.98, 1.0, 1.0, 1.01, 1.0, 1.0, 0.99, 1.0, 1.04, 1.14)  # Jan..Dec


@dataclass(frozen=True)
class HabitLatent:
    """One chunk's households: per week (columns = the world's weeks) what drives their trips."""

    sched: np.ndarray  # users x weeks: P(main trip in that week), 0 when not scheduled or not yet joined
    topup: np.ndarray  # users x weeks: expected top-up trips
    log_basket: np.ndarray  # users x weeks: log usual basket (season, trend, drift, disengagement)
    trip_day: np.ndarray  # users: day offset of the main trip within a world week (0..6)


class HabitWorld(SynthWorld):
    """A seeded habit world on :class:`~spendlab.datasets.synth.SynthWorld`'s calendar and interface."""

    def __init__(self, *, users: int, months: int, start: str = "2023-01-01", seed: int = 0,
                 chunk_users: int = 50_000, params: HabitParams | None = None) -> None:
        super().__init__(users=users, months=months, start=start, seed=seed, chunk_users=chunk_users,
                         refund_rate=0.0, profile="grocery")
        self.profile_name = "habit"
        self.params = params or HabitParams()
        n_days = len(self.day_us)
        self.n_weeks = (n_days + 6) // 7
        days = self.day_us[::7].astype("datetime64[us]")
        month = (days.astype("datetime64[M]").astype(np.int64) % 12)
        self.week_season = np.asarray(self.params.season)[month]  # by the month of each week's first day
        self.dow0 = int((self.day_us[0] // _DAY_US + 3) % 7)  # 1970-01-01 was a Thursday (3)
        n_data_days = int(self.bounds[months])
        self.data_weeks = (n_data_days + 6) // 7

    def latent(self, chunk: int) -> HabitLatent:  # type: ignore[override]
        """Draw the chunk's households (the same for every replicate)."""
        p = self.params
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0, chunk)))
        n, w = self.chunk_size(chunk), self.n_weeks
        weeks = np.arange(w)[None, :]
        weekly = rng.random(n) < p.weekly_share
        phase = rng.integers(0, 2, size=n)
        scheduled = weekly[:, None] | ((weeks + phase[:, None]) % 2 == 0)
        keep = rng.beta(p.keep_a, p.keep_b, size=n)
        joins = rng.random(n) < p.join_share
        join_week = np.where(joins, rng.integers(0, max(1, int(self.data_weeks * 2 / 3)), size=n), 0)
        present = weeks >= join_week[:, None]
        disengages = rng.random(n) < p.disengage_share
        onset = rng.integers(0, max(1, self.data_weeks), size=n)
        half_life = rng.uniform(p.half_life_lo, p.half_life_hi, size=n)
        since = np.clip(weeks - onset[:, None], 0, None)
        engagement = np.where(disengages[:, None], 0.5 ** (since / half_life[:, None]), 1.0)
        walk = np.cumsum(rng.normal(0.0, p.drift_sd, size=(n, w)), axis=1)
        trend = rng.normal(0.0, p.trend_sd, size=n)[:, None] * weeks
        log_basket = (rng.normal(p.basket_mean, p.basket_sd, size=n)[:, None] + walk + trend
                      + np.log(self.week_season)[None, :] + 0.5 * np.log(engagement))
        topup = rng.gamma(p.topup_shape, p.topup_scale, size=n)[:, None] * engagement * present
        habit_dow = rng.integers(0, 7, size=n)
        return HabitLatent(sched=scheduled * present * keep[:, None] * engagement, topup=topup,
                           log_basket=log_basket, trip_day=(habit_dow - self.dow0) % 7)

    def purchases(self, chunk: int, latent: HabitLatent, *, replicate: int = 0,  # type: ignore[override]
                  future: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw trips and baskets: (chunk-local household index, ts in µs UTC, amount), sorted by household and time."""
        if not 0 <= future <= FUTURE_PERIODS:
            raise ValueError(f"future must be 0..{FUTURE_PERIODS}, got {future}")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, replicate, chunk)))
        n = len(latent.trip_day)
        main = rng.random(latent.sched.shape) < latent.sched
        u_m, w_m = np.nonzero(main)
        d_m = 7 * w_m + latent.trip_day[u_m]
        counts = rng.poisson(latent.topup)
        u_t = np.repeat(np.arange(n), counts.sum(axis=1))
        w_t = np.repeat(np.tile(np.arange(self.n_weeks), n), counts.ravel())
        d_t = 7 * w_t + rng.integers(0, 7, size=len(u_t))
        u = np.concatenate([u_m, u_t])
        w = np.concatenate([w_m, w_t])
        day = np.concatenate([d_m, d_t])
        share = np.concatenate([np.ones(len(u_m)), np.full(len(u_t), self.params.topup_basket)])
        basket = share * np.exp(latent.log_basket[u, w] + self.params.trip_sigma * rng.standard_normal(len(u)))
        hour_p = np.asarray(HOUR_WEIGHT) / sum(HOUR_WEIGHT)
        secs = rng.choice(24, size=len(u), p=hour_p) * 3600 + rng.integers(0, 3600, size=len(u))
        keep = day < self.bounds[self.months + future]
        u, day, secs, basket = u[keep], day[keep], secs[keep], basket[keep]
        ts = self.day_us[day] + secs.astype(np.int64) * 1_000_000
        amount = np.maximum(np.round(basket, 2), _MIN_BASKET)
        order = np.lexsort((ts, u))
        return u[order], ts[order], amount[order]

    def oracle(self, latent: HabitLatent, freq: str = "month") -> tuple[list, np.ndarray]:  # type: ignore[override]
        """Compute (period starts, expected gross spend of shape users x periods) for ``freq`` month or week.

        Main trips: P(trip) x E[basket] on the trip's day; top-ups: expected trips x E[top-up basket]
        spread evenly over the week's days. E[basket] = exp(mu + sigma^2 / 2) (the 50-cent floor and
        cent rounding are ignored: far below the sampling error).
        """
        starts = self.period_starts(freq)
        first_us = np.datetime64(starts[0], "us").astype(np.int64)
        if freq == "month":
            pidx = np.repeat(np.arange(len(self.season)), np.diff(self.bounds))
        else:
            pidx = (self.day_us - first_us) // (7 * _DAY_US)
        n_p, n_days = len(starts), len(self.day_us)
        e_basket = np.exp(latent.log_basket + self.params.trip_sigma ** 2 / 2)
        n = len(latent.trip_day)
        out = np.zeros((n, n_p))
        day_m = 7 * np.arange(self.n_weeks)[None, :] + latent.trip_day[:, None]
        ok = day_m < n_days
        p_m = np.where(ok, pidx[np.minimum(day_m, n_days - 1)], n_p)
        valid = ok & (p_m < n_p)
        flat = (np.arange(n)[:, None] * n_p + p_m)[valid]
        out += np.bincount(flat, weights=(latent.sched * e_basket)[valid], minlength=n * n_p).reshape(n, n_p)
        share = np.zeros((self.n_weeks, n_p))  # share of each world week's days in each period
        d = np.arange(n_days)
        inside = pidx < n_p
        np.add.at(share, (d[inside] // 7, pidx[inside]), 1.0 / 7.0)
        out += (latent.topup * self.params.topup_basket * e_basket) @ share
        return starts, out
