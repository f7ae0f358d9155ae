"""As-of features: hand-computed values, fill policy, a pandas oracle, lifetimes as the BG/NBD oracle."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import sqlglot
from lifetimes.utils import summary_data_from_transaction_data

from spendlab.config import parse_config
from spendlab.errors import ConfigError
from spendlab.features import FeatureConfig, build_features, build_panel, build_target, feature_columns
from spendlab.features.arrays import window_widths
from spendlab.features.config import FreqFeatures, RollingSpec
from spendlab.features.sql import aggregate_sql, first_day_spend_sql, user_stats_sql, window_cells_sql
from spendlab.jobs.features import load_feature_config

from .conftest import random_transactions, tx_con, tx_frame
from .test_panel import HAND

D = dt.date
SMALL = FeatureConfig(month=FreqFeatures(lags={"spend": 3},
                                         rolling=(RollingSpec(column="spend", windows=(2, 3)),),
                                         trend_windows=(3,)))


@pytest.fixture(scope="module")
def hand_month() -> pd.DataFrame:
    return build_features(tx_con(HAND), freq="month", as_of=D(2021, 3, 31), config=SMALL).set_index("user_id")


def test_one_row_per_user_active_by_the_cutoff_sorted_by_user(hand_month: pd.DataFrame) -> None:
    assert hand_month.index.tolist() == ["a", "b"]  # c's first transaction is after the cutoff
    assert ["user_id", *hand_month.columns] == feature_columns(SMALL, "month")


def test_lag_columns_by_hand(hand_month: pd.DataFrame) -> None:
    # a: Jan 15, Feb 0, Mar 21 -> lag1 = March (the as-of period)
    assert hand_month.loc["a", ["spend_lag1", "spend_lag2", "spend_lag3"]].tolist() == [21.0, 0.0, 15.0]
    # b starts in February: lag3 (January) is before its history and is 0
    assert hand_month.loc["b", ["spend_lag1", "spend_lag2", "spend_lag3"]].tolist() == [0.0, 10.0, 0.0]


def test_rolling_columns_by_hand(hand_month: pd.DataFrame) -> None:
    a, b = hand_month.loc["a"], hand_month.loc["b"]
    assert a["spend_rolling_mean_lag1_window2"] == 10.5
    assert a["spend_rolling_mean_lag1_window3"] == 12.0
    assert a["spend_rolling_std_lag1_window2"] == pytest.approx(10.5)
    assert a["spend_rolling_std_lag1_window3"] == pytest.approx(math.sqrt(78))  # (81 + 144 + 9) / 3
    assert a["spend_rolling_max_lag1_window2"] == 21.0
    # A window longer than b's two periods averages the periods b has.
    assert b["spend_rolling_mean_lag1_window3"] == 5.0
    assert b["spend_rolling_std_lag1_window3"] == pytest.approx(5.0)
    assert b["spend_rolling_max_lag1_window3"] == 10.0
    assert a["trend_slope_window3"] == pytest.approx(3.0)   # 15, 0, 21 over t = -2, -1, 0
    assert b["trend_slope_window3"] == pytest.approx(-10.0)  # 10, 0


def test_recency_frequency_monetary_and_refunds_by_hand(hand_month: pd.DataFrame) -> None:
    a, b = hand_month.loc["a"], hand_month.loc["b"]
    assert (a["spend_total"], a["n_transactions_total"], a["mean_basket"]) == (36.0, 4.0, 9.0)
    assert (b["spend_total"], b["n_transactions_total"], b["mean_basket"]) == (10.0, 2.0, 5.0)
    assert (a["n_active_periods"], a["n_periods"], b["n_active_periods"], b["n_periods"]) == (2.0, 3.0, 1.0, 2.0)
    assert (a["days_since_last_purchase"], b["days_since_last_purchase"]) == (0.0, 44.0)
    assert (a["tenure_days"], b["tenure_days"]) == (85.0, 44.0)
    assert (a["refund_amount_total"], a["refund_count_total"]) == (0.0, 0.0)
    assert (b["refund_amount_total"], b["refund_count_total"]) == (4.0, 1.0)
    # BG/NBD inputs on distinct purchase days: a bought on 4 days, b on 1.
    assert a[["bgnbd_frequency", "bgnbd_recency_days", "bgnbd_T_days"]].tolist() == [3.0, 85.0, 85.0]
    assert a["bgnbd_monetary"] == pytest.approx(26 / 3)  # (5 + 20 + 1) over the 3 repeat days
    assert b[["bgnbd_frequency", "bgnbd_recency_days", "bgnbd_T_days", "bgnbd_monetary"]].tolist() == [0, 0, 44, 0]


def test_weekly_activity_and_holiday_share_by_hand(hand_month: pd.DataFrame) -> None:
    a, b = hand_month.loc["a"], hand_month.loc["b"]
    # As-of week starts Mon 2021-03-29; last 4 weeks from 03-08: a bought on 03-10 and 03-31.
    assert a["active_days_per_week_mean_last4"] == 0.5
    assert a["active_days_per_week_mean_last13"] == pytest.approx(4 / 13)
    assert b["active_days_per_week_mean_last4"] == 0.0
    assert b["active_days_per_week_mean_last13"] == pytest.approx(1 / 7)  # b has 7 weeks of history
    assert (a["weeks_since_last_purchase"], b["weeks_since_last_purchase"]) == (0.0, 6.0)
    # 2021-02-15 is Washington's Birthday: all of b's spend is on a holiday.
    assert (a["holiday_spend_share"], b["holiday_spend_share"]) == (0.0, 1.0)


def test_calendar_covariates_of_asof_and_target_periods(hand_month: pd.DataFrame) -> None:
    a = hand_month.loc["a"]
    assert a[["asof_n_holidays", "asof_n_retail_events", "asof_weekend_days", "asof_days_in_period"]].tolist() \
        == [0.0, 0.0, 8.0, 31.0]
    assert a[["target_n_holidays", "target_n_retail_events", "target_weekend_days", "target_days_in_period"]] \
        .tolist() == [0.0, 0.0, 8.0, 30.0]
    dec = build_features(tx_con(HAND), freq="month", as_of=D(2021, 11, 30), config=SMALL).iloc[0]
    # December 2021: holidays 24 (Christmas observed), 25, 31 (New Year observed); events 24, 26.
    assert dec[["target_n_holidays", "target_n_retail_events"]].tolist() == [3.0, 2.0]


def test_same_period_last_year_needs_a_year_of_history() -> None:
    frame = tx_frame([("y", "2020-04-10 10:00:00", 8.0), ("y", "2021-03-01 10:00:00", 2.0),
                      ("z", "2020-05-01 10:00:00", 3.0)])
    feats = build_features(tx_con(frame), freq="month", as_of=D(2021, 3, 31), config=SMALL).set_index("user_id")
    # Target April 2021; the same month last year is April 2020 (lag 12).
    assert feats.loc["y", ["spend_same_period_last_year", "has_last_year"]].tolist() == [8.0, 1.0]
    assert feats.loc["z", ["spend_same_period_last_year", "has_last_year"]].tolist() == [0.0, 0.0]


def test_features_are_float64_without_nan_or_inf_on_random_data() -> None:
    frame = random_transactions(3)
    for freq, as_of in (("month", D(2021, 6, 30)), ("week", D(2021, 6, 27))):
        feats = build_features(tx_con(frame), freq=freq, as_of=as_of, config=FeatureConfig())
        values = feats.drop(columns="user_id")
        assert (values.dtypes == "float64").all()
        assert np.isfinite(values.to_numpy()).all()
        assert feats["user_id"].is_monotonic_increasing and feats["user_id"].is_unique


def _pandas_features(panel: pd.DataFrame, spec: FreqFeatures) -> pd.DataFrame:
    """Independent oracle for lags, rolling statistics and trend: pandas over the dense panel."""
    rows = {}
    for user, g in panel.groupby("user_id", sort=True):
        s = g["spend"].to_numpy()[::-1]  # s[0] = lag 1
        row = {}
        for column, k in spec.lags.items():
            vals = g[column].to_numpy(float)[::-1]
            for i in range(1, k + 1):
                row[f"{column}_lag{i}"] = vals[i - 1] if i <= len(vals) else 0.0
        for r in spec.rolling:
            for w in r.windows:
                window = pd.Series(g[r.column].to_numpy(float)[::-1][:w])
                row[f"{r.column}_rolling_mean_lag1_window{w}"] = window.mean()
                row[f"{r.column}_rolling_std_lag1_window{w}"] = window.std(ddof=0)
                row[f"{r.column}_rolling_max_lag1_window{w}"] = window.max()
        for w in spec.trend_windows:
            y = s[:w][::-1]
            row[f"trend_slope_window{w}"] = np.polyfit(np.arange(len(y)), y, 1)[0] if len(y) >= 2 else 0.0
        rows[user] = row
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize("freq,as_of", [("month", D(2021, 10, 31)), ("week", D(2021, 10, 24))])
def test_lag_rolling_trend_equal_a_pandas_oracle_over_the_dense_panel(freq: str, as_of: D) -> None:
    frame = random_transactions(7)
    con = tx_con(frame)
    config = FeatureConfig()
    feats = build_features(con, freq=freq, as_of=as_of, config=config).set_index("user_id")
    want = _pandas_features(build_panel(con, freq=freq, as_of=as_of), config.for_freq(freq))
    assert feats.index.tolist() == want.index.tolist()
    for col in want.columns:
        np.testing.assert_allclose(feats[col], want[col], rtol=1e-9, atol=1e-6, err_msg=col)


@pytest.mark.parametrize("seed", [4, 5])
def test_bgnbd_inputs_equal_lifetimes_summary_data(seed: int) -> None:
    frame = random_transactions(seed, users=60, rows=900)
    as_of = D(2021, 9, 30)
    feats = build_features(tx_con(frame), freq="month", as_of=as_of, config=FeatureConfig()).set_index("user_id")
    purchases = frame[(frame["amount"] > 0) & (frame["ts"] < pd.Timestamp(as_of) + pd.Timedelta(days=1))]
    want = summary_data_from_transaction_data(purchases, "user_id", "ts", monetary_value_col="amount",
                                              observation_period_end=pd.Timestamp(as_of), freq="D")
    got = feats.loc[want.index]
    assert len(want) > 30
    np.testing.assert_array_equal(got["bgnbd_frequency"], want["frequency"])
    np.testing.assert_array_equal(got["bgnbd_recency_days"], want["recency"])
    np.testing.assert_array_equal(got["bgnbd_T_days"], want["T"])
    np.testing.assert_allclose(got["bgnbd_monetary"], want["monetary_value"], rtol=1e-9, atol=1e-9)


def test_target_is_gross_spend_of_the_next_periods_for_users_known_at_the_cutoff() -> None:
    con = tx_con(HAND)
    one = build_target(con, freq="month", as_of=D(2021, 3, 31))
    assert one.to_dict("list") == {"user_id": ["a", "b"], "target": [30.0, 0.0]}  # c is new in April
    refund = tx_frame([("r", "2021-03-01 10:00:00", 5.0), ("r", "2021-04-03 10:00:00", 9.0),
                       ("r", "2021-04-04 10:00:00", -9.0), ("r", "2021-05-20 10:00:00", 2.0),
                       ("r", "2021-06-01 00:00:00", 100.0)])
    two = build_target(tx_con(refund), freq="month", as_of=D(2021, 3, 31), horizon=2)
    assert two["target"].tolist() == [11.0]  # gross: the refund is not netted; June is outside
    with pytest.raises(ValueError, match="horizon"):
        build_target(con, freq="month", as_of=D(2021, 3, 31), horizon=0)


def test_feature_config_file_equals_built_in_defaults_and_rejects_unknown_keys(tmp_path) -> None:
    assert load_feature_config("configs/features.yaml") == load_feature_config() == FeatureConfig()
    with pytest.raises(ConfigError, match="lagz"):
        parse_config(FeatureConfig, {"month": {"lagz": {"spend": 3}}}, "f.yaml")
    with pytest.raises(ConfigError, match="must declare spend"):
        parse_config(FeatureConfig, {"week": {"lags": {"n_transactions": 3}}}, "f.yaml")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("reader:\n  timezone: UTC\nfeatures:\n  month:\n    lags: {spend: 2}\n    trend_windows: [3]\n")
    loaded = load_feature_config(cfg)
    assert loaded.month.lags == {"spend": 2} and loaded.week == FeatureConfig().week


def test_default_monthly_and_weekly_names_include_what_models_read() -> None:
    month = feature_columns(FeatureConfig(), "month")
    week = feature_columns(FeatureConfig(), "week")
    assert [f"spend_lag{i}" for i in range(1, 13)] == [c for c in month if c.startswith("spend_lag")]
    assert [f"spend_lag{i}" for i in range(1, 14)] == [c for c in week if c.startswith("spend_lag")]
    for name in ("spend_rolling_mean_lag1_window3", "spend_rolling_std_lag1_window6",
                 "spend_rolling_max_lag1_window12", "trend_slope_window6", "has_last_year",
                 "active_days_per_week_mean_last13", "bgnbd_T_days", "target_days_in_period"):
        assert name in month
    assert "spend_rolling_mean_lag1_window13" in week


@pytest.mark.parametrize("freq", ["month", "week"])
def test_generated_feature_sql_transpiles_to_spark(freq: str) -> None:
    src = "SELECT user_id, ts, amount FROM transactions"
    as_of, config = D(2021, 12, 31), FeatureConfig()
    layers = [aggregate_sql(as_of, freq, src), first_day_spend_sql(src, "periods"),
              user_stats_sql(as_of, freq, config, "periods", "first_day"),
              window_cells_sql("periods", window_widths(config, freq))]
    spark = [sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)[0]
             for sql in layers]
    assert "SHIFTLEFT(" in spark[0] and "BIT_OR(" in spark[0] and "BIT_COUNT(" in spark[0]
    assert "purchase_days_last13w" in spark[2] and "first_purchase_day_spend" in spark[2]
    assert "MATERIALIZED" not in " ".join(spark)


