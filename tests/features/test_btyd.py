"""BTYD statistics in days: a hand-computed table, a pandas oracle, no leakage, the store's hook."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.features import FeatureConfig
from spendlab.features.btyd import BTYD_COLUMNS
from spendlab.features.build import btyd_features
from spendlab.features.store import FeatureStore
from tests.features.conftest import random_transactions, tx_con, tx_frame

D = dt.date


def test_btyd_statistics_by_hand() -> None:
    frame = tx_frame([
        ("a", "2024-01-01 10:00:00", 10.0),
        ("a", "2024-01-01 18:00:00", 5.0),   # same day: one purchase day, two purchases
        ("a", "2024-01-11 09:00:00", 20.0),  # gap 10
        ("a", "2024-01-31 09:00:00", 30.0),  # gap 20
        ("a", "2024-02-10 09:00:00", 99.0),  # after the cutoff: never seen
        ("b", "2024-01-20 09:00:00", -4.0),  # a refund only: no purchase
        ("c", "2024-01-02 12:00:00", 7.0),
    ])
    got = btyd_features(tx_con(frame), D(2024, 1, 31)).set_index("user_id")
    a = got.loc["a"]
    assert (a.btyd_frequency, a.btyd_recency_days, a.btyd_age_days, a.btyd_days_since_last) == (2, 30, 30, 0)
    assert a.btyd_gap_mean_days == 15 and a.btyd_gap_cv == pytest.approx(5 / 15)
    # last 30 days = 2024-01-02 .. 2024-01-31: the two January 11/31 purchases.
    assert (a.btyd_count_last30, a.btyd_spend_last30, a.btyd_count_last90, a.btyd_spend_last90) == (2, 50, 4, 65)
    b = got.loc["b"]
    assert (b.btyd_frequency, b.btyd_recency_days, b.btyd_age_days, b.btyd_days_since_last) == (0, 0, 11, 11)
    assert (b.btyd_count_last90, b.btyd_spend_last90) == (0, 0)
    c = got.loc["c"]
    assert (c.btyd_frequency, c.btyd_age_days, c.btyd_gap_mean_days, c.btyd_gap_cv, c.btyd_count_last30) == (0, 29, 0, 0, 1)


def pandas_oracle(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The same definitions, written independently in pandas."""
    c = pd.Timestamp(as_of)
    rows = frame[frame["ts"] < c + pd.Timedelta(days=1)].assign(d=lambda f: f["ts"].dt.normalize())
    out = []
    for user, g in rows.groupby("user_id", sort=True):
        buys = g[g["amount"] > 0]
        days = np.sort(buys["d"].unique())
        gaps = np.diff(days).astype("timedelta64[D]").astype(float) if len(days) > 1 else np.array([])
        first = days[0] if len(days) else g["d"].min()
        last = days[-1] if len(days) else g["d"].min()
        rec = {"user_id": user, "btyd_frequency": max(len(days) - 1, 0),
               "btyd_recency_days": (days[-1] - days[0]) / np.timedelta64(1, "D") if len(days) else 0.0,
               "btyd_age_days": (c - pd.Timestamp(first)).days, "btyd_days_since_last": (c - pd.Timestamp(last)).days,
               "btyd_gap_mean_days": gaps.mean() if len(gaps) else 0.0,
               "btyd_gap_cv": gaps.std() / gaps.mean() if len(gaps) >= 2 and gaps.mean() > 0 else 0.0}
        for w in (30, 90):
            recent = buys[buys["d"] > c - pd.Timedelta(days=w)]
            rec[f"btyd_count_last{w}"] = len(recent)
            rec[f"btyd_spend_last{w}"] = recent["amount"].sum()
        out.append(rec)
    return pd.DataFrame(out)[["user_id", *BTYD_COLUMNS]].astype({c: float for c in BTYD_COLUMNS})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_btyd_features_match_a_pandas_oracle(seed: int) -> None:
    frame = random_transactions(seed)
    for as_of in (D(2021, 3, 31), D(2021, 12, 31)):
        got = btyd_features(tx_con(frame), as_of).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, pandas_oracle(frame, as_of), check_exact=False, rtol=1e-9, atol=1e-9)


