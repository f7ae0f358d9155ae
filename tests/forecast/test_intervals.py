"""The hurdle calibration: P(spend) and realized-amount quantiles for a zero-inflated target."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spendlab.forecast.intervals import apply_calibration, calibration_report, coverage, fit_calibration


def _zero_inflated(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seg = np.where(np.arange(n) % 4 == 0, "new", np.where(np.arange(n) % 4 == 1, "active", "lapsed"))
    pred = rng.gamma(1.0, 10.0, n)
    p_true = np.where(seg == "lapsed", 0.05, 0.3 + 0.5 * (pred > 10))
    spends = rng.random(n) < p_true
    y = np.where(spends, pred * rng.gamma(2.0, 1.0, n), 0.0)
    return pd.DataFrame({"segment": seg, "y_pred": pred, "y_true": y, "p_true": p_true})


def test_calibrated_output_is_ordered_and_covers_about_80_percent_where_spend_is_common() -> None:
    cal = fit_calibration(_zero_inflated(40_000, 0), level=0.8)
    test = _zero_inflated(40_000, 1)
    out = apply_calibration(test, cal)
    assert (out["lower"] >= 0).all() and (out["lower"] <= out["median"]).all() and (out["median"] <= out["upper"]).all()
    assert ((out["p_spend"] >= 0) & (out["p_spend"] <= 1)).all()
    spenders = test["p_true"] >= 0.3  # no point mass above 70%: an 80% interval can be exact
    assert 0.77 <= coverage(test.loc[spenders, "y_true"].to_numpy(), out[spenders]) <= 0.83
    for _, g in test[spenders].groupby(["segment", "p_true"]):
        assert 0.75 <= coverage(g["y_true"].to_numpy(), out.loc[g.index]) <= 0.85
    # where 95% spend nothing, [0, 0] covers the zeros: about 95%, as the model itself says
    lapsed = test["segment"] == "lapsed"
    assert 0.93 <= coverage(test.loc[lapsed, "y_true"].to_numpy(), out[lapsed]) <= 0.97
    # p_spend is calibrated: its mean in each true-probability group is close to that probability
    for p_true, g in out.groupby(test["p_true"]):
        assert abs(g["p_spend"].mean() - p_true) < 0.03


def test_a_user_who_most_likely_spends_nothing_gets_an_interval_from_zero() -> None:
    cal = fit_calibration(_zero_inflated(20_000, 0), level=0.8)
    out = apply_calibration(pd.DataFrame({"segment": ["lapsed", "other"], "y_pred": [30.0, 5.0]}), cal)
    lapsed = out.iloc[0]
    assert lapsed["p_spend"] < 0.1 and lapsed["lower"] == 0.0 and lapsed["upper"] == 0.0
    assert lapsed["median"] == 0.0  # the expected value (30) lies above the interval: P(spend) < 10%
    assert np.isfinite(out.iloc[1].to_numpy()).all()  # an unseen segment uses the pooled calibration


def test_calibration_report_beats_the_base_rate_and_tables_cover_every_row() -> None:
    cal = fit_calibration(_zero_inflated(20_000, 0), level=0.8)
    test = _zero_inflated(20_000, 2)
    scored = pd.concat([test, apply_calibration(test, cal)], axis=1)
    metrics, tables = calibration_report(scored, base_rate=float((test["y_true"] > 0).mean()))
    assert metrics["brier_p_spend"] < metrics["brier_base_rate"]
    assert tables["coverage_by_decile.csv"]["rows"].sum() == len(test) == tables["p_spend_reliability.csv"]["rows"].sum()
    assert {"interval_coverage_80_lapsed", "interval_coverage_80_decile10", "winkler_80",
            "interval_width_mean"} <= set(metrics)


def _per_row_grid_oracle(frame: pd.DataFrame, cal: dict) -> pd.DataFrame:
    """The interval arithmetic on one full quantile grid per row (how it was first written), as the oracle."""
    from spendlab.forecast.intervals import _GRID, _calibrated_keys

    p, key, table = _calibrated_keys(frame, cal)
    qgrid = table[key]

    def quantile(tau: float) -> np.ndarray:
        zero = 1.0 - p
        u = np.clip((tau - zero) / np.where(p > 0, p, 1.0), 0.0, 1.0)
        pos = u * (len(_GRID) - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, len(_GRID) - 1)
        frac = pos - lo
        rows = np.arange(len(p))
        return np.where(tau <= zero, 0.0, qgrid[rows, lo] * (1 - frac) + qgrid[rows, hi] * frac)

    alpha = 1.0 - float(cal["level"])
    from_zero = (1.0 - p) >= alpha / 2
    lower = np.where(from_zero, 0.0, quantile(alpha / 2))
    upper = np.where(from_zero, quantile(float(cal["level"])), quantile(1 - alpha / 2))
    return pd.DataFrame({"p_spend": p, "median": quantile(0.5), "lower": lower, "upper": np.maximum(upper, lower)},
                        index=frame.index)


def test_intervals_read_from_the_shared_grids_equal_a_full_grid_per_row() -> None:
    cal = fit_calibration(_zero_inflated(20_000, 0), level=0.8)
    test = _zero_inflated(5_000, 3)
    test.loc[test.index[:50], "segment"] = "unseen"  # the pooled calibration
    test.loc[test.index[50:60], "y_pred"] = [0.0, 1e-9, 1e6, 5.0, 5.0, 0.5, 40.0, 80.0, 200.0, 3.0]
    pd.testing.assert_frame_equal(apply_calibration(test, cal), _per_row_grid_oracle(test, cal), check_exact=True)
