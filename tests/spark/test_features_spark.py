"""Spark features equal DuckDB features: same generated SQL, transpiled (issue 9 acceptance).

Oracles: the DuckDB path (:func:`spendlab.features.build_features`, itself tested against hand
computations and pandas in tests/features) on the same Parquet, plus a few hand-computed values.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.features import FeatureConfig, build_features, build_panel, feature_columns
from spendlab.io import Mode, load_transactions
from spendlab.io.load import connect
from spendlab.spark import reject_counts, spark_features, spark_panel
from tests.features.conftest import random_transactions
from tests.spark.conftest import FEATURE_USERS

CFG = FeatureConfig()


def duckdb_features(path: Path, freq: str, as_of: dt.date) -> pd.DataFrame:
    tx = load_transactions(str(path), "generic", mode=Mode.QUARANTINE)
    con = connect(threads=2)
    tx.register(con)
    return build_features(con, freq=freq, as_of=as_of, config=CFG)


def assert_frames_equal(spark_df: pd.DataFrame, duck_df: pd.DataFrame, tol: float = 1e-9) -> None:
    """Same columns in the same order, same users in the same order, floats within ``tol`` (abs or rel)."""
    assert list(spark_df.columns) == list(duck_df.columns)
    assert spark_df["user_id"].tolist() == duck_df["user_id"].tolist()
    for col in duck_df.columns[1:]:
        a, b = spark_df[col].to_numpy(np.float64), duck_df[col].to_numpy(np.float64)
        assert np.isfinite(a).all(), col
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=col)


def write_canonical(frame: pd.DataFrame, path: Path) -> Path:
    """Canonical Parquet (``ts`` as UTC-adjusted timestamps), as spendlab's synthetic generator writes."""
    table = pa.table({"user_id": pa.array(frame["user_id"], pa.string()),
                      "ts": pa.array(pd.to_datetime(frame["ts"]).dt.tz_localize("UTC"), pa.timestamp("us", "UTC")),
                      "amount": pa.array(frame["amount"], pa.float64())})
    pq.write_table(table, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("freq", "as_of"), [
    ("month", dt.date(2023, 12, 31)),   # holiday season just ended; users still being acquired
    ("month", dt.date(2024, 6, 30)),    # the end of the data
    ("week", dt.date(2023, 11, 26)),    # the Sunday after Black Friday
    ("week", dt.date(2024, 5, 15)),     # a Wednesday: the as-of week is partial
])
def test_spark_features_equal_duckdb_features_on_2k_synthetic_users(spark, synth_features_parquet: Path, freq: str,
                                                                   as_of: dt.date) -> None:
    """2,000 users, not 20,000: the same code paths on both engines (see ``synth_features_parquet``)."""
    duck = duckdb_features(synth_features_parquet, freq, as_of)
    got = spark_features(spark, synth_features_parquet, freq=freq, as_of=as_of, config=CFG).toPandas()
    assert len(duck) > FEATURE_USERS // 4  # more than a quarter of the users have features at every cutoff
    assert_frames_equal(got, duck)


@pytest.mark.parametrize("freq", ["month", "week"])
def test_spark_features_equal_duckdb_with_refunds_zero_amounts_and_same_day_repeats(
        spark, tmp_path: Path, freq: str) -> None:
    path = write_canonical(random_transactions(3), tmp_path / "tx.parquet")
    for as_of in (dt.date(2021, 12, 8), dt.date(2022, 3, 13)):  # mid-period cutoffs
        duck = duckdb_features(path, freq, as_of)
        got = spark_features(spark, str(path), freq=freq, as_of=as_of, config=CFG).toPandas()
        assert_frames_equal(got, duck)


def test_spark_features_match_hand_computed_values(spark, tmp_path: Path) -> None:
    # u1: Jan 10.00 + 5.00 (same day) and refund 2.50; Mar 30.00. u2: only a refund in Feb.
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u1", "u2"],
        "ts": ["2024-01-05 10:00:00", "2024-01-05 23:59:59", "2024-01-20 08:00:00", "2024-03-31 23:59:59",
               "2024-02-10 12:00:00"],
        "amount": [10.0, 5.0, -2.5, 30.0, -4.0],
    })
    path = write_canonical(frame, tmp_path / "tiny.parquet")
    got = spark_features(spark, path, freq="month", as_of=dt.date(2024, 3, 31), config=CFG).toPandas()
    u1, u2 = got.set_index("user_id").loc["u1"], got.set_index("user_id").loc["u2"]
    assert (u1.spend_lag1, u1.spend_lag2, u1.spend_lag3) == (30.0, 0.0, 15.0)
    assert (u1.n_transactions_lag1, u1.n_transactions_lag3, u1.active_days_lag3) == (1.0, 2.0, 1.0)
    assert u1.spend_rolling_mean_lag1_window3 == pytest.approx(15.0)          # (30 + 0 + 15) / 3
    assert u1.spend_rolling_std_lag1_window3 == pytest.approx(np.std([30.0, 0.0, 15.0]))
    assert (u1.n_periods, u1.n_active_periods, u1.mean_basket) == (3.0, 2.0, 15.0)  # 45 / 3 purchases
    assert (u1.refund_amount_total, u1.refund_count_total, u1.days_since_last_purchase) == (2.5, 1.0, 0.0)
    assert (u1.bgnbd_frequency, u1.bgnbd_recency_days, u1.bgnbd_T_days) == (1.0, 86.0, 86.0)  # Jan 5 .. Mar 31
    assert u1.bgnbd_monetary == 30.0
    assert (u2.spend_total, u2.n_transactions_total, u2.refund_amount_total) == (0.0, 0.0, 4.0)
    assert u2.tenure_days == 50.0  # Feb 10 .. Mar 31
    assert list(got.columns) == feature_columns(CFG, "month")


