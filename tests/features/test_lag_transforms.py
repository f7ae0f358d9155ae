"""The optional lag transforms (expanding mean, exponentially weighted means) against hand values and
an independent pandas oracle (mlforecast's definitions: a mean over every period up to lag 1, and
pandas ``ewm(alpha, adjust=True)``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from spendlab.features import FeatureConfig, build_features, feature_columns
from spendlab.features.config import FreqFeatures, RollingSpec

from .conftest import random_transactions, tx_con, tx_frame

D = dt.date
MONTH = FreqFeatures(lags={"spend": 3}, rolling=(RollingSpec(windows=(2, 4)),), trend_windows=(3,),
                     expanding_mean=True, ewm_alphas=(0.5, 0.2), ewm_window=3)
CONFIG = FeatureConfig(month=MONTH, week=MONTH.model_copy(update={"ewm_window": 5}))


def test_expanding_and_ewm_means_by_hand() -> None:
    # u1 monthly spend Jan..Apr: 10, 0, 30, 20 (as of April 30); u2 only April: 8
    frame = tx_frame([("u1", "2024-01-05 10:00:00", 10.0), ("u1", "2024-03-02 10:00:00", 30.0),
                      ("u1", "2024-04-20 10:00:00", 20.0), ("u2", "2024-04-03 10:00:00", 8.0)])
    f = build_features(tx_con(frame), freq="month", as_of=D(2024, 4, 30), config=CONFIG).set_index("user_id")
    assert f.loc["u1", "spend_expanding_mean_lag1"] == pytest.approx(60 / 4)
    assert f.loc["u2", "spend_expanding_mean_lag1"] == pytest.approx(8.0)
    # alpha 0.5 over the last 3 months (newest first 20, 30, 0): (20 + 0.5*30 + 0.25*0) / 1.75
    assert f.loc["u1", "spend_ewm_mean_lag1_alpha50"] == pytest.approx(35 / 1.75)
    # alpha 0.2: (20 + 0.8*30 + 0.64*0) / 2.44
    assert f.loc["u1", "spend_ewm_mean_lag1_alpha20"] == pytest.approx(44 / 2.44)
    assert f.loc["u2", "spend_ewm_mean_lag1_alpha50"] == pytest.approx(8.0)  # one period: its value


def _oracle(frame: pd.DataFrame, as_of: dt.date, freq: str, spec: FreqFeatures) -> pd.DataFrame:
    """Zero-filled per-user series from the first period to the as-of period, in plain pandas."""
    tx = frame[(frame["ts"] < pd.Timestamp(as_of) + pd.Timedelta(days=1))]
    rule = "M" if freq == "month" else "W-SUN"
    tx = tx.assign(period=tx["ts"].dt.to_period(rule), spend=tx["amount"].clip(lower=0))
    last = pd.Timestamp(as_of).to_period(rule)
    rows = {}
    for user, g in tx.groupby("user_id"):
        s = g.groupby("period")["spend"].sum()
        s = s.reindex(pd.period_range(g["period"].min(), last, freq=rule), fill_value=0.0)
        row = {"spend_expanding_mean_lag1": s.mean()}
        for a in spec.ewm_alphas:
            row[f"spend_ewm_mean_lag1_alpha{round(a * 100)}"] = s.iloc[-spec.ewm_window:].ewm(
                alpha=a, adjust=True).mean().iloc[-1]
        rows[user] = row
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize("freq,as_of", [("month", D(2021, 9, 30)), ("month", D(2022, 2, 14)),
                                        ("week", D(2021, 12, 5)), ("week", D(2022, 3, 9))])
@pytest.mark.parametrize("seed", [1, 2])
def test_lag_transforms_equal_a_pandas_oracle(freq: str, as_of: dt.date, seed: int) -> None:
    frame = random_transactions(seed)
    f = build_features(tx_con(frame), freq=freq, as_of=as_of, config=CONFIG).set_index("user_id")
    want = _oracle(frame, as_of, freq, CONFIG.for_freq(freq)).loc[f.index]
    for col in want.columns:
        np.testing.assert_allclose(f[col].to_numpy(), want[col].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col)


def test_off_by_default_and_named_after_their_parameters() -> None:
    default = feature_columns(FeatureConfig(), "month")
    assert not [c for c in default if "expanding" in c or "ewm" in c]
    cols = feature_columns(CONFIG, "month")
    assert cols[cols.index("trend_slope_window3") + 1:][:3] == [
        "spend_expanding_mean_lag1", "spend_ewm_mean_lag1_alpha50", "spend_ewm_mean_lag1_alpha20"]
    for bad in ({"ewm_alphas": (1.0,)}, {"ewm_alphas": (0.5, 0.501)}, {"ewm_window": 0}):
        with pytest.raises(ValidationError):
            FreqFeatures(**bad)
