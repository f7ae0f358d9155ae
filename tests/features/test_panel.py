"""The dense per-user panel: hand-computed fixtures and a plain-pandas oracle."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.features import build_panel, build_panel_table

from .conftest import random_transactions, tx_con, tx_frame

D = dt.date
PANEL_COLS = ["user_id", "period_start", "spend", "n_transactions", "active_days", "refund_amount", "refund_count"]

# a: two purchases on different January days, nothing in February, two in March (one at 23:59:59 on
#    the cutoff day), and purchases after the cutoff that must not appear.
# b: starts mid-period (Feb 15, two purchases the same day), then only a refund in March.
# c: first transaction after the cutoff: not in the panel at all.
HAND = tx_frame([
    ("a", "2021-01-05 10:00:00", 10.0),
    ("a", "2021-01-20 09:00:00", 5.0),
    ("a", "2021-03-10 12:00:00", 20.0),
    ("a", "2021-03-31 23:59:59", 1.0),
    ("a", "2021-04-01 00:00:00", 30.0),
    ("b", "2021-02-15 08:00:00", 7.0),
    ("b", "2021-02-15 18:00:00", 3.0),
    ("b", "2021-03-02 11:00:00", -4.0),
    ("c", "2021-04-02 10:00:00", 50.0),
])


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame[PANEL_COLS].itertuples(index=False)]


def test_monthly_panel_fills_zero_for_inactive_months_and_starts_at_first_period() -> None:
    panel = build_panel(tx_con(HAND), freq="month", as_of=D(2021, 3, 31))
    assert _rows(panel) == [
        ("a", D(2021, 1, 1), 15.0, 2, 2, 0.0, 0),
        ("a", D(2021, 2, 1), 0.0, 0, 0, 0.0, 0),
        ("a", D(2021, 3, 1), 21.0, 2, 2, 0.0, 0),
        ("b", D(2021, 2, 1), 10.0, 2, 1, 0.0, 0),
        ("b", D(2021, 3, 1), 0.0, 0, 0, 4.0, 1),
    ]


def test_panel_excludes_rows_after_the_cutoff_day() -> None:
    panel = build_panel(tx_con(HAND), freq="month", as_of=D(2021, 3, 30))
    a_march = panel[(panel["user_id"] == "a") & (panel["period_start"] == D(2021, 3, 1))]
    assert a_march["spend"].tolist() == [20.0]  # the 23:59:59 purchase on the 31st is after the cutoff


def test_weekly_panel_keeps_a_week_spanning_new_year_as_one_week() -> None:
    frame = tx_frame([
        ("x", "2021-12-20 10:00:00", 1.0),   # Monday of the week before
        ("x", "2021-12-30 10:00:00", 4.0),   # Thursday, ISO week 2021-W52
        ("x", "2022-01-02 22:00:00", 6.0),   # Sunday, still 2021-W52
        ("x", "2022-01-03 00:00:01", -2.0),  # Monday 2022-W01: a refund only
    ])
    panel = build_panel(tx_con(frame), freq="week", as_of=D(2022, 1, 9))
    assert _rows(panel) == [
        ("x", D(2021, 12, 20), 1.0, 1, 1, 0.0, 0),
        ("x", D(2021, 12, 27), 10.0, 2, 2, 0.0, 0),
        ("x", D(2022, 1, 3), 0.0, 0, 0, 2.0, 1),
    ]


def test_panel_table_stays_in_duckdb_with_the_same_rows() -> None:
    con = tx_con(HAND)
    name = build_panel_table(con, freq="month", as_of=D(2021, 3, 31), name="my_panel")
    assert name == "my_panel"
    assert con.execute("SELECT count(*), sum(spend), sum(refund_amount) FROM my_panel").fetchone() == (5, 46.0, 4.0)


def pandas_panel(frame: pd.DataFrame, freq: str, as_of: D) -> pd.DataFrame:
    """Independent oracle: plain pandas groupby + reindex, no SQL."""
    tx = frame[frame["ts"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)].copy()
    pfreq = "M" if freq == "month" else "W-SUN"
    tx["period_start"] = tx["ts"].dt.to_period(pfreq).dt.start_time.dt.date
    tx["day"] = tx["ts"].dt.date
    pos = tx["amount"] > 0
    tx["spend"] = tx["amount"].where(pos, 0.0)
    tx["n_transactions"] = pos.astype(int)
    tx["refund_amount"] = (-tx["amount"]).where(tx["amount"] < 0, 0.0)
    tx["refund_count"] = (tx["amount"] < 0).astype(int)
    tx["purchase_day"] = tx["day"].where(pos)
    agg = tx.groupby(["user_id", "period_start"]).agg(
        spend=("spend", "sum"), n_transactions=("n_transactions", "sum"),
        active_days=("purchase_day", "nunique"), refund_amount=("refund_amount", "sum"),
        refund_count=("refund_count", "sum"))
    last = pd.Period(as_of, pfreq).start_time.date()
    parts = []
    for user, g in agg.groupby(level="user_id"):
        first = g.index.get_level_values("period_start").min()
        starts = pd.period_range(first, last, freq=pfreq).start_time.date
        idx = pd.MultiIndex.from_product([[user], starts], names=["user_id", "period_start"])
        parts.append(g.reindex(idx, fill_value=0))
    return pd.concat(parts).reset_index()


@pytest.mark.parametrize("freq", ["month", "week"])
@pytest.mark.parametrize("seed", [1, 2])
def test_duckdb_panel_equals_plain_pandas_groupby_on_random_data(freq: str, seed: int) -> None:
    frame = random_transactions(seed)
    as_of = D(2021, 11, 30) if freq == "month" else D(2021, 11, 28)
    got = build_panel(tx_con(frame), freq=freq, as_of=as_of)
    want = pandas_panel(frame, freq, as_of)
    assert len(got) == len(want) > 100
    assert got["user_id"].tolist() == want["user_id"].tolist()
    assert got["period_start"].tolist() == want["period_start"].tolist()
    for col in PANEL_COLS[2:]:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=1e-9,
                                   err_msg=col)
