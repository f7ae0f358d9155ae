"""The synthetic generator's oracle: true expected spend, checked against Monte Carlo futures.

The oracle file is compared with the average of ``R`` regenerated futures of the same users
(same latent draws, other purchase draws) over the data's months and 3 more. Tolerances come from
the Monte Carlo standard error of each average; seeds are fixed. Sums over users are close to
normal, so a period total must be within 4.5 standard errors (about 3e-4 false alarms over the ~40
periods checked). One user-period mean is less so when it rests on few purchases, so the per-cell
check uses cells with at least 30 expected purchases over the replicates and bounds the mean
squared z-score (1 in theory; ~1.0-1.15 seen over seeds with estimated errors; a wrong oracle
gives several) and the share of |z| > 4. Two wrong oracles show the checks have power.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from spendlab.datasets.synth import FUTURE_PERIODS, SynthWorld
from spendlab.errors import SpendlabError
from spendlab.jobs.datasets import synth_transactions

R = 200  # replicates: ~3 s per profile on a loaded machine
SETTINGS = {"users": 150, "months": 6, "start": "2023-09-01", "seed": 4, "chunk_users": 75}
FREQS = ("month", "week")


def _edges(starts: list[dt.date], freq: str) -> np.ndarray:
    """Period boundaries in µs: each start, then the end of the last period."""
    last = starts[-1] + dt.timedelta(days=7) if freq == "week" else (
        (starts[-1].replace(day=28) + dt.timedelta(days=4)).replace(day=1))
    return np.asarray([*starts, last], dtype="datetime64[D]").astype("datetime64[us]").astype(np.int64)


@pytest.fixture(scope="module", params=["default", "grocery"])
def mc(request, tmp_path_factory):
    """The written oracle of each frequency next to R futures' mean and standard error per cell."""
    profile = request.param
    base = tmp_path_factory.mktemp(f"oracle-{profile}")
    world = SynthWorld(**SETTINGS, profile=profile)
    out: dict[str, dict[str, np.ndarray]] = {}
    for freq in FREQS:
        synth_transactions(base / freq / "tx.parquet", **SETTINGS, profile=profile, oracle=True, freq=freq)
        oracle = pd.read_parquet(base / freq / "oracle.parquet")
        starts = world.period_starts(freq)
        table = oracle.pivot(index="user_id", columns="period_start", values="expected_spend")
        assert list(table.columns) == starts
        out[freq] = {"oracle": table.to_numpy(), "sum": [], "sum2": [], "counts": [], "edges": _edges(starts, freq)}
    for c in range(world.n_chunks):
        latent = world.latent(c)
        n = len(latent.rate)
        acc = {f: (np.zeros((n, out[f]["oracle"].shape[1])), np.zeros((n, out[f]["oracle"].shape[1])))
               for f in FREQS}
        for r in range(1, R + 1):
            u, ts, amount = world.purchases(c, latent, replicate=r, future=FUTURE_PERIODS)
            buy = amount > 0
            for f in FREQS:
                edges = out[f]["edges"]
                p = np.searchsorted(edges, ts[buy], side="right") - 1
                inside = (p >= 0) & (p < len(edges) - 1)
                n_p = len(edges) - 1
                x = np.bincount(u[buy][inside] * n_p + p[inside], weights=amount[buy][inside],
                                minlength=n * n_p).reshape(n, n_p)
                acc[f][0][...] += x
                acc[f][1][...] += x * x
        for f in FREQS:
            _, expected = world.oracle(latent, f)
            out[f]["sum"].append(acc[f][0])
            out[f]["sum2"].append(acc[f][1])
            out[f]["counts"].append(R * expected / world.expected_basket(latent)[:, None])
    for f in FREQS:
        s, s2 = np.vstack(out[f]["sum"]), np.vstack(out[f]["sum2"])
        mean = s / R
        var = np.maximum(s2 - R * mean ** 2, 0.0) / (R - 1)
        out[f].update(mean=mean, var=var, counts=np.vstack(out[f]["counts"]))
    return profile, world, out


