"""Covariate commands.

``spendlab datasets synth-covariates`` (the covariates world: line items, household table, oracle) and
``spendlab experiment covariates`` (the champion with and without covariates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from spendlab.cli.common import TrackingOpt, err, out, progress_lines, show_table
from spendlab.cli.common import tracking_uri as resolve_tracking_uri
from spendlab.errors import SpendlabError
from spendlab.io.safe_out import output_dir


def datasets_synth_covariates(
    out_path: Annotated[Path, typer.Option("--out", help="Output directory: lines.parquet (or .csv), "
                                           "households.csv, oracle.parquet.")],
    users: Annotated[int, typer.Option(help="Number of households.")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    start: Annotated[str, typer.Option(help="First day of the history (a month start, YYYY-MM-DD).")] = "2022-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 0,
    format: Annotated[str, typer.Option("--format", help="parquet or csv (the line items).")] = "parquet",
) -> None:
    """Write a grocery line-item export and a household table whose attributes drive spend, with the oracle."""
    from spendlab.jobs.covariates import synth_covariates  # defer: mlflow, sklearn, sqlglot
    if format not in ("parquet", "csv"):
        raise SpendlabError(f"--format must be parquet or csv, got {format!r}")
    if users < 1 or months < 2:
        raise SpendlabError("--users must be >= 1 and --months >= 2")
    with output_dir(out_path):
        stats = synth_covariates(out_path, users=users, months=months, start=start, seed=seed, fmt=format)
    err.print(f"wrote {stats['lines']:,} lines ({stats['orders']:,} orders) for {stats['users']:,} households, "
              f"{stats['household_rows']:,} household rows and the oracle to {escape(str(out_path))}", highlight=False)


def experiment_covariates(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML whose feature set declares covariates.")],
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated registry keys "
                                                  "(default: the experiment's models).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory: with/, without/, covariates.json, "
                                          "importance.csv.")] = Path("outputs/covariates-experiment"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Run the experiment with and without its covariates; print both champions and each covariate's importance."""
    from spendlab.jobs.covariate_experiment import run_covariates  # defer: mlflow, sklearn, sqlglot
    keys = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with output_dir(out_dir, inputs=[experiment]), progress_lines("experiment") as progress:  # claimed before the work
        result = run_covariates(experiment, models=keys, out_dir=out_dir,
                                tracking_uri=resolve_tracking_uri(tracking_uri), progress=progress)
    s = result.summary
    out.print(f"champion with covariates: {escape(s['champion_with'])} (test RMSE {s['rmse_with']:.3f}); without: "
              f"{escape(s['champion_without'])} ({s['rmse_without']:.3f}); difference {s['delta_rmse']:+.3f} "
              f"[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}] (paired bootstrap, 95%)", highlight=False, soft_wrap=True)
    if not result.importance.empty:
        show_table(result.importance, f"permutation importance on the validation origins ({s['importance_model']})")
    out.print(f"wrote {escape(str(result.paths['summary']))}, {escape(str(result.paths['importance']))}",
              highlight=False, soft_wrap=True)
