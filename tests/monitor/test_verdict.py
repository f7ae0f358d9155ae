"""The verdict: each signal graded against its thresholds, the worst grade wins."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendlab.monitor.verdict import VERDICTS, Thresholds, decide

T = Thresholds()


@pytest.mark.parametrize(("signals", "verdict"), [
    ({}, "ok"),
    ({"max_psi": 0.05}, "ok"),
    ({"max_psi": 0.1, "max_psi_feature": "spend_lag1"}, "warn"),
    ({"max_psi": 0.3}, "retrain"),
    ({"max_segment_shift": -0.2}, "retrain"),  # a share that fell counts like one that rose
    ({"rmse": 130.0, "backtest_rmse": 100.0}, "warn"),
    ({"rmse": 170.0, "backtest_rmse": 100.0}, "retrain"),
    ({"rmse": 170.0, "backtest_rmse": float("nan")}, "ok"),  # no backtest: nothing to compare
    ({"bias": -0.3}, "warn"),
    ({"bias": 1.0}, "retrain"),
    ({"expected_coverage": 0.85, "interval_coverage": 0.78}, "warn"),
    ({"expected_coverage": 0.85, "interval_coverage": 0.6}, "retrain"),
    ({"expected_coverage": 0.8, "interval_coverage": 0.95}, "ok"),  # over-coverage is not a failure
    ({"cold_start_share": 0.5}, "warn"),  # never more than warn on its own
    ({"bias": 0.25, "max_psi": 0.3}, "retrain"),
])
def test_each_signal_is_graded(signals: dict, verdict: str) -> None:
    got, reasons = decide(signals, T)
    assert got == verdict
    assert len(reasons) == (0 if verdict == "ok" else len(reasons)) and (verdict == "ok") == (not reasons)


def test_reasons_name_the_signal_its_value_and_limits() -> None:
    _, reasons = decide({"max_psi": 0.3, "max_psi_feature": "spend_lag2"}, T)
    assert reasons == ["retrain: PSI of spend_lag2 = 0.300 (warn at 0.1, retrain at 0.25)"]


@given(st.floats(0, 2), st.floats(0, 2), st.floats(0, 0.5))
def test_worse_signals_never_give_a_milder_verdict(bias: float, more: float, psi: float) -> None:
    a, _ = decide({"bias": bias, "max_psi": psi}, T)
    b, _ = decide({"bias": bias + more, "max_psi": psi}, T)
    assert VERDICTS.index(b) >= VERDICTS.index(a)


def test_thresholds_in_the_config_are_the_defaults() -> None:
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).parents[2] / "configs" / "monitor.yaml").read_text())["monitor"]
    assert cfg["thresholds"] == {k: getattr(T, k) for k in cfg["thresholds"]}
    assert set(cfg["thresholds"]) == set(vars(T))
    assert not math.isnan(T.psi_warn)