def verdict(mean: np.ndarray, var: np.ndarray, oracle: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """The statistics the checks bound (users x periods arrays; ``counts`` = expected purchases over R)."""
    total_z = (mean.sum(axis=0) - oracle.sum(axis=0)) / np.sqrt(var.sum(axis=0) / R)
    # All periods at once: given the latent draws a user's months are independent Poisson counts
    # (only the acquisition month's at-least-one purchase links its weeks, slightly), so the
    # variances add up.
    grand_z = (mean.sum() - oracle.sum()) / np.sqrt(var.sum() / R)
    big = (counts >= 30) & (var > 0)
    z = (mean[big] - oracle[big]) / np.sqrt(var[big] / R)
    return {"max_total_z": float(np.abs(total_z).max()), "grand_total_z": float(grand_z), "cells": int(big.sum()),
            "mean_z2": float(np.mean(z ** 2)), "share_z_over_4": float(np.mean(np.abs(z) > 4))}


def passes(v: dict[str, float]) -> bool:
    return (v["max_total_z"] < 4.5 and abs(v["grand_total_z"]) < 4.5 and v["mean_z2"] < 1.35
            and v["share_z_over_4"] < 0.005)


@pytest.mark.parametrize("freq", FREQS)
def test_oracle_matches_the_monte_carlo_mean_of_regenerated_futures(mc, freq):
    profile, _, out = mc
    o = out[freq]
    v = verdict(o["mean"], o["var"], o["oracle"], o["counts"])
    assert v["cells"] > 500, v  # the per-cell check has something to check
    assert passes(v), (profile, freq, v)


@pytest.mark.parametrize("freq", FREQS)
def test_the_monte_carlo_check_rejects_a_three_percent_bias_and_swapped_users(mc, freq):
    _, _, out = mc
    o = out[freq]
    assert not passes(verdict(o["mean"], o["var"], 1.03 * o["oracle"], o["counts"]))
    swapped = np.roll(o["oracle"], 1, axis=0)  # every user gets their neighbour's expectation
    v = verdict(o["mean"], o["var"], swapped, o["counts"])
    assert v["mean_z2"] > 3, v


@pytest.mark.parametrize("freq", FREQS)
def test_no_future_spends_where_the_oracle_says_zero(mc, freq):
    """The oracle knows acquisition and churn: outside a user's active periods nothing is ever bought."""
    _, _, out = mc
    o = out[freq]
    assert (o["oracle"] == 0).any()
    assert (o["mean"][o["oracle"] == 0] == 0).all()


def test_oracle_is_zero_from_the_churn_month_and_before_acquisition(mc):
    _, world, out = mc
    monthly = out["month"]["oracle"]
    latent = np.concatenate([world.latent(c).end for c in range(world.n_chunks)])
    acq = np.concatenate([world.latent(c).acquisition for c in range(world.n_chunks)])
    m = np.arange(monthly.shape[1])
    active = (m[None, :] >= acq[:, None]) & (m[None, :] < latent[:, None])
    assert ((monthly > 0) == active).all()
    assert (~active[:, -1]).any() and active[:, -1].any()  # some churned by the last period, some not


def test_oracle_periods_are_every_period_of_the_data_and_three_more(mc, tmp_path):
    profile, _, _ = mc
    synth_transactions(tmp_path / "tx.parquet", **SETTINGS, profile=profile, oracle=True, freq="week")
    oracle = pq.read_table(tmp_path / "oracle.parquet")
    assert oracle.schema.names == ["user_id", "period_start", "expected_spend"]
    frame = oracle.to_pandas()
    tx_users = set(pq.read_table(tmp_path / "tx.parquet", columns=["user_id"]).column(0).to_pylist())
    assert set(frame["user_id"]) == tx_users and len(tx_users) == 150
    weeks = sorted(frame["period_start"].unique())
    # data 2023-09-01 (a Friday) .. 2024-02-29 (a Thursday): Mondays 2023-08-28 .. 2024-02-26, then 3 more
    assert weeks[0] == dt.date(2023, 8, 28) and weeks[-1] == dt.date(2024, 3, 18)
    assert all(w.weekday() == 0 for w in weeks) and len(weeks) == 27 + 3
    assert len(frame) == 150 * len(weeks)
    synth_transactions(tmp_path / "tx.parquet", **SETTINGS, profile=profile, oracle=True)
    months = sorted(pd.read_parquet(tmp_path / "oracle.parquet")["period_start"].unique())
    assert months == [dt.date(2023, m, 1) for m in range(9, 13)] + [dt.date(2024, m, 1) for m in range(1, 6)]


def test_latent_draws_are_shared_by_replicates_and_purchase_draws_are_not():
    world = SynthWorld(users=40, months=4, seed=9)
    again = SynthWorld(users=40, months=4, seed=9)
    a, b = world.latent(0), again.latent(0)
    for field in ("acquisition", "rate", "end", "log_basket", "habit_day"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    first, same, other = (world.purchases(0, a, replicate=r) for r in (0, 0, 1))
    np.testing.assert_array_equal(first[1], same[1])
    assert len(first[1]) != len(other[1]) or (first[1] != other[1]).any()


def test_same_seed_gives_identical_oracle_bytes(tmp_path):
    paths = []
    for name in ("a", "b"):
        synth_transactions(tmp_path / name / "tx.parquet", users=200, months=5, seed=3, chunk_users=70,
                           profile="grocery", oracle=True, freq="week")
        paths.append(tmp_path / name / "oracle.parquet")
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_refuses_to_overwrite_an_oracle_file_spendlab_did_not_write(tmp_path):
    foreign = tmp_path / "oracle.parquet"
    foreign.write_text("someone else's file")
    with pytest.raises(SpendlabError, match="refusing to overwrite"):
        synth_transactions(tmp_path / "tx.parquet", users=20, months=3, oracle=True)
    assert foreign.read_text() == "someone else's file" and not (tmp_path / "tx.parquet").exists()
    pd.DataFrame({"user_id": ["x"]}).to_parquet(foreign)  # Parquet, but not an oracle
    with pytest.raises(SpendlabError, match="refusing to overwrite"):
        synth_transactions(tmp_path / "tx.parquet", users=20, months=3, oracle=True)
    foreign.unlink()
    synth_transactions(tmp_path / "tx.parquet", users=20, months=3, oracle=True)
    synth_transactions(tmp_path / "tx.parquet", users=30, months=3, oracle=True)  # its own: replaced
    assert pd.read_parquet(foreign)["user_id"].nunique() == 30
    with pytest.raises(SpendlabError, match="where the oracle goes"):
        synth_transactions(tmp_path / "oracle.parquet", users=20, months=3, oracle=True)


def test_unknown_profile_and_frequency_are_one_line_errors(tmp_path):
    with pytest.raises(SpendlabError, match="unknown synthetic profile 'bakery'"):
        synth_transactions(tmp_path / "tx.parquet", users=20, profile="bakery")
    with pytest.raises(SpendlabError, match="freq must be one of"):
        synth_transactions(tmp_path / "tx.parquet", users=20, oracle=True, freq="day")
    assert not any(tmp_path.iterdir())
