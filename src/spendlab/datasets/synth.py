"""Embedded datasets and seeded synthetic generators."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spendlab.calendar import check_freq, period_starts, shift_period
from spendlab.errors import SpendlabError

if TYPE_CHECKING:
    import numpy as np

    from spendlab.datasets.shift import Shift


# --- synthetic generator ---------------------------------------------------------------------
#
# A synthetic world is a set of latent user parameters (drawn from one seeded stream) and the
# purchases they generate (drawn from another). Because the generator knows the latent
# parameters, it also knows each user's true expected spend per period: the oracle, the
# measurable limit of any forecaster (docs/synthetic-data.md).

FUTURE_PERIODS = 3  #: periods past the data's end that the oracle also covers
_DAY_US = 86_400_000_000
_MIN_BASKET = 0.5  # baskets are floored at 50 cents (never a zero purchase)

_WEEKDAY_WEIGHT = (0.9, 0.95, 1.0, 1.0, 1.15, 1.35, 1.1)  # Mon..Sun
_HOUR_WEIGHT = (
    0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.6, 0.9, 1.1, 1.3, 1.5,
    1.7, 1.6, 1.4, 1.3, 1.4, 1.6, 1.8, 1.9, 1.7, 1.3, 0.9, 0.5,
)


@dataclass(frozen=True)
class SynthProfile:
    """The generator's settings: the distributions of the latent user parameters and the calendar.

    A user's monthly purchase rate is Gamma(``rate_shape``, ``rate_scale``), the monthly churn
    probability Beta(``churn_a``, ``churn_b``), the log basket mean Normal(``basket_mean``,
    ``basket_sd``) and one basket lognormal around it with log sd ``basket_sigma``. Day weights:
    ``weekday`` (Mon..Sun), a December ramp up to ``1 + december_ramp`` by the 24th, November x
    ``november``, public holidays x ``holiday``, Black Friday and Cyber Monday multipliers;
    ``habit`` > 0 gives every user a shopping weekday weighted ``1 + habit`` (a weekly routine).
    """

    description: str
    rate_shape: float
    rate_scale: float
    churn_a: float
    churn_b: float
    basket_mean: float
    basket_sd: float
    basket_sigma: float
    weekday: tuple[float, float, float, float, float, float, float]
    december_ramp: float
    november: float
    holiday: float
    black_friday: float
    cyber_monday: float
    habit: float = 0.0
    acquisition_share: float = 2 / 3  # users are acquired over the first two thirds of the months


PROFILES: dict[str, SynthProfile] = {
    "default": SynthProfile(
        "retail: ~3 purchases a month while active (overdispersed), ~7% monthly churn, strong Q4",
        rate_shape=1.2, rate_scale=2.6, churn_a=1.0, churn_b=14.0, basket_mean=3.3, basket_sd=0.55,
        basket_sigma=0.75, weekday=_WEEKDAY_WEIGHT, december_ramp=0.6, november=1.15, holiday=0.6,
        black_friday=2.5, cyber_monday=1.8),
    "grocery": SynthProfile(
        "grocery-like: about one purchase a week on a habitual weekday, ~1% monthly churn, mild Q4",
        rate_shape=4.0, rate_scale=1.1, churn_a=1.0, churn_b=100.0, basket_mean=3.7, basket_sd=0.35,
        basket_sigma=0.45, weekday=(0.85, 0.8, 0.85, 0.95, 1.1, 1.35, 1.1), december_ramp=0.2,
        november=1.05, holiday=0.5, black_friday=1.0, cyber_monday=1.0, habit=2.0),
    "occasional": SynthProfile(
        "occasional buyers (BTYD): under one purchase a month, ~8% monthly churn, larger baskets",
        rate_shape=0.8, rate_scale=1.0, churn_a=1.0, churn_b=12.0, basket_mean=3.6, basket_sd=0.6,
        basket_sigma=0.7, weekday=_WEEKDAY_WEIGHT, december_ramp=0.4, november=1.1, holiday=0.6,
        black_friday=1.8, cyber_monday=1.4),
}


def _profile(name: str) -> SynthProfile:
    if name not in PROFILES:
        raise SpendlabError(f"unknown synthetic profile {name!r}; choose {', '.join(PROFILES)}, habit or mixed")
    return PROFILES[name]


def _day_weights(days: np.ndarray, profile: SynthProfile, country: str = "US") -> np.ndarray:
    """Relative purchase intensity per day: weekday pattern, November/December, holidays, retail days."""
    import holidays
    import numpy as np
    import pandas as pd

    idx = pd.DatetimeIndex(days)
    month, day, wd = idx.month.to_numpy(), idx.day.to_numpy(), idx.day_of_week.to_numpy()
    w = np.asarray(profile.weekday)[wd]
    w = w * np.where(month == 12, 1.0 + profile.december_ramp * (np.minimum(day, 24) / 24.0), 1.0)
    w = w * np.where(month == 11, profile.november, 1.0)
    hol = holidays.country_holidays(country, years=sorted(set(idx.year)))
    w = w * np.where([d in hol for d in idx.date], profile.holiday, 1.0)
    w = w * np.where((month == 11) & (wd == 4) & (day >= 23) & (day <= 29), profile.black_friday, 1.0)
    cyber = (wd == 0) & (((month == 11) & (day >= 26)) | ((month == 12) & (day <= 2)))
    return w * np.where(cyber, profile.cyber_monday, 1.0)


@dataclass(frozen=True)
class SynthLatent:
    """One chunk's latent user parameters (months are indices into the world's month segments)."""

    acquisition: np.ndarray  # month of the first purchase
    rate: np.ndarray  # expected purchases per active month, before the calendar's season factor
    end: np.ndarray  # first month after churn (active months: acquisition .. end - 1)
    log_basket: np.ndarray  # mean log basket size
    habit_day: np.ndarray  # shopping weekday (0 = Monday), used when the profile has a habit


class SynthWorld:
    """A seeded synthetic population: calendar, latent draws per chunk of users, purchase draws.

    Latent parameters of chunk ``c`` come from ``SeedSequence(seed, spawn_key=(0, c))`` and its
    purchases from ``SeedSequence(seed, spawn_key=(1, replicate, c))``: the written data is
    replicate 0; other replicates are other futures of the same users (for Monte Carlo checks).
    Months are segments from ``start`` (the first one partial when ``start`` is not a 1st) to
    :data:`FUTURE_PERIODS` months past the data, so the oracle can look past its end.
    """

    def __init__(self, *, users: int, months: int, start: str = "2023-01-01", seed: int = 0,
                 chunk_users: int = 50_000, refund_rate: float = 0.01, profile: str = "default",
                 shift: Shift | None = None) -> None:
        import numpy as np
        import pandas as pd

        if users < 1 or months < 1 or chunk_users < 1:
            raise SpendlabError("--users, --months and --chunk-users must be positive")
        self.users, self.months, self.seed = users, months, seed
        self.chunk_users, self.refund_rate = chunk_users, refund_rate
        self.shift = shift  # a change of rate and basket from a known month (spendlab.datasets.shift)
        self.profile_name, self.profile = profile, _profile(profile)
        first = pd.Timestamp(start).normalize()
        n_seg = months + FUTURE_PERIODS
        seg = pd.date_range(first, periods=n_seg + 1, freq="MS")
        if first.day != 1:
            seg = seg.insert(0, first)[: n_seg + 1]
        self.segment_starts = seg
        days = pd.date_range(seg[0], seg[-1] - pd.Timedelta(days=1), freq="D")
        self.day_us = days.values.astype("datetime64[us]").astype(np.int64)
        base = _day_weights(days.values, self.profile)
        seg_of_day = np.searchsorted(seg.values, days.values, side="right") - 1
        self.bounds = np.searchsorted(seg_of_day, np.arange(n_seg + 1))  # first day of each segment
        means = np.add.reduceat(base, self.bounds[:-1]) / np.diff(self.bounds)
        self.season = means / means[:months].mean()  # mean 1 over the data's months
        if self.profile.habit:
            own = days.weekday.to_numpy()[None, :] == np.arange(7)[:, None]
            self.weights = base[None, :] * (1.0 + self.profile.habit * own)  # one row per habit day
        else:
            self.weights = base[None, :]
        # Cumulative weights with a leading 0, one block per habit day, offset so the whole is
        # increasing: a purchase's day is one searchsorted in its block's month range.
        cum = np.concatenate([np.zeros((len(self.weights), 1)), np.cumsum(self.weights, axis=1)], axis=1)
        cum += np.concatenate([[0.0], np.cumsum(cum[:, -1])[:-1]])[:, None]
        self._cum = cum.ravel()
        self.n_chunks = (users + chunk_users - 1) // chunk_users

    # -- draws --------------------------------------------------------------------------------

    def latent(self, chunk: int) -> SynthLatent:
        """Return the latent parameters of chunk ``chunk``'s users (the same for every replicate)."""
        import numpy as np

        p = self.profile
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0, chunk)))
        n = self.chunk_size(chunk)
        acquisition = rng.integers(0, max(1, math.floor(self.months * p.acquisition_share + 1e-9)), size=n)
        rate = rng.gamma(shape=p.rate_shape, scale=p.rate_scale, size=n)
        churn = rng.beta(p.churn_a, p.churn_b, size=n)
        end = acquisition + 1 + rng.geometric(np.clip(churn, 1e-3, 1.0), size=n)
        log_basket = rng.normal(p.basket_mean, p.basket_sd, size=n)
        habit_day = rng.integers(0, 7, size=n)
        return SynthLatent(acquisition, rate, end, log_basket, habit_day)

    def purchases(self, chunk: int, latent: SynthLatent, *, replicate: int = 0,
                  future: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (chunk-local user index, ts in µs UTC, amount), sorted by user and time.

        The data's months plus ``future`` more (at most :data:`FUTURE_PERIODS`). Refunds are extra rows: a
        partial return 1-14 days after a purchase (dropped if that falls past the end); gross spend is the
        purchases alone.
        """
        import numpy as np

        if not 0 <= future <= FUTURE_PERIODS:
            raise ValueError(f"future must be 0..{FUTURE_PERIODS}, got {future}")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, replicate, chunk)))
        n_months = self.months + future
        counts = rng.poisson(self._rates(latent, n_months))
        rows = np.arange(len(latent.rate))
        counts[rows, latent.acquisition] = np.maximum(counts[rows, latent.acquisition], 1)  # acquisition
        u = np.repeat(rows, counts.sum(axis=1))
        m = np.repeat(np.tile(np.arange(n_months), len(rows)), counts.ravel())
        k = len(u)
        block = (latent.habit_day[u] if self.profile.habit else np.zeros(k, dtype=np.int64)) * (len(self.day_us) + 1)
        lo, hi = self._cum[block + self.bounds[m]], self._cum[block + self.bounds[m + 1]]
        day = np.searchsorted(self._cum, lo + rng.random(k) * (hi - lo)) - block - 1
        day = np.clip(day, self.bounds[m], self.bounds[m + 1] - 1)
        hour_p = np.asarray(_HOUR_WEIGHT) / sum(_HOUR_WEIGHT)
        secs = rng.choice(24, size=k, p=hour_p) * 3600 + rng.integers(0, 3600, size=k)
        ts = self.day_us[day] + secs.astype(np.int64) * 1_000_000
        basket = np.exp(latent.log_basket[u] + self.profile.basket_sigma * rng.standard_normal(k))
        if self.shift is not None:
            basket = basket * self.shift.factors(n_months, "basket")[m]
        amount = np.maximum(np.round(basket, 2), _MIN_BASKET)
        ref = np.flatnonzero(rng.random(k) < self.refund_rate)
        r_ts = ts[ref] + rng.integers(86_400, 15 * 86_400, size=len(ref)) * 1_000_000
        r_amount = -np.maximum(np.round(amount[ref] * rng.uniform(0.1, 1.0, size=len(ref)), 2), 0.01)
        keep = r_ts < self.day_us[0] + self.bounds[n_months] * _DAY_US
        u = np.concatenate([u, u[ref][keep]])
        ts = np.concatenate([ts, r_ts[keep]])
        amount = np.concatenate([amount, r_amount[keep]])
        order = np.lexsort((ts, u))
        return u[order], ts[order], amount[order]

    def _rates(self, latent: SynthLatent, n_months: int) -> np.ndarray:
        """Poisson mean of each user's purchases per month (0 before acquisition and after churn)."""
        import numpy as np

        m = np.arange(n_months)
        active = (m[None, :] >= latent.acquisition[:, None]) & (m[None, :] < latent.end[:, None])
        rate = latent.rate[:, None] * self.season[None, :n_months] * active
        return rate if self.shift is None else rate * self.shift.factors(n_months, "rate")[None, :]

    # -- the oracle ---------------------------------------------------------------------------

    def expected_basket(self, latent: SynthLatent) -> np.ndarray:
        """E[max(exp(mu + sigma Z), 0.5)] per user (the cent rounding is ignored: < 1e-4 relative)."""
        import numpy as np

        s, mu, c = self.profile.basket_sigma, latent.log_basket, _MIN_BASKET
        phi = np.vectorize(lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0)), otypes=[float])
        return np.exp(mu + s * s / 2) * phi((mu + s * s - math.log(c)) / s) + c * phi((math.log(c) - mu) / s)

    def expected_monthly_spend(self, latent: SynthLatent) -> np.ndarray:
        """Return the true expected gross spend per user and month segment, data months plus the future ones.

        Poisson(lambda) purchases, at least one in the acquisition month (E = lambda + e^-lambda),
        times the expected basket; 0 outside the user's active months.
        """
        import numpy as np

        lam = self._rates(latent, len(self.season))
        rows = np.arange(len(latent.rate))
        lam[rows, latent.acquisition] += np.exp(-lam[rows, latent.acquisition])
        if self.shift is None:
            return lam * self.expected_basket(latent)[:, None]
        after = SynthLatent(latent.acquisition, latent.rate, latent.end,
                            latent.log_basket + math.log(self.shift.basket), latent.habit_day)
        late = self.shift.factors(lam.shape[1], "basket") != 1.0
        return lam * np.where(late[None, :], self.expected_basket(after)[:, None], self.expected_basket(latent)[:, None])

    def period_starts(self, freq: str) -> list[dt.date]:
        """Return the oracle's periods: every period with a day of data, then :data:`FUTURE_PERIODS` more."""
        check_freq(freq)
        first = self.segment_starts[0].date()
        last = (self.segment_starts[self.months] - dt.timedelta(days=1)).date()
        return period_starts(first, shift_period(last, freq, FUTURE_PERIODS), freq)  # type: ignore[arg-type]

    def oracle(self, latent: SynthLatent, freq: str = "month") -> tuple[list[dt.date], np.ndarray]:
        """(period starts, expected gross spend of shape users x periods) for ``freq`` month or week.

        A week's expectation sums, over the months it overlaps, the month's expectation times the
        share of that month's day weight (the user's own, with a habit) that falls in the week.
        """
        import numpy as np

        starts = self.period_starts(freq)
        monthly = self.expected_monthly_spend(latent)
        n_seg = len(self.season)
        if freq == "month":
            return starts, monthly[:, : len(starts)]
        first_us = np.datetime64(starts[0], "us").astype(np.int64)
        week = (self.day_us - first_us) // (7 * _DAY_US)
        seg = np.repeat(np.arange(n_seg), np.diff(self.bounds))
        keep = week < len(starts)
        out = np.zeros((len(latent.rate), len(starts)))
        cls = latent.habit_day if self.profile.habit else np.zeros(len(latent.rate), dtype=np.int64)
        for k, w in enumerate(self.weights):
            share = np.bincount(seg[keep] * len(starts) + week[keep], weights=w[keep],
                                minlength=n_seg * len(starts)).reshape(n_seg, len(starts))
            share /= np.add.reduceat(w, self.bounds[:-1])[:, None]
            mine = cls == k
            out[mine] = monthly[mine] @ share
        return starts, out

    # -- helpers ------------------------------------------------------------------------------

    def chunk_size(self, chunk: int) -> int:
        """Return the number of users in chunk ``chunk`` (the last chunk may be short)."""
        return min(self.users, (chunk + 1) * self.chunk_users) - chunk * self.chunk_users

    def user_ids(self, chunk: int) -> np.ndarray:
        """Return the chunk's user ids, ``u`` + the 1-based user number zero-padded to a common width."""
        import numpy as np

        lo = chunk * self.chunk_users
        pad = max(7, len(str(self.users)))
        return np.char.add("u", np.char.zfill(np.arange(lo + 1, lo + self.chunk_size(chunk) + 1).astype(str), pad))


ORACLE_FILE = "oracle.parquet"
#: Parquet schema-metadata key that marks an oracle file as spendlab's (and holds what it is about).
ORACLE_KEY = b"spendlab.oracle"


