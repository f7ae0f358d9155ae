"""The outputs of ``spendlab replay``: one MLflow run with a child per policy, and the report directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from spendlab.io.atomic import atomic_path, atomic_write_text
from spendlab.io.safe_out import prepare_output_dir
from spendlab.jobs.monitor_report import period_step
from spendlab.monitor.render import render_replay_report
from spendlab.monitor.verdict import VERDICTS
from spendlab.tracking import runs as tracking

if TYPE_CHECKING:
    from spendlab.forecast.candidate import Candidate
    from spendlab.jobs.replay import ReplayPlan


def policy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per policy: mean realized RMSE and |bias|, refits, and the count of each verdict."""
    g = table.groupby("policy", sort=False)
    out = pd.DataFrame({"mean rmse": g["rmse"].mean(), "mean |bias|": g["bias"].apply(lambda b: b.abs().mean()),
                        "mean coverage": g["interval_coverage"].mean(), "refits": g["retrained"].sum(),
                        **{f"{v} periods": g["verdict"].apply(lambda s, v=v: int((s == v).sum())) for v in VERDICTS}})
    return out.reset_index()


def log_and_write(plan: ReplayPlan, cand: Candidate, table: pd.DataFrame, *, seconds: float, last_day: dt.date,
                  tracking_uri: str | None) -> tuple[str, dict[str, Path]]:
    """Log the replay (a parent run, a child per policy with metrics at step ``YYYYMM``); write the report."""
    summary = policy_summary(table)
    name = cand.experiment_config().name
    html = render_replay_report(
        title=f"spendlab replay: {name}, {plan.first:%Y-%m} .. {plan.last:%Y-%m}",
        notes={"model": f"{cand.model_key} (candidate {cand.candidate_id[:12]})",
               "periods": f"{plan.first:%Y-%m} .. {plan.last:%Y-%m} (data to {last_day})",
               "seconds": f"{seconds:.1f}"},
        by_policy=summary, table=table.drop(columns=["reasons"]))
    paths: dict[str, Path] = {}
    if plan.out is not None:
        out = prepare_output_dir(plan.out)
        paths = {"report": out / "report.html", "table": out / "replay.csv", "summary": out / "policies.csv"}
        atomic_write_text(paths["report"], html)
        for key, df in (("table", table), ("summary", summary)):
            with atomic_path(paths[key]) as tmp:
                df.to_csv(tmp, index=False, float_format="%.10g")
    with tracking.start_parent_run(name, run_name=f"replay-{plan.first:%Y%m}-{plan.last:%Y%m}",
                                   tags={"kind": "replay", "model": cand.model_key,
                                         "policies": ",".join(plan.policies)}, tracking_uri=tracking_uri) as parent:
        parent.params({"from": f"{plan.first:%Y-%m}", "to": f"{plan.last:%Y-%m}", "candidate_id": cand.candidate_id})
        parent.metrics({"seconds": seconds})
        parent.table(table, "replay.csv")
        parent.table(summary, "policies.csv")
        parent.text(html, "report.html")
        for policy, part in table.groupby("policy", sort=False):
            _log_policy(parent, str(policy), part)
    return parent.run_id, paths


def _log_policy(parent: Any, policy: str, part: pd.DataFrame) -> None:
    with tracking.child_run(parent, run_name=policy, tags={"kind": "replay_policy", "policy": policy}) as run:
        for _, r in part.iterrows():
            step = period_step(dt.date.fromisoformat(f"{r['period']}-01"), "month")
            run.metrics({"rmse": r["rmse"], "bias": r["bias"], "interval_coverage": r["interval_coverage"],
                         "retrained": float(r["retrained"]), "verdict_level": float(VERDICTS.index(r["verdict"]))},
                        step=step)
        run.metrics({"mean_rmse": float(part["rmse"].mean()), "refits": float(part["retrained"].sum())})
