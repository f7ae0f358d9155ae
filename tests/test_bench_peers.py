"""benchmarks/peers.py: the frequency-generic peers of the selection suite on weekly data.

A hand-made weekly fixture gives hand-computed "last horizon-period" and "mean of the last 3
horizon-periods" predictions and the 4-week target; a property test checks both against plain date
arithmetic, and the target against spendlab's own SQL target.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.features.build import build_target

ROOT = Path(__file__).resolve().parents[1]
CUTOFF = dt.date(2024, 3, 31)  # a Sunday: the end of ISO week 2024-W13


def _peers():
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [r[0] for r in rows], "ts": pd.to_datetime([r[1] for r in rows]),
                         "amount": [r[2] for r in rows]})


FIXTURE = _tx([
    ("a", "2024-01-07 18:00", 1000.0),  # W01 (Jan 1-7): 13 weeks back, outside the last 12
    ("a", "2024-01-08 08:00", 60.0),    # W02: the oldest of the last 12 weeks
    ("a", "2024-03-03 12:00", 40.0),    # W09 (Sunday): in the last 12 weeks, not the last 4
    ("a", "2024-03-04 09:00", 20.0),    # W10 (Monday): the oldest of the last 4 weeks
    ("a", "2024-03-20 10:00", -5.0),    # a refund: not gross spend
    ("a", "2024-03-31 23:30", 10.0),    # W13, the cutoff's week
    ("a", "2024-04-01 00:00", 7.0),     # W14: the first target week
    ("a", "2024-04-10 10:00", -2.0),    # a refund in the target window
    ("a", "2024-04-28 23:59", 3.0),     # W17: the last target week
    ("a", "2024-04-29 00:00", 100.0),   # W18: after the 4-week target window
    ("b", "2024-02-12 11:00", 15.0),    # W07: in the last 12 weeks only
    ("c", "2024-04-05 10:00", 50.0),    # a user first seen after the cutoff
])
USERS = np.array(["a", "b", "z"])  # z: never seen


def test_weekly_peers_and_target_on_a_hand_made_fixture() -> None:
    peers = _peers()
    hist = FIXTURE[FIXTURE["ts"] < pd.Timestamp(CUTOFF + dt.timedelta(days=1))]
    assert peers.last_periods(hist, CUTOFF, USERS, "week", 4, k=1).tolist() == [30.0, 0.0, 0.0]
    np.testing.assert_allclose(peers.last_periods(hist, CUTOFF, USERS, "week", 4, k=3), [130 / 3, 5.0, 0.0])
    assert peers.actuals(FIXTURE, CUTOFF, USERS, "week", 4).tolist() == [10.0, 0.0, 0.0]
    assert peers.window_days(CUTOFF, "week", 4) == 28
    # No leakage: the history peers give the same answer whether or not the data after the cutoff is there.
    for k in (1, 3):
        assert (peers.last_periods(FIXTURE, CUTOFF, USERS, "week", 4, k=k).tolist()
                == peers.last_periods(hist, CUTOFF, USERS, "week", 4, k=k).tolist())


def test_weekly_panel_is_zero_filled_on_iso_week_sundays_up_to_the_cutoff() -> None:
    hist = FIXTURE[FIXTURE["ts"] < pd.Timestamp(CUTOFF + dt.timedelta(days=1))]
    panel = _peers().period_panel(hist, CUTOFF, "week").set_index(["unique_id", "ds"])["y"]
    a, b = panel.loc["a"], panel.loc["b"]
    assert (a.index.day_of_week == 6).all() and a.index.min() == pd.Timestamp("2024-01-07")
    assert a.index.max() == b.index.max() == pd.Timestamp(CUTOFF) and len(a) == 13
    assert b.index.min() == pd.Timestamp("2024-02-18") and b.tolist() == [15.0] + [0.0] * 6
    assert a[pd.Timestamp("2024-03-24")] == 0.0  # the refund's week: refunds clip to 0, never negative
    assert a.sum() == 1000 + 60 + 40 + 20 + 10


@settings(max_examples=40, deadline=None)
@given(days=st.lists(st.tuples(st.sampled_from("pq"), st.integers(0, 120), st.integers(-3, 9)), min_size=1,
                     max_size=30),
       cutoff_day=st.integers(20, 80), horizon=st.integers(1, 5), k=st.integers(1, 3))
def test_weekly_peers_match_date_arithmetic_and_spendlabs_target(days, cutoff_day, horizon, k) -> None:
    peers = _peers()
    start = dt.date(2024, 1, 1)
    tx = _tx([(u, (start + dt.timedelta(days=d)).isoformat() + " 12:00", float(a)) for u, d, a in days])
    cutoff = start + dt.timedelta(days=cutoff_day)  # any weekday: the cutoff's ISO week is what counts
    week_end = cutoff + dt.timedelta(days=6 - cutoff.weekday())
    users = np.array(["p", "q"])
    date = tx["ts"].dt.date
    pos = tx["amount"].clip(lower=0)

    def total(lo: dt.date, hi: dt.date) -> list[float]:  # gross spend per user of the days lo..hi
        return [float(pos[(tx["user_id"] == u) & (date >= lo) & (date <= hi)].sum()) for u in users]

    want_y = total(week_end + dt.timedelta(days=1), week_end + dt.timedelta(days=7 * horizon))
    np.testing.assert_allclose(peers.actuals(tx, cutoff, users, "week", horizon), want_y)
    want = total(week_end - dt.timedelta(days=7 * k * horizon - 1), week_end)
    np.testing.assert_allclose(peers.last_periods(tx, cutoff, users, "week", horizon, k=k), np.array(want) / k)
    con = duckdb.connect()
    con.register("transactions", tx)
    got = build_target(con, freq="week", as_of=cutoff, horizon=horizon).set_index("user_id")["target"]
    seen = sorted(tx.loc[tx["ts"].dt.date <= cutoff, "user_id"].unique())
    np.testing.assert_allclose(got.reindex(seen).to_numpy(), peers.actuals(tx, cutoff, np.array(seen), "week",
                                                                             horizon))


def _suite(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("selection_suite", ROOT / "benchmarks" / "selection_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def _world(name: str, rmse: float) -> dict:
    return {"world": name, "champion": "m1", "champion_rmse": rmse, "best_model": "m1", "best_test": rmse,
            "picks": {"r1": "m1", "r2": "m2"}, "regret": {"r1": 1.0, "r2": 1.25}, "n_val": 3,
            "peer_means": pd.Series({"last 4 weeks": rmse + 2.0, "lifetimes": rmse + 1.0}), "best_peer": "lifetimes",
            "delta": -1.0, "ci": (np.float64(-1.5), np.float64(-0.5)), "seconds": 3.0, "users": 10}


def test_merge_json_keeps_the_worlds_this_run_did_not_measure(tmp_path, monkeypatch, capsys) -> None:
    suite = _suite(monkeypatch)
    path = tmp_path / "suite.json"
    suite.save_json([_world("cdnow", 10.0), _world("millions_weekly", 50.0)], path)
    monkeypatch.setattr(suite, "run_world", lambda world, args, work: _world(world, 40.0))
    monkeypatch.setattr("sys.argv", ["selection_suite.py", "--worlds", "millions_weekly", "--merge-json", str(path)])
    assert suite.main() == 0
    want = suite.tables([_world("cdnow", 10.0), _world("millions_weekly", 40.0)])
    assert capsys.readouterr().out == want + "\n"
    assert "| millions_weekly | 10 | 3 | m1 | 40.000 |" in want and "| cdnow | 10 | 3 | m1 | 10.000 |" in want
    assert suite.tables(suite.load_json(path)) == want  # the file now holds the new measurement
    assert "r2 | 1.2500 (m2) | 1.2500 (m2) | **1.2500**" in want


def test_the_suite_sends_third_party_prints_to_stderr(capfd, monkeypatch) -> None:
    suite = _suite(monkeypatch)
    print("table before")
    with suite.stdout_to_stderr():
        print("message: Desired error not necessarily achieved")  # what lifetimes prints on a failed fit
        os.write(1, b"a C-level write to fd 1\n")
    print("table after", flush=True)
    out, err = capfd.readouterr()
    assert out == "table before\ntable after\n"
    assert "Desired error" in err and "C-level write" in err
