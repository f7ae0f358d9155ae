"""The verdict of one monitored period: ``ok``, ``warn`` or ``retrain``, and every reason for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

VERDICTS: tuple[str, ...] = ("ok", "warn", "retrain")


@dataclass(frozen=True)
class Thresholds:
    """Where a signal turns ``warn`` and ``retrain`` (``configs/monitor.yaml``; see docs/monitoring.md)."""

    psi_warn: float = 0.1
    psi_retrain: float = 0.25
    segment_shift_warn: float = 0.05
    segment_shift_retrain: float = 0.15
    rmse_ratio_warn: float = 1.25
    rmse_ratio_retrain: float = 1.6
    bias_warn: float = 0.25
    bias_retrain: float = 0.5
    coverage_drop_warn: float = 0.05
    coverage_drop_retrain: float = 0.12
    cold_start_warn: float = 0.05


def _grade(value: float, warn: float, retrain: float) -> str:
    if not math.isfinite(value):
        return "ok"
    return "retrain" if value >= retrain else "warn" if value >= warn else "ok"


def decide(signals: dict[str, Any], t: Thresholds) -> tuple[str, list[str]]:
    """Grade every signal against its thresholds; the verdict is the worst grade.

    Parameters
    ----------
    signals : dict
        Any of ``max_psi``, ``max_psi_feature``, ``max_segment_shift``, ``cold_start_share`` (drift,
        before actuals) and ``rmse``, ``backtest_rmse``, ``bias``, ``interval_coverage``,
        ``expected_coverage`` (after); a missing or NaN signal grades ``ok``.
    t : Thresholds
        The limits.

    Returns
    -------
    tuple
        (verdict, reasons): one reason line per signal graded ``warn`` or ``retrain``.
    """
    nan = float("nan")
    rmse, base = float(signals.get("rmse", nan)), float(signals.get("backtest_rmse", nan))
    ratio = rmse / base if base > 0 else nan
    drop = float(signals.get("expected_coverage", nan)) - float(signals.get("interval_coverage", nan))
    checks = [
        ("max_psi", float(signals.get("max_psi", nan)), t.psi_warn, t.psi_retrain,
         f"PSI of {signals.get('max_psi_feature', '?')}"),
        ("max_segment_shift", abs(float(signals.get("max_segment_shift", nan))), t.segment_shift_warn,
         t.segment_shift_retrain, "largest segment share shift"),
        ("cold_start_share", float(signals.get("cold_start_share", nan)), t.cold_start_warn, math.inf,
         "cold-start share"),
        ("rmse_ratio", ratio, t.rmse_ratio_warn, t.rmse_ratio_retrain, "realized RMSE / backtest test RMSE"),
        ("bias", abs(float(signals.get("bias", nan))), t.bias_warn, t.bias_retrain, "|realized bias|"),
        ("coverage_drop", drop, t.coverage_drop_warn, t.coverage_drop_retrain,
         "expected - realized interval coverage"),
    ]
    verdict, reasons = "ok", []
    for _, value, warn, retrain, label in checks:
        grade = _grade(value, warn, retrain)
        if grade != "ok":
            reasons.append(f"{grade}: {label} = {value:.3f} (warn at {warn:g}, retrain at {retrain:g})")
            verdict = max(verdict, grade, key=VERDICTS.index)
    return verdict, reasons
