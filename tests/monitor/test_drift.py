"""Drift against the reference profile: PSI, segment shift, and the estimates made before actuals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spendlab.monitor.drift import PSI_FLOOR, feature_drift, psi, reference_profile, segment_shift


def test_psi_by_hand() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # an empty bin is floored, not infinite
    assert psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(2 * (1 - PSI_FLOOR) * math.log(1 / PSI_FLOOR))


def _frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(values))], "spend_lag1": values,
                         "label": ["x"] * len(values)})


def test_a_population_against_its_own_profile_has_zero_psi_and_a_shifted_one_does_not() -> None:
    rng = np.random.default_rng(0)
    ref = rng.gamma(0.6, 40, 2000) * (rng.random(2000) < 0.4)
    profile = reference_profile(_frame(ref), np.array(["active"] * 2000), np.zeros(2000, dtype=bool))
    assert set(profile["features"]) == {"spend_lag1"}  # ids and text columns are not profiled
    spec = profile["features"]["spend_lag1"]
    assert spec["zero_share"] == pytest.approx(np.mean(ref == 0))
    assert sum(spec["shares"]) == pytest.approx(1.0)
    assert feature_drift(profile, _frame(ref))["psi"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    halved = feature_drift(profile, _frame(ref * 0.25))
    doubled_zeros = feature_drift(profile, _frame(np.where(rng.random(2000) < 0.5, 0.0, ref)))
    assert halved["psi"].iloc[0] > 0.1 and doubled_zeros["psi"].iloc[0] > 0.1
    assert doubled_zeros["zero_share"].iloc[0] > doubled_zeros["zero_share_ref"].iloc[0]


def test_bins_are_fixed_at_the_reference() -> None:
    """The edges come from the reference alone: a new population is binned on them, not on its own quantiles."""
    profile = reference_profile(_frame(np.arange(100.0)), np.array(["new"] * 100), np.zeros(100, dtype=bool))
    edges = profile["features"]["spend_lag1"]["edges"]
    assert edges == pytest.approx(list(np.quantile(np.arange(100.0), np.linspace(0.1, 0.9, 9))))
    everyone_high = feature_drift(profile, _frame(np.full(50, 1000.0)))
    # all of the new mass in the last bin (10% of the reference): (1 - .1) ln(1 / .1) + 9 bins of (0 - .1) ln(floor / .1)
    expected = 0.9 * math.log(10) + 9 * (PSI_FLOOR - 0.1) * math.log(PSI_FLOOR / 0.1)
    assert everyone_high["psi"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_segment_shift_by_hand() -> None:
    profile = reference_profile(_frame(np.zeros(4)), np.array(["new", "active", "active", "lapsed"]),
                                np.array([True, False, False, False]))
    assert profile["segment_shares"] == {"active": 0.5, "lapsed": 0.25, "new": 0.25}
    assert profile["cold_start_share"] == 0.25
    shift = segment_shift(profile, np.array(["active", "lapsed", "lapsed", "lapsed"])).set_index("segment")
    assert shift.loc["active", "shift"] == pytest.approx(-0.25)
    assert shift.loc["lapsed", "shift"] == pytest.approx(0.5)
    assert shift.loc["new", "share"] == 0.0 and shift.loc["new", "shift"] == pytest.approx(-0.25)


def test_a_feature_equal_for_everybody_or_a_customers_age_is_not_profiled() -> None:
    """A calendar count (the target month's weekend days) is the same for every user: its change between
    months is the calendar, not the population, so it gets no PSI."""
    frame = _frame(np.arange(10.0)).assign(target_weekend_days=8, n_periods=np.arange(10) % 3 + 1)
    profile = reference_profile(frame, np.array(["active"] * 10), np.zeros(10, dtype=bool))
    assert set(profile["features"]) == {"spend_lag1"}  # n_periods: a customer's age grows with the calendar
    assert feature_drift(profile, frame.assign(target_weekend_days=10))["feature"].tolist() == ["spend_lag1"]


def test_segment_shift_from_counts_has_pandas_normalized_shares_bit_for_bit() -> None:
    from spendlab.monitor.drift import segment_shift_counts

    rng = np.random.default_rng(3)
    counts = {"active": int(rng.integers(1, 10**6)), "lapsed": 333_333, "new": 7, "churned": 1}
    segments = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    profile = {"segment_shares": {"active": 0.25, "lapsed": 0.5, "dormant": 0.25}}
    oracle = pd.Series(segments.astype(str)).value_counts(normalize=True)  # what the scorer used to divide
    got = segment_shift_counts(profile, counts).set_index("segment")
    assert list(got.index) == ["active", "churned", "dormant", "lapsed", "new"]
    for s, share in oracle.items():
        assert got.loc[s, "share"] == share  # exact, not approximately
    assert got.loc["dormant", "share"] == 0.0 and got.loc["dormant", "shift"] == -0.25
    pd.testing.assert_frame_equal(segment_shift(profile, segments), segment_shift_counts(profile, counts))
