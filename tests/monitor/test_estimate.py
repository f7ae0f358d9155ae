"""The estimate before the actuals: per-user moments by hand, and honest intervals against simulated worlds
drawn from the model's own distribution (the oracle: when the model is right, the realized figures fall
in the estimate's interval at its level, and the estimate in the realized bootstrap interval)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.intervals import apply_calibration, predictive_moments
from spendlab.monitor.accuracy import bootstrap_interval
from spendlab.monitor.estimate import backtest_total_error, pre_actuals_estimate

_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)  # the calibration's probability grid


def _calibration(p_at: float = 100.0, top: float = 100.0) -> dict:
    """One pooled group: P(spend) = y_pred / p_at (clipped to [0, 1]); positive spend uniform on [0, top]."""
    spec = {"n": 1, "n_positive": 1, "p": {"x": [0.0, p_at], "p": [0.0, 1.0]}, "edges": [],
            "quantiles": [[float(top * u) for u in _GRID]]}
    return {"method": "test", "level": 0.8, "n_bins": 1, "segments": {}, "pooled": spec}


def _rows(y_pred: list[float], cal: dict) -> pd.DataFrame:
    frame = pd.DataFrame({"segment": "active", "y_pred": y_pred})
    return pd.concat([frame, apply_calibration(frame, cal)], axis=1)


def test_predictive_moments_by_hand() -> None:
    rows = _rows([50.0, 95.0, 10.0], _calibration())
    # p = 0.5: interval [0, Q_G(0.6) = 60]; p = 0.95: central [Q_G(.05/.95), Q_G(.85/.95)]; p = 0.1: [0, 0]
    np.testing.assert_allclose(rows["upper"], [60.0, 100 * 0.85 / 0.95, 0.0], rtol=1e-9)
    mom = predictive_moments(rows, _calibration())
    np.testing.assert_allclose(mom["mean"], [0.5 * 50, 0.95 * 50, 0.1 * 50], rtol=1e-6)
    second = np.array([0.5, 0.95, 0.1]) * 100**2 / 3  # E[Y^2] = p E[U^2], U uniform on [0, 100]
    np.testing.assert_allclose(mom["var"], second - mom["mean"].to_numpy() ** 2, rtol=1e-3)
    # every interval holds its level, except [0, 0], which holds the zeros: P(Y = 0) = 0.9
    np.testing.assert_allclose(mom["p_inside"], [0.8, 0.8, 0.9], atol=2e-3)


def test_an_atom_in_g_is_counted_whole() -> None:
    cal = _calibration()
    cal["pooled"]["quantiles"] = [[10.0] * len(_GRID)]  # every buyer spends exactly 10
    rows = _rows([50.0], cal).assign(lower=0.0, upper=10.0)
    mom = predictive_moments(rows, cal)
    assert mom["p_inside"].iloc[0] == pytest.approx(1.0)
    assert mom["var"].iloc[0] == pytest.approx(0.5 * 100 - 25)  # Bernoulli(0.5) times 10
    assert predictive_moments(rows.assign(lower=10.5, upper=20.0), cal)["p_inside"].iloc[0] == 0.0


def _scores(y_pred: np.ndarray, cal: dict, cold: int = 0) -> pd.DataFrame:
    rows = _rows(list(y_pred), cal)
    basis = ["cold_start_fallback"] * cold + ["model"] * (len(rows) - cold)
    return rows.rename(columns={"y_pred": "prediction"}).assign(basis=basis)


def test_pre_actuals_estimate_by_hand() -> None:
    cal = _calibration(p_at=50.0)  # mean = p * 50 = y_pred: the prediction is the mixture's mean
    scores = _scores(np.array([4.0, 25.0, 45.0]), cal, cold=1)
    scores.loc[0, ["p_spend", "lower", "upper"]] = [0.5, 0.0, 8.0]  # the cold-start row's own outputs
    est = pre_actuals_estimate(scores, level=0.8, calibration=cal, model_error=0.1)
    assert est["expected_total"] == 74.0
    mom = predictive_moments(scores.iloc[1:].rename(columns={"prediction": "y_pred"}), cal)
    var = 0.5 * 0.5 * (4.0 / 0.5) ** 2 + mom["var"].sum()  # cold start: 8 with probability 0.5
    assert est["expected_total_sd"] == pytest.approx(math.sqrt(var + (0.1 * 74.0) ** 2))
    assert est["expected_total_high"] - est["expected_total"] == pytest.approx(1.959964 * est["expected_total_sd"])
    cov = np.array([0.8, *mom["p_inside"]])  # cold start: max(level, P(Y = 0))
    assert est["expected_coverage"] == pytest.approx(cov.mean())
    assert est["expected_coverage_sd"] == pytest.approx(math.sqrt((cov * (1 - cov)).sum()) / 3)
    assert est["expected_spenders"] == pytest.approx(scores["p_spend"].sum())
    assert est["cold_start_share"] == pytest.approx(1 / 3)
    # without the calibration every row is a cold-start row: coverage max(level, P(Y = 0))
    bare = pre_actuals_estimate(scores, level=0.8)
    assert bare["expected_coverage"] == pytest.approx(np.maximum(0.8, 1 - scores["p_spend"]).mean())


def _draw(scores: pd.DataFrame, cal: dict, rng: np.random.Generator) -> np.ndarray:
    """One realized period drawn from the model's own mixture (the model is right)."""
    p = scores["p_spend"].to_numpy()
    spend = rng.random(len(p)) < p
    top = cal["pooled"]["quantiles"][0][-1]
    return np.where(spend, rng.random(len(p)) * top, 0.0)