def test_later_cutoff_rows_never_reach_the_spark_features(spark, tmp_path: Path) -> None:
    base = random_transactions(5)
    as_of = dt.date(2021, 9, 30)
    cut = base[pd.to_datetime(base["ts"]) < pd.Timestamp(as_of + dt.timedelta(days=1))]
    full = spark_features(spark, write_canonical(base, tmp_path / "full.parquet"), freq="month", as_of=as_of)
    trunc = spark_features(spark, write_canonical(cut, tmp_path / "cut.parquet"), freq="month", as_of=as_of)
    assert_frames_equal(full.toPandas(), trunc.toPandas(), tol=0.0)


def test_a_built_feature_frame_is_not_changed_by_a_later_call(spark, tmp_path: Path) -> None:
    path = write_canonical(random_transactions(7), tmp_path / "tx.parquet")
    first = spark_features(spark, path, freq="month", as_of=dt.date(2021, 6, 30))
    spark_features(spark, path, freq="week", as_of=dt.date(2022, 3, 13))  # re-registers the shared views
    assert_frames_equal(first.toPandas(), duckdb_features(path, "month", dt.date(2021, 6, 30)))


@pytest.mark.parametrize("freq", ["month", "week"])
def test_spark_panel_equals_duckdb_panel(spark, tmp_path: Path, freq: str) -> None:
    frame = random_transactions(13)
    path = write_canonical(frame, tmp_path / "tx.parquet")
    as_of = dt.date(2021, 12, 8)
    con = connect(threads=2)
    load_transactions(str(path), "generic", mode=Mode.QUARANTINE).register(con)
    duck = build_panel(con, freq=freq, as_of=as_of, config=CFG)
    got = spark_panel(spark, path, freq=freq, as_of=as_of, config=CFG).toPandas()
    assert list(got.columns) == list(duck.columns)
    assert got["user_id"].tolist() == duck["user_id"].tolist()
    assert got["period_start"].tolist() == duck["period_start"].tolist()
    for col in ("spend", "n_transactions", "active_days", "refund_amount", "refund_count"):
        np.testing.assert_allclose(got[col].to_numpy(np.float64), duck[col].to_numpy(np.float64), rtol=1e-12,
                                   err_msg=col)


def test_spark_rejects_exactly_the_rows_the_duckdb_reader_rejects(spark, tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "user_id": ["u1", " ", "u2", "u3", "u4", "u5"],
        "ts": pd.to_datetime(["2024-01-05", "2024-01-06", "2024-01-07", "1969-12-31", "2024-01-09", "2024-01-10"]),
        "amount": [10.0, 5.0, float("nan"), 3.0, 2e7, float("inf")],
    })
    path = write_canonical(frame, tmp_path / "bad.parquet")
    tx = load_transactions(str(path), "generic", mode=Mode.QUARANTINE)
    rows_in, counts = reject_counts(spark, path)
    assert rows_in == tx.report.rows_in == 6
    assert dict(counts) == dict(sum((f.errors for f in tx.report.files), start=type(counts)()))
    assert rows_in - sum(counts.values()) == tx.report.accepted == 1
    got = spark_features(spark, path, freq="month", as_of=dt.date(2024, 1, 31)).toPandas()
    assert got["user_id"].tolist() == ["u1"]


LAG_TRANSFORMS = FeatureConfig(month=FeatureConfig().month.model_copy(update={
    "expanding_mean": True, "ewm_alphas": (0.3, 0.7), "ewm_window": 6}), week=FeatureConfig().week.model_copy(update={
    "expanding_mean": True, "ewm_alphas": (0.5,), "ewm_window": 13}))


@pytest.mark.parametrize("freq", ["month", "week"])
def test_spark_lag_transforms_equal_duckdb(spark, tmp_path: Path, freq: str) -> None:
    """The expanding and exponentially weighted means: the same on both engines."""
    path = write_canonical(random_transactions(5), tmp_path / "tx.parquet")
    as_of = dt.date(2022, 1, 19)
    tx = load_transactions(str(path), "generic", mode=Mode.QUARANTINE)
    con = connect(threads=2)
    tx.register(con)
    duck = build_features(con, freq=freq, as_of=as_of, config=LAG_TRANSFORMS)
    assert "spend_expanding_mean_lag1" in duck.columns and any("ewm_mean" in c for c in duck.columns)
    got = spark_features(spark, str(path), freq=freq, as_of=as_of, config=LAG_TRANSFORMS).toPandas()
    assert_frames_equal(got, duck)
