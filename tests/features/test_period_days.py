"""Per-period first / last purchase days of the aggregate, derived from the day mask, against pandas."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.calendar import period_start
from spendlab.features.sql import EVENT_DAYS_TABLE, aggregate_sql

from .conftest import random_transactions, tx_con, tx_frame


def _aggregate(frame: pd.DataFrame, freq: str, as_of: dt.date) -> pd.DataFrame:
    con = tx_con(frame)
    con.execute(f"CREATE TEMP TABLE {EVENT_DAYS_TABLE} (day DATE)")
    source = f"SELECT user_id, ts, amount FROM transactions WHERE ts < TIMESTAMP '{as_of + dt.timedelta(days=1)}'"
    got = con.execute(f"SELECT user_id, k, first_day, first_purchase_day, last_purchase_day "
                      f"FROM ({aggregate_sql(as_of, freq, source)}) ORDER BY user_id, k").df()
    return got.assign(user_id=got["user_id"].astype(str))


def _oracle(frame: pd.DataFrame, freq: str, as_of: dt.date) -> pd.DataFrame:
    """Per user and period: the first day with any row, the first and last day with a purchase."""
    rows = frame[frame["ts"] < pd.Timestamp(as_of + dt.timedelta(days=1))].assign(day=lambda f: f["ts"].dt.date)
    start = period_start(as_of, freq)
    rows["period"] = [period_start(d, freq) for d in rows["day"]]
    if freq == "month":
        rows["k"] = [(start.year - p.year) * 12 + start.month - p.month for p in rows["period"]]
    else:
        rows["k"] = [(start - p).days // 7 for p in rows["period"]]
    buys = rows[rows["amount"] > 0]
    out = rows.groupby(["user_id", "k"], as_index=False).agg(first_day=("day", "min"))
    days = buys.groupby(["user_id", "k"], as_index=False).agg(first_purchase_day=("day", "min"),
                                                              last_purchase_day=("day", "max"))
    out = out.merge(days, on=["user_id", "k"], how="left").sort_values(["user_id", "k"], ignore_index=True)
    return out.assign(user_id=out["user_id"].astype(str))


def _as_days(col: pd.Series) -> list[object]:
    return [None if pd.isna(v) else pd.Timestamp(v).date() for v in col]


def _check(frame: pd.DataFrame, freq: str, as_of: dt.date) -> None:
    got, want = _aggregate(frame, freq, as_of), _oracle(frame, freq, as_of)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    assert got["k"].tolist() == want["k"].tolist()
    for col in ("first_day", "first_purchase_day", "last_purchase_day"):
        assert _as_days(got[col]) == _as_days(want[col]), col


@pytest.mark.parametrize("freq", ["month", "week"])
def test_edges_of_the_period_by_hand(freq: str) -> None:
    """The first and last day of a period (bit 0 and the top bit), refunds before purchases, refunds only."""
    frame = tx_frame([
        ("a", "2021-01-31 10:00:00", 5.0),   # the 31st: the month's top bit; a Sunday: the week's bit 0
        ("a", "2021-01-01 09:00:00", 2.0),   # the 1st: the month's bit 0
        ("a", "2021-01-25 09:00:00", 3.0),   # a Monday: the week's top bit
        ("b", "2021-01-10 09:00:00", -4.0),  # a refund before the first purchase of the period
        ("b", "2021-01-12 09:00:00", 6.0),
        ("c", "2021-01-05 09:00:00", -1.0),  # refunds only: no purchase days
    ])
    _check(frame, freq, dt.date(2021, 1, 31))


@pytest.mark.parametrize("freq", ["month", "week"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_min_and_max_of_the_purchase_days(freq: str, seed: int) -> None:
    frame = random_transactions(seed)
    as_of = dt.date.fromisoformat(str(frame["ts"].max().date())) - dt.timedelta(days=seed * 9)
    _check(frame, freq, as_of)


def test_a_full_month_sets_all_31_bits() -> None:
    """A purchase on every day of a 31-day month: first day 1st, last day 31st, 31 active days."""
    days = pd.date_range("2021-03-01", "2021-03-31", freq="D")
    frame = tx_frame([("a", f"{d.date()} 12:00:00", 1.0) for d in days][::-1])
    got = _aggregate(frame, "month", dt.date(2021, 3, 31))
    assert _as_days(got["first_purchase_day"]) == [dt.date(2021, 3, 1)]
    assert _as_days(got["last_purchase_day"]) == [dt.date(2021, 3, 31)]
    assert np.array_equal(got["k"].to_numpy(), [0])