def test_when_the_model_is_right_the_estimate_is_honest() -> None:
    """Oracle: 300 periods drawn from the model's distribution. The estimate's 95% intervals hold the
    realized total and coverage about 95% of the time, and the estimate lies in the realized 95%
    bootstrap interval at least as often (that interval also holds the users' spread)."""
    cal = _calibration(p_at=50.0)
    rng = np.random.default_rng(7)
    scores = _scores(rng.uniform(0.5, 49.5, size=400), cal)
    est = pre_actuals_estimate(scores, level=0.8, calibration=cal)
    in_est = {"total": 0, "coverage": 0}
    in_boot = {"total": 0, "coverage": 0}
    trials = 300
    for seed in range(trials):
        joined = scores.assign(y_true=_draw(scores, cal, np.random.default_rng(seed)))
        y = joined["y_true"].to_numpy()
        realized = {"total": y.sum(), "coverage": float(((y >= joined["lower"]) & (y <= joined["upper"])).mean())}
        for key, metric in (("total", "realized_total"), ("coverage", "interval_coverage")):
            in_est[key] += est[f"expected_{key}_low"] <= realized[key] <= est[f"expected_{key}_high"]
            if seed < 60:  # the bootstrap is slower: fewer periods
                lo, hi = bootstrap_interval(joined, metric=metric, n_boot=200, seed=seed)
                in_boot[key] += lo <= est[f"expected_{key}"] <= hi
    for key in in_est:
        assert 0.91 <= in_est[key] / trials <= 0.99, (key, in_est[key])
        assert in_boot[key] / 60 >= 0.88, (key, in_boot[key])


def test_a_biased_model_is_caught_by_the_model_error_not_hidden() -> None:
    """The model forecasts 30% too much: the users' noise alone gives an interval that misses the realized
    total; the backtest's relative error of a total widens it to hold it."""
    cal = _calibration(p_at=50.0)
    scores = _scores(np.random.default_rng(1).uniform(0.5, 49.5, size=400), cal)
    y = _draw(scores, cal, np.random.default_rng(2))
    biased = scores.assign(prediction=scores["prediction"] * 1.3)
    narrow = pre_actuals_estimate(biased, level=0.8, calibration=cal)
    wide = pre_actuals_estimate(biased, level=0.8, calibration=cal, model_error=0.3)
    assert not narrow["expected_total_low"] <= y.sum() <= narrow["expected_total_high"]
    assert wide["expected_total_low"] <= y.sum() <= wide["expected_total_high"]


def test_backtest_total_error_sees_only_origins_complete_by_the_cutoff() -> None:
    bt = pd.DataFrame({"cutoff": [dt.date(2023, 10, 31), dt.date(2023, 11, 30), dt.date(2023, 12, 31)],
                       "bias": [-0.2, 0.1, 0.5]})
    # at cutoff 2023-12-31 the origin of 2023-12-31 (target January) is not complete: left out
    assert backtest_total_error(bt, as_of=dt.date(2023, 12, 31), freq="month") == pytest.approx(math.sqrt(0.025))
    assert backtest_total_error(bt, as_of=dt.date(2024, 1, 31), freq="month") == pytest.approx(math.sqrt(0.3 / 3))
    assert math.isnan(backtest_total_error(bt, as_of=dt.date(2023, 11, 29), freq="month"))
    assert math.isnan(backtest_total_error(pd.DataFrame(), as_of=dt.date(2024, 1, 31), freq="month"))


def test_moments_of_a_fitted_calibration_do_not_depend_on_the_batch() -> None:
    """Segments and forecast bins each have their own grid: a batch gives every row what it gets alone."""
    from spendlab.forecast.intervals import fit_calibration

    rng = np.random.default_rng(3)
    n = 900
    val = pd.DataFrame({"segment": rng.choice(["active", "lapsed", "new"], size=n), "y_pred": rng.gamma(1.0, 20.0, n)})
    val["y_true"] = np.where(rng.random(n) < 0.5, 0.0, val["y_pred"] * rng.gamma(2.0, 0.5, n))
    cal = fit_calibration(val, level=0.8, min_positive=20, min_segment=100)
    rows = _rows(list(rng.gamma(1.0, 20.0, 40)), cal).assign(segment=rng.choice(["active", "lapsed", "other"], 40))
    rows = pd.concat([rows[["segment", "y_pred"]], apply_calibration(rows, cal)], axis=1)
    batch = predictive_moments(rows, cal)
    alone = pd.concat([predictive_moments(rows.iloc[[i]], cal) for i in range(len(rows))])
    pd.testing.assert_frame_equal(batch, alone)
    assert (batch["p_inside"].between(0.0, 1.0)).all() and (batch["var"] >= 0).all()


def test_the_report_shows_the_estimate_with_its_interval() -> None:
    from spendlab.jobs.monitor_report import summary_table

    summary = {"realized_total": 100.0, "realized_total_low": 90.0, "realized_total_high": 110.0,
               "expected_total": 120.0, "expected_total_low": 80.0, "expected_total_high": 160.0,
               "interval_coverage": 0.85, "expected_coverage": 0.82, "expected_coverage_low": 0.8,
               "expected_coverage_high": 0.84}
    t = summary_table(summary).set_index("metric")
    assert t.loc["total spend", ["estimated before actuals", "estimated 95% low", "estimated 95% high"]].tolist() == [
        120.0, 80.0, 160.0]
    assert t.loc["interval coverage", "estimated 95% high"] == 0.84
    assert math.isnan(t.loc["RMSE", "estimated 95% low"])  # no estimate of the RMSE before the actuals
