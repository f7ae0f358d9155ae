"""No leakage: features at cutoff c are identical on the full data and on data truncated at c."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.features import FeatureConfig, asof_rows_table, asof_view, build_features, build_panel
from spendlab.features.config import FreqFeatures, RollingSpec
from spendlab.io import load_transactions

from .conftest import tx_con

D = dt.date
START = pd.Timestamp("2020-12-20")
CONFIG = FeatureConfig(  # every optional lag transform on, so the leakage property covers them
    month=FreqFeatures(lags={"spend": 4, "active_days": 2}, rolling=(RollingSpec(windows=(2, 5)),), trend_windows=(3,),
                       expanding_mean=True, ewm_alphas=(0.3, 0.7), ewm_window=6),
    week=FreqFeatures(lags={"spend": 4, "n_transactions": 2}, rolling=(RollingSpec(windows=(3, 8)),),
                      trend_windows=(4,), expanding_mean=True, ewm_alphas=(0.5,), ewm_window=10),
)


def _truncate(frame: pd.DataFrame, cutoff: D) -> pd.DataFrame:
    """Truncation done independently of spendlab's SQL: plain pandas."""
    return frame[frame["ts"] < pd.Timestamp(cutoff) + pd.Timedelta(days=1)].reset_index(drop=True)


rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3", "u4"]),
        st.integers(min_value=0, max_value=500 * 24 * 60 - 1),  # minutes after START
        st.sampled_from([0.0, 0.01, 3.5, 12.0, 99.99, -2.0, -12.0]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, cutoff_days=st.integers(min_value=0, max_value=499), freq=st.sampled_from(["month", "week"]))
def test_features_identical_on_full_and_truncated_data(rows: list, cutoff_days: int, freq: str) -> None:
    frame = pd.DataFrame(rows, columns=["user_id", "minute", "amount"])
    frame["ts"] = (START + pd.to_timedelta(frame.pop("minute"), unit="min")).astype("datetime64[us]")
    frame = frame[["user_id", "ts", "amount"]]
    cutoff = (START + pd.Timedelta(days=cutoff_days)).date()
    full = build_features(tx_con(frame), freq=freq, as_of=cutoff, config=CONFIG)
    cut = build_features(tx_con(_truncate(frame, cutoff)), freq=freq, as_of=cutoff, config=CONFIG)
    pd.testing.assert_frame_equal(full, cut, check_exact=True)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    frame = load_transactions("builtin:cdnow", "cdnow").to_pandas()
    frame["ts"] = frame["ts"].dt.tz_localize(None).astype("datetime64[us]")
    return frame[["user_id", "ts", "amount"]]


@pytest.mark.parametrize("freq,cutoff", [("month", D(1997, 9, 30)), ("week", D(1997, 9, 28)),
                                         ("month", D(1997, 10, 15))])
def test_cdnow_features_identical_on_full_and_truncated_data(cdnow: pd.DataFrame, freq: str, cutoff: D) -> None:
    full_con = tx_con(cdnow)
    full = build_features(full_con, freq=freq, as_of=cutoff, config=FeatureConfig())
    cut = build_features(tx_con(_truncate(cdnow, cutoff)), freq=freq, as_of=cutoff, config=FeatureConfig())
    assert len(full) == cdnow["user_id"].nunique()  # CDNOW's cohort all joined in Q1 1997
    pd.testing.assert_frame_equal(full, cut, check_exact=True)
    later = build_features(full_con, freq=freq, as_of=cutoff + dt.timedelta(days=35), config=FeatureConfig())
    assert not later["spend_total"].equals(full["spend_total"])  # the later data does change features
    pd.testing.assert_frame_equal(build_panel(full_con, freq=freq, as_of=cutoff),
                                  build_panel(tx_con(_truncate(cdnow, cutoff)), freq=freq, as_of=cutoff))


def test_asof_view_holds_only_rows_up_to_the_end_of_the_cutoff_day(cdnow: pd.DataFrame) -> None:
    con = tx_con(cdnow)
    name = asof_view(con, D(1997, 3, 31), name="cut")
    assert name == "cut"
    n, last = con.execute("SELECT count(*), max(ts) FROM cut").fetchone()
    assert n == len(_truncate(cdnow, D(1997, 3, 31)))
    assert last < pd.Timestamp("1997-04-01")


@pytest.mark.parametrize("freq,cutoff,n", [("month", D(1997, 9, 30), 3), ("week", D(1997, 9, 28), 5)])
def test_chunks_of_the_asof_rows_table_rebuild_the_features_exactly(cdnow: pd.DataFrame, freq: str, cutoff: D,
                                                                   n: int) -> None:
    """Scoring's path (one as-of rows table, features per hash chunk) equals the features built from the source."""
    con = tx_con(cdnow)
    expected = build_features(con, freq=freq, as_of=cutoff)
    table = asof_rows_table(con, cutoff, name="rows")
    assert con.execute("SELECT count(*), max(ts) FROM rows").fetchone() == \
        (len(_truncate(cdnow, cutoff)), cutoff)  # the cut, kept as the transaction day
    parts = []
    for k in range(n):
        con.execute(f"CREATE OR REPLACE TEMP VIEW chunk AS SELECT user_id, ts, amount FROM {table} "
                    f"WHERE bucket % {n} = {k}")
        parts.append(build_features(con, freq=freq, as_of=cutoff, view="chunk"))
    assert all(len(p) > 0 for p in parts)  # the hash spreads CDNOW's users over every chunk
    chunked = pd.concat(parts).sort_values("user_id", ignore_index=True)
    assert chunked["user_id"].is_unique  # chunks are disjoint ...
    pd.testing.assert_frame_equal(chunked, expected, check_exact=True)  # ... and cover every user
