"""Spend on each user's first purchase day (the BG/NBD monetary value leaves it out) against a pandas oracle."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from spendlab.features.sql import EVENT_DAYS_TABLE, aggregate_sql, first_day_spend_sql

from .conftest import random_transactions, tx_con, tx_frame

AS_OF = dt.date(2021, 12, 31)


def _oracle(frame: pd.DataFrame, as_of: dt.date) -> dict[str, float]:
    """Per user: the sum of the exact (4-decimal) purchase amounts on the first day with a purchase."""
    rows = frame[frame["ts"] < pd.Timestamp(as_of + dt.timedelta(days=1))].copy()
    rows["exact"] = [Decimal(repr(a)).quantize(Decimal("0.0001"), ROUND_HALF_UP) for a in rows["amount"]]
    buys = rows[rows["exact"] > 0].assign(day=lambda f: f["ts"].dt.date)
    out = {}
    for user, g in buys.groupby("user_id"):
        first = g["day"].min()
        out[str(user)] = float(sum(g.loc[g["day"] == first, "exact"]))
    return out


def _probe(frame: pd.DataFrame, as_of: dt.date, *, bounded: bool = False) -> dict[str, float]:
    """The probe's result; ``bounded`` passes the latest first purchase day, as the build does."""
    con = tx_con(frame)
    con.execute(f"CREATE TEMP TABLE {EVENT_DAYS_TABLE} (day DATE)")  # no event days: not read by the probe
    source = f"SELECT user_id, ts, amount FROM transactions WHERE ts < TIMESTAMP '{as_of + dt.timedelta(days=1)}'"
    con.execute(f"CREATE TEMP TABLE periods AS {aggregate_sql(as_of, 'month', source)}")
    last = con.execute("SELECT MAX(first_purchase_day) FROM periods").fetchall()[0][0] if bounded else None
    got = con.execute(f"SELECT user_id, CAST(first_purchase_day_spend AS DOUBLE) "
                      f"FROM ({first_day_spend_sql(source, 'periods', last_first_day=last)})").fetchall()
    return {str(u): v for u, v in got}


@pytest.mark.parametrize("bounded", [False, True])
def test_refunds_zero_and_sub_unit_amounts_on_the_first_day_by_hand(bounded: bool) -> None:
    frame = tx_frame([
        ("a", "2021-03-01 09:00:00", 10.0), ("a", "2021-03-01 10:00:00", -4.0),  # the refund is not spend
        ("a", "2021-03-01 11:00:00", 0.00004), ("a", "2021-03-02 09:00:00", 7.0),  # rounds to 0: no spend
        ("b", "2021-02-27 09:00:00", -3.0), ("b", "2021-02-28 09:00:00", 0.0),  # no purchase before 03-05
        ("b", "2021-03-05 09:00:00", 2.5), ("b", "2021-03-05 18:00:00", 1.25),
        ("c", "2021-03-01 09:00:00", 0.00004), ("c", "2021-03-03 09:00:00", 6.0),  # 0.00004 is no purchase
        ("d", "2021-03-01 09:00:00", -1.0),  # refunds only: no row
        ("e", "2022-01-02 09:00:00", 9.0),  # after the cutoff: no row
    ])
    assert _probe(frame, AS_OF, bounded=bounded) == {"a": 10.0, "b": 3.75, "c": 6.0}


def test_rows_after_the_latest_first_purchase_day_are_not_read() -> None:
    # The latest first purchase day is b's 03-05, bought at 09:00 and 23:59:59: both count, while the
    # rows after that day (a's 03-06, b's 03-06) cannot be anyone's first purchase day.
    frame = tx_frame([
        ("a", "2021-03-01 09:00:00", 4.0), ("a", "2021-03-06 00:00:00", 8.0),
        ("b", "2021-03-05 09:00:00", 2.5), ("b", "2021-03-05 23:59:59", 1.5), ("b", "2021-03-06 09:00:00", 5.0),
    ])
    source = "SELECT user_id, ts, amount FROM transactions"
    sql = first_day_spend_sql(source, "periods", last_first_day=dt.date(2021, 3, 5))
    assert "TIMESTAMP '2021-03-06 00:00:00'" in sql
    assert _probe(frame, AS_OF, bounded=True) == _probe(frame, AS_OF) == {"a": 4.0, "b": 4.0}


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_matches_the_oracle_on_random_transactions(seed: int, bounded: bool) -> None:
    frame = random_transactions(seed)
    tiny = np.random.default_rng(seed).random(len(frame)) < 0.05  # sub-unit amounts that round to 0 or not
    frame.loc[tiny, "amount"] = np.random.default_rng(seed + 1).choice([0.00004, 0.00005, -0.00004], tiny.sum())
    got, want = _probe(frame, AS_OF, bounded=bounded), _oracle(frame, AS_OF)
    assert got.keys() == want.keys()
    for user, value in want.items():
        assert got[user] == pytest.approx(value, abs=1e-9), user