def test_btyd_features_at_a_cutoff_are_identical_on_full_and_truncated_data() -> None:
    frame = random_transactions(4)
    cutoff = D(2021, 6, 30)
    truncated = frame[frame["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
    poisoned = frame.copy()
    later = poisoned["ts"] >= pd.Timestamp(cutoff + dt.timedelta(days=1))
    poisoned.loc[later, "amount"] *= 1000
    full = btyd_features(tx_con(frame), cutoff)
    pd.testing.assert_frame_equal(full, btyd_features(tx_con(truncated), cutoff))
    pd.testing.assert_frame_equal(full, btyd_features(tx_con(poisoned), cutoff))


def test_the_feature_store_joins_btyd_columns_only_when_the_flag_is_on() -> None:
    frame = random_transactions(5)
    cutoff = D(2021, 6, 30)
    off = FeatureStore(tx_con(frame), freq="month", horizon=1).features(cutoff)
    on = FeatureStore(tx_con(frame), freq="month", horizon=1, feature_config=FeatureConfig(btyd=True)).features(cutoff)
    assert not set(BTYD_COLUMNS) & set(off.columns)
    pd.testing.assert_frame_equal(on[list(off.columns)], off)  # same rows, same order, columns appended
    expected = btyd_features(tx_con(frame), cutoff).set_index("user_id").loc[on["user_id"]]
    np.testing.assert_allclose(on[list(BTYD_COLUMNS)].to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("freq", ["month", "week"])
def test_every_duckdb_feature_build_carries_the_btyd_columns_the_declaration_names(freq: str) -> None:
    """Training (the store), ``spendlab features`` and batch scoring (``build_features_arrow``) give the
    same columns in the order ``feature_columns`` derives, so a model trained with them can be scored."""
    from spendlab.features import build_features_arrow, feature_columns

    frame = random_transactions(9)
    cutoff = D(2021, 6, 30)
    config = FeatureConfig(btyd=True)
    names = feature_columns(config, freq)
    assert names[-len(BTYD_COLUMNS):] == list(BTYD_COLUMNS)
    assert feature_columns(FeatureConfig(), freq) == names[: -len(BTYD_COLUMNS)]
    table = build_features_arrow(tx_con(frame), freq=freq, as_of=cutoff, config=config)
    store = FeatureStore(tx_con(frame), freq=freq, horizon=1, feature_config=config).features(cutoff)
    assert table.column_names == names == list(store.columns)
    expected = btyd_features(tx_con(frame), cutoff).set_index("user_id").loc[table.column("user_id").to_pylist()]
    np.testing.assert_allclose(np.column_stack([table.column(c).to_numpy() for c in BTYD_COLUMNS]),
                               expected.to_numpy())


def test_integer_ids_join_their_btyd_row_not_a_neighbour() -> None:
    """Integer ids sort numerically in DuckDB (2 < 10) and as text in the features ("10" < "2")."""
    frame = random_transactions(4)
    ids = {u: str(10 ** (i % 3) + i) for i, u in enumerate(sorted(frame["user_id"].unique()))}
    frame = frame.assign(user_id=frame["user_id"].map(ids).astype("int64"))
    from spendlab.features import build_features_arrow

    con = tx_con(frame)
    table = build_features_arrow(con, freq="month", as_of=D(2021, 6, 30), config=FeatureConfig(btyd=True))
    expected = btyd_features(con, D(2021, 6, 30))
    expected["user_id"] = expected["user_id"].astype(str)
    expected = expected.set_index("user_id").loc[table.column("user_id").to_pylist()]
    np.testing.assert_allclose(np.column_stack([table.column(c).to_numpy() for c in BTYD_COLUMNS]),
                               expected.to_numpy())


def test_the_spark_engine_refuses_a_feature_set_with_btyd_in_one_line() -> None:
    from spendlab.errors import SpendlabError
    from spendlab.spark.features import spark_features

    with pytest.raises(SpendlabError, match=r"btyd: true.*--engine duckdb"):
        spark_features(None, [], freq="month", as_of=D(2021, 6, 30), config=FeatureConfig(btyd=True))  # type: ignore[arg-type]
