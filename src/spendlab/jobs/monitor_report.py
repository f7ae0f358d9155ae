"""The outputs of ``spendlab monitor``: the report directory and the MLflow monitoring run."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from spendlab.io.atomic import atomic_path, atomic_write_text
from spendlab.io.safe_out import prepare_output_dir
from spendlab.monitor.render import history_table, render_monitor_report
from spendlab.tracking.monitoring import log_monitoring_run, monitoring_history

if TYPE_CHECKING:
    from spendlab.jobs.monitor import MonitorPlan, MonitorResult
    from spendlab.tracking.monitoring import ModelRecord

#: Rows of the summary table: (label, realized key, backtest key, estimated-before-actuals key).
_SUMMARY = (("RMSE", "rmse", "backtest_rmse", None), ("bias", "bias", "backtest_bias", None),
            ("MAE", "mae", None, None), ("normalized Gini", "gini_norm", None, None),
            ("top-10% capture", "top10_capture", None, None),
            ("interval coverage", "interval_coverage", "backtest_interval_coverage", "expected_coverage"),
            ("Brier of p_spend", "brier_p_spend", "backtest_brier_p_spend", None),
            ("total spend", "realized_total", None, "expected_total"))


def period_step(period_start: dt.date, freq: str) -> int:
    """Return the MLflow step of a monitored period: ``YYYYMM`` (monthly) or ``YYYYMMDD`` (weekly)."""
    return period_start.year * 100 + period_start.month if freq == "month" else int(period_start.strftime("%Y%m%d"))


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Realized (with its bootstrap interval), backtest and estimated-before-actuals (with its interval) figures."""
    nan = float("nan")
    rows = []
    for label, real, back, est in _SUMMARY:
        rows.append({"metric": label, "realized": summary.get(real, nan),
                     "realized 95% low": summary.get(f"{real}_low", nan),
                     "realized 95% high": summary.get(f"{real}_high", nan),
                     "backtest": summary.get(back, nan) if back else nan,
                     "estimated before actuals": summary.get(est, nan) if est else nan,
                     "estimated 95% low": summary.get(f"{est}_low", nan) if est else nan,
                     "estimated 95% high": summary.get(f"{est}_high", nan) if est else nan})
    return pd.DataFrame(rows)


def _finite(summary: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def write_report(result: MonitorResult, plan: MonitorPlan, record: ModelRecord, lineage: dict[str, str], *,
                 tracking_uri: str | None, experiment: str, log_run: bool) -> MonitorResult:
    """Write the report directory (when the plan has one) and log the monitoring run; fill ``result``."""
    start = dt.date.fromisoformat(lineage["as_of"]) + dt.timedelta(days=1)
    step = period_step(start, lineage.get("freq", "month"))  # type: ignore[arg-type]
    name = lineage.get("model_name", plan.model)
    past = monitoring_history(experiment, name, tracking_uri=tracking_uri) if log_run else pd.DataFrame()
    now = pd.DataFrame([{"period": result.period, "model_version": result.model_version,
                         "rmse": result.summary["rmse"], "verdict": result.verdict}])
    if len(past):
        past = past[~((past["period"] == result.period) & (past["model_version"] == result.model_version))]
    history = history_table(result.backtest, pd.concat([past, now], ignore_index=True) if len(past) else now)
    notes = {"model": f"{name} version {result.model_version} (trained to {lineage.get('train_cutoff', '?')})",
             "period": f"{result.period} (scored as of {lineage['as_of']})", "scores": str(plan.scores),
             "input": plan.input, "users scored": f"{int(result.summary['n_users']):,}",
             "buyers without a score (new after the cutoff)": f"{result.summary['unscored_new_users']:,}"}
    html = render_monitor_report(
        title=f"spendlab monitor: {name} v{result.model_version}, {result.period}", verdict=result.verdict,
        reasons=result.reasons, notes=notes, summary=summary_table(result.summary), accuracy=result.accuracy,
        drift=result.drift, segments=result.segments, history=history,
        band=(result.summary["backtest_rmse_low"], result.summary["backtest_rmse_high"]))
    if plan.out is not None:
        result.paths = _write_dir(plan, result, html, history)
    if log_run:
        tags = {"model_name": name, "model_version": result.model_version, "period": result.period,
                "verdict": result.verdict, "model_uri": result.model_uri}
        metrics = {**_finite(result.summary), "backtest_test_rmse": result.summary["backtest_rmse"]}
        result.run_id = log_monitoring_run(
            experiment, tags=tags, params={"scores": str(plan.scores), "input": plan.input,
                                           **{f"threshold.{k}": v for k, v in vars(plan.thresholds).items()}},
            metrics=metrics, step=step, tables={"accuracy.csv": result.accuracy, "drift.csv": result.drift,
                                                "segments.csv": result.segments},
            files=result.paths, tracking_uri=tracking_uri)
    return result


def _write_dir(plan: MonitorPlan, result: MonitorResult, html: str, history: pd.DataFrame) -> dict[str, Path]:
    """``summary.json``, ``accuracy.csv``, ``drift.csv``, ``segments.csv``, ``history.csv``, ``report.html``."""
    out = prepare_output_dir(plan.out, inputs=[plan.scores, plan.input])  # type: ignore[arg-type]
    paths = {"summary": out / "summary.json", "report": out / "report.html"}
    payload = {"verdict": result.verdict, "reasons": result.reasons, "period": result.period,
               "model_uri": result.model_uri, "model_version": result.model_version,
               **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.summary.items()}}
    atomic_write_text(paths["summary"], json.dumps(payload, indent=2, default=str) + "\n")
    for name, df in (("accuracy", result.accuracy), ("drift", result.drift), ("segments", result.segments),
                     ("history", history)):
        paths[name] = out / f"{name}.csv"
        with atomic_path(paths[name]) as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
    atomic_write_text(paths["report"], html)
    return paths
