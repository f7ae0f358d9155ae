"""The habit and mixed worlds: oracle against Monte Carlo futures, determinism, the habits themselves,
and the ``datasets synth --profile habit|mixed --oracle`` wiring."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.datasets.synth import FUTURE_PERIODS
from spendlab.datasets.worlds import HabitWorld, MixedWorld, make_world
from spendlab.jobs.datasets import synth_transactions

R = 150
SETTINGS = {"users": 120, "months": 5, "start": "2023-09-01", "seed": 4, "chunk_users": 60}


def _edges(starts: list[dt.date], freq: str) -> np.ndarray:
    last = starts[-1] + dt.timedelta(days=7) if freq == "week" else (
        (starts[-1].replace(day=28) + dt.timedelta(days=4)).replace(day=1))
    return np.asarray([*starts, last], dtype="datetime64[D]").astype("datetime64[us]").astype(np.int64)


def _monte_carlo(world: HabitWorld, freq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(oracle, mean over R futures, variance of one future, futures with spend) per user and period."""
    starts = world.period_starts(freq)
    edges, n_p = _edges(starts, freq), len(starts)
    oracles, means, variances, spent = [], [], [], []
    for c in range(world.n_chunks):
        latent = world.latent(c)
        _, oracle = world.oracle(latent, freq)
        n = oracle.shape[0]
        s, s2, nz = np.zeros((n, n_p)), np.zeros((n, n_p)), np.zeros((n, n_p))
        for r in range(1, R + 1):
            u, ts, amount = world.purchases(c, latent, replicate=r, future=FUTURE_PERIODS)
            p = np.searchsorted(edges, ts, side="right") - 1
            ok = (p >= 0) & (p < n_p)
            x = np.bincount(u[ok] * n_p + p[ok], weights=amount[ok], minlength=n * n_p).reshape(n, n_p)
            s += x
            s2 += x * x
            nz += x > 0
        mean = s / R
        spent.append(nz)
        oracles.append(oracle), means.append(mean), variances.append(np.maximum(s2 / R - mean ** 2, 0) * R / (R - 1))
    return np.vstack(oracles), np.vstack(means), np.vstack(variances), np.vstack(spent)


@pytest.mark.parametrize("profile", ["habit", "mixed"])
@pytest.mark.parametrize("freq", ["month", "week"])
def test_oracle_matches_the_monte_carlo_mean_and_rejects_a_biased_one(profile: str, freq: str) -> None:
    world = make_world(profile, **SETTINGS)
    oracle, mean, var, spent = _monte_carlo(world, freq)
    se_total = np.sqrt(var.sum(axis=0) / R)
    live = se_total > 0
    z = (mean.sum(axis=0) - oracle.sum(axis=0))[live] / se_total[live]
    assert np.abs(z).max() < 4.5, z
    grand = (mean.sum() - oracle.sum()) / np.sqrt(var.sum() / R)
    assert abs(grand) < 4.5
    assert abs((mean.sum() - 1.03 * oracle.sum()) / np.sqrt(var.sum() / R)) > 4.5  # the check has power
    # per user: the oracle explains the futures' means (a neighbour's oracle does not); cells whose mean
    # rests on at least 30 futures with spend, so the estimated variance is usable
    cell = (var > 0) & (spent >= 30)
    zc = (mean[cell] - oracle[cell]) / np.sqrt(var[cell] / R)
    assert np.mean(zc ** 2) < 1.5
    shifted = np.roll(oracle, 1, axis=0)[cell]
    assert np.mean(((mean[cell] - shifted) / np.sqrt(var[cell] / R)) ** 2) > 3
    assert (mean[oracle == 0] == 0).all()  # nothing is bought where the oracle says zero


@pytest.mark.parametrize("profile", ["habit", "mixed"])
def test_same_seed_same_data_other_seed_other_data(profile: str, tmp_path) -> None:
    a = synth_transactions(tmp_path / "a" / "tx.parquet", users=300, months=6, seed=9, profile=profile, oracle=True)
    b = synth_transactions(tmp_path / "b" / "tx.parquet", users=300, months=6, seed=9, profile=profile, oracle=True)
    c = synth_transactions(tmp_path / "c" / "tx.parquet", users=300, months=6, seed=10, profile=profile)
    assert a == b and a["transactions"] != c["transactions"]
    for name in ("tx.parquet", "oracle.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    tx = pd.read_parquet(tmp_path / "a" / "tx.parquet")
    assert (tx["amount"] > 0).all() and tx["ts"].min() >= pd.Timestamp("2023-01-01", tz="UTC")
    assert tx["ts"].max() < pd.Timestamp("2023-07-01", tz="UTC")
    oracle = pd.read_parquet(tmp_path / "a" / "oracle.parquet")
    assert oracle["period_start"].nunique() == 6 + FUTURE_PERIODS and (oracle["expected_spend"] >= 0).all()


def test_weekly_households_shop_on_their_own_weekday_and_drift_slowly() -> None:
    world = HabitWorld(users=400, months=6, seed=2)
    latent = world.latent(0)
    u, ts, _ = world.purchases(0, latent)
    dow = pd.to_datetime(ts, unit="us").dayofweek.to_numpy()
    frame = pd.DataFrame({"u": u, "dow": dow})
    modal_share = frame.groupby("u")["dow"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert modal_share.median() > 0.6  # a routine, not a Poisson clock (1/7 + noise)
    steps = np.diff(latent.log_basket, axis=1)
    assert np.median(np.abs(steps)) < 0.05  # the usual basket drifts slowly week to week


def test_disengagement_is_gradual_not_a_coin_flip() -> None:
    world = HabitWorld(users=2000, months=24, seed=3)
    latent = world.latent(0)
    trips = latent.sched.sum(axis=0)[: world.data_weeks] + latent.topup.sum(axis=0)[: world.data_weeks]
    assert trips[-1] < trips[len(trips) // 2]  # the population thins out
    w = world.data_weeks // 2 * 2
    per_user = latent.sched[:, :w] + latent.topup[:, :w]
    fortnights = per_user.reshape(len(per_user), -1, 2).sum(axis=2)  # a fortnightly cadence cancels out
    prev, nxt = fortnights[:, :-1], fortnights[:, 1:]
    ratio = nxt[prev > 0] / prev[prev > 0]
    # the shortest half-life is 8 weeks: at most 1 - 0.5 ** (2 / 8) = 16% less from one fortnight to the next
    assert ratio.min() >= 0.5 ** (2 / 8) - 1e-9
    assert (ratio < 0.99).mean() > 0.05  # and some households do fall


def test_the_mixed_world_holds_both_kinds_of_shopper() -> None:
    world = MixedWorld(users=2000, months=12, seed=1)
    latent = world.latent(0)
    assert 0.45 < latent.habitual.mean() < 0.55
    u, ts, _ = world.purchases(0, latent)
    per_user = np.bincount(u, minlength=2000)
    assert per_user[latent.habitual].mean() > 3 * per_user[~latent.habitual].mean()
