"""A feature family is added in one place (``FAMILIES``): its columns appear in ``feature_columns``, in
order, every build computes them from the as-of aggregates only, and a family whose computation
disagrees with its declaration fails the build."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.features import FAMILIES, FeatureConfig, FeatureFamily, FeatureInputs, build_features, feature_columns
from tests.features.conftest import random_transactions, tx_con, tx_frame

SMALL = FeatureConfig.model_validate({"month": {"lags": {"spend": 2}, "rolling": [], "trend_windows": []}})

# 3 users; January and February 2024. Gross spend by the end of February: u1 10 + 20 + 5 = 35
# (5 in February), u2 40 (nothing in February), u3 7 (February only).
ROWS = [("u1", "2024-01-03 10:00:00", 10.0), ("u1", "2024-01-20 10:00:00", 20.0),
        ("u1", "2024-02-10 10:00:00", 5.0), ("u2", "2024-01-07 09:00:00", 40.0),
        ("u3", "2024-02-01 12:00:00", 7.0), ("u1", "2024-03-02 10:00:00", 1000.0)]


def _last_period_share(x: FeatureInputs) -> dict[str, np.ndarray]:
    lag1, total = x.windows["spend"][:, 0], np.asarray(x.stats["spend_total"], dtype=np.float64)
    return {"spend_lag1_share": np.divide(lag1, total, out=np.zeros_like(lag1), where=total > 0)}


SHARE = FeatureFamily(lambda config, freq: ["spend_lag1_share"], _last_period_share)


def test_the_builtin_families_declare_every_column_once_in_order() -> None:
    for freq in ("month", "week"):
        declared = [c for family in FAMILIES.values() for c in family.columns(FeatureConfig(), freq)]
        assert feature_columns(FeatureConfig(), freq) == ["user_id", *declared]
        assert len(set(declared)) == len(declared)
    assert feature_columns(FeatureConfig(btyd=True), "month")[-1].startswith("btyd_")  # after every family


def test_a_registered_family_is_built_with_the_hand_computed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAMILIES, "share", SHARE)
    cols = feature_columns(SMALL, "month")
    assert cols[-1] == "spend_lag1_share" and cols.count("spend_lag1_share") == 1
    feats = build_features(tx_con(tx_frame(ROWS)), freq="month", as_of="2024-02-29", config=SMALL)
    assert list(feats.columns) == cols
    got = dict(zip(feats["user_id"], feats["spend_lag1_share"], strict=True))
    assert got == pytest.approx({"u1": 5 / 35, "u2": 0.0, "u3": 1.0})  # March's 1000 is after the cutoff


def test_a_registered_family_sees_nothing_after_the_cutoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAMILIES, "share", SHARE)
    tx = random_transactions(seed=5)
    cutoff = dt.date(2021, 9, 30)
    truncated = tx[tx["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
    full = build_features(tx_con(tx), freq="month", as_of=cutoff, config=SMALL)
    cut = build_features(tx_con(truncated), freq="month", as_of=cutoff, config=SMALL)
    pd.testing.assert_frame_equal(full, cut)
    assert full["spend_lag1_share"].between(0, 1).all() and (full["spend_lag1_share"] > 0).any()


def test_a_family_that_computes_other_columns_than_it_declares_fails_the_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAMILIES, "bad", FeatureFamily(lambda config, freq: ["declared"], _last_period_share))
    with pytest.raises(AssertionError, match="'bad'.*declared.*spend_lag1_share"):
        build_features(tx_con(tx_frame(ROWS)), freq="month", as_of="2024-02-29", config=SMALL)
