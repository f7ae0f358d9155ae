"""Monitoring commands: ``monitor`` (one scored period against what happened) and ``replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from spendlab.cli.common import ConfigOpt, FormatOpt, InputArg, TrackingOpt, out, progress_lines, reader_config
from spendlab.cli.common import tracking_uri as resolve_tracking_uri
from spendlab.config import load_yaml
from spendlab.io.safe_out import claimed_dir


def monitor(
    scores: Annotated[Path, typer.Argument(help="A `spendlab score` output (Parquet file, or the Spark engine's folder).")],
    input: InputArg,
    format: FormatOpt = "generic",
    out_path: Annotated[Path | None, typer.Option("--out", help="Report directory (report.html, summary.json, "
                                                  "CSV tables).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The monitored registered model (default: the "
                                              "config's, spendlab-next-month).")] = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Measure a scoring run against the period it forecast.

    Realized accuracy overall and per segment, drift against the training population, a verdict
    (ok / warn / retrain: exit 6), one MLflow run.
    --config: a YAML with a `monitor:` section (thresholds, see configs/monitor.yaml) and `reader:`.
    """
    from spendlab.jobs.monitor import execute, plan_monitor  # defer: mlflow, sklearn, sqlglot
    section = dict((load_yaml(config).get("monitor") or {}) if config is not None else {})
    if model is not None:
        section["model"] = model
    with claimed_dir(out_path, inputs=[scores, input, config]):
        plan = plan_monitor(scores, input, format=format, config=section, reader=reader_config(config), out=out_path)
        result = execute(plan, tracking_uri=resolve_tracking_uri(tracking_uri))
    s = result.summary
    out.print(f"{result.verdict}: version {result.model_version}, {result.period}: realized RMSE {s['rmse']:.3f} "
              f"(backtest {s['backtest_rmse']:.3f}), bias {s['bias']:+.1%}, coverage {s['interval_coverage']:.1%} "
              f"(expected {s['expected_coverage']:.1%}), max PSI {s['max_psi']:.3f}"
              + (f"; wrote {escape(str(out_path))}/" if out_path is not None else ""), highlight=False, soft_wrap=True)
    for reason in result.reasons:
        out.print(f"  {escape(reason)}", highlight=False, soft_wrap=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def replay(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (its latest run's champion is replayed).")],
    first: Annotated[str, typer.Option("--from", help="First monitored period (YYYY-MM).")],
    last: Annotated[str, typer.Option("--to", help="Last monitored period (YYYY-MM).")],
    retrain: Annotated[str | None, typer.Option("--retrain", help="never, monthly or on-retrain-verdict (comma-"
                                                "separated; default: all three, side by side).")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Report directory (report.html, replay.csv, "
                                                  "policies.csv).")] = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Simulate production under each retraining policy.

    At each period end, score with each policy's champion and monitor the next period; the policies
    side by side in report.html and in one MLflow run (a child per policy).
    """
    from spendlab.jobs.replay import execute as execute_replay  # defer: mlflow, sklearn, sqlglot
    from spendlab.jobs.replay import plan_replay  # defer: mlflow, sklearn, sqlglot
    from spendlab.jobs.replay_report import policy_summary  # defer: mlflow, sklearn, sqlglot
    section = dict((load_yaml(config).get("monitor") or {}) if config is not None else {})
    with claimed_dir(out_path, inputs=[experiment, config]), progress_lines("replay") as say:
        plan = plan_replay(str(experiment), first=first, last=last, policies=retrain,
                           thresholds={k: float(v) for k, v in (section.get("thresholds") or {}).items()}, out=out_path)
        result = execute_replay(plan, tracking_uri=resolve_tracking_uri(tracking_uri), progress=say)
    for _, r in policy_summary(result["table"]).iterrows():
        out.print(f"{r['policy']}: mean realized RMSE {r['mean rmse']:.3f}, mean |bias| {r['mean |bias|']:.1%}, "
                  f"{int(r['refits'])} refits, {int(r['retrain periods'])} retrain verdicts", highlight=False)
    out.print(f"replayed in {result['seconds']:.1f} s" + (f"; wrote {escape(str(out_path))}/" if out_path else ""),
              highlight=False)
