"""Forecasting commands.

``pipeline``, ``tune``, ``experiment run``, ``promote``, ``score``, ``compare`` and ``evaluate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from spendlab.cli.common import (
    ConfigOpt,
    EngineOpt,
    FormatOpt,
    InputArg,
    SparkMasterOpt,
    TrackingOpt,
    check_engine,
    err,
    optuna_heartbeat,
    out,
    progress_lines,
    reader_config,
    show_table,
    spark_session,
    users_config,
)
from spendlab.cli.common import tracking_uri as resolve_tracking_uri
from spendlab.config import load_config
from spendlab.errors import SpendlabError
from spendlab.io.atomic import confined_path
from spendlab.io.safe_out import UnsafeOutputError, check_output, output_dir


def pipeline(
    config: Annotated[Path, typer.Option("--config", "-c", help="Pipeline YAML.")] = Path("configs/pipeline.yaml"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Run the main job: validate -> describe -> experiment -> tune -> promote -> score, on one dataset."""
    from spendlab.jobs.pipeline import PipelineConfig, plan_pipeline, run_pipeline  # defer: mlflow, sklearn, sqlglot
    cfg = load_config(PipelineConfig, config)
    heartbeat = optuna_heartbeat()
    uri = resolve_tracking_uri(tracking_uri or cfg.tracking_uri)
    if uri != cfg.tracking_uri:
        cfg = cfg.model_copy(update={"tracking_uri": uri})
    try:  # out_dir stays inside the project directory (the working directory)
        confined_path(Path.cwd(), str(cfg.out_dir))
    except SpendlabError as exc:
        raise UnsafeOutputError(f"{config}: out_dir: {exc}") from None
    with output_dir(cfg.out_dir, inputs=[config, cfg.experiment], option=f"{config}: out_dir"):
        run_pipeline(plan_pipeline(cfg, heartbeat=heartbeat), console=err)


def tune(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (experiments/<name>.yaml).")],
    model: Annotated[str, typer.Option("--model", help="Registry key with a search space (e.g. lightgbm).")],
    trials: Annotated[int, typer.Option("--trials", help="Target number of finished trials in the study.")] = 20,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop starting new trials after S seconds.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Trials run at once on threads. Past the first 3 "
                                      "trials, more than 1 makes the sequence of trials depend on which "
                                      "finishes first.")] = 1,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Tune a model with Optuna on the experiment's validation origins (resumes an interrupted study).

    The best parameters go to configs/tuned/<experiment>-<model>.yaml, which later experiment runs
    pick up. The study is stored in mlruns/optuna.db; each trial is a nested MLflow run.
    """
    from spendlab.jobs.tune import tune_experiment  # defer: mlflow, sklearn, sqlglot

    heartbeat = optuna_heartbeat()
    result = tune_experiment(experiment, model_key=model, n_trials=trials, timeout=timeout, heartbeat=heartbeat,
                             jobs=jobs, tracking_uri=resolve_tracking_uri(tracking_uri))
    out.print(f"study {escape(result.study_name)}: {result.n_complete} complete, {result.n_pruned} pruned; "
              f"best validation RMSE {result.best_value:.4f} with {escape(str(result.best_params))}")
    out.print(f"best parameters written to {escape(str(result.params_path))}")


def promote(
    experiment: Annotated[str, typer.Argument(help="Experiment name (or path to its YAML in experiments/).")],
    force: Annotated[bool, typer.Option(help="Move the alias even when the candidate does not win.")] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Register the experiment's tested champion as spendlab-next-month.

    The candidate is the experiment's candidate.json; @champion moves only if it wins.

    Exit 0 when the candidate became (or already is) the champion; exit 4 when it does not beat the
    current champion on the same test protocol (the alias stays, the version's tags say why).
    """
    from spendlab.jobs.promote import promote_experiment  # defer: mlflow, sklearn, sqlglot
    outcome = promote_experiment(experiment, force=force, tracking_uri=resolve_tracking_uri(tracking_uri))
    verb = "promoted" if outcome.promoted else "not promoted"
    out.print(f"{verb}: spendlab-next-month version {outcome.version} ({escape(outcome.reason)})")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def score(
    input: InputArg,
    out_path: Annotated[Path, typer.Option("--out", help="Output Parquet file (written atomically).")],
    format: FormatOpt = "generic",
    model: Annotated[str, typer.Option("--model", help="MLflow model URI.")] = "models:/spendlab-next-month@champion",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Cutoff date (YYYY-MM-DD); default: end of the "
                                                  "latest complete calendar month in the data.")] = None,
    chunk_users: Annotated[int, typer.Option(help="Users per scoring chunk (bounds memory).")] = 250_000,
    config: ConfigOpt = None,
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Score every user's next-period spend.

    Expected value, P(spend), median and 80% interval of the realized amount; one row per user seen by
    the cutoff. --model: a models:/ URI or a model directory (verified before anything in it is loaded).
    """
    from spendlab.jobs.plan import plan_score  # defer: mlflow, sklearn, sqlglot
    from spendlab.jobs.score import execute_score  # defer: mlflow, sklearn, sqlglot
    plan = plan_score(input, out=out_path, model_uri=model, format=format, reader=reader_config(config),
                      as_of=as_of, chunk_users=chunk_users, users=users_config(config))
    check_engine(engine, format)
    check_output(out_path, kind="dir" if engine == "spark" else "file", inputs=[input, config])
    if engine == "spark":  # the model as a Spark UDF; a Parquet folder out (docs/scale-out.md)
        from spendlab.spark.jobs import score_job  # defer: sqlglot, only the Spark engine needs it
        job = score_job(spark_session(config, spark_master), input, out_path, model_uri=model, as_of=plan.as_of,
                        reader=plan.reader, tracking_uri=resolve_tracking_uri(tracking_uri), users=plan.users)
        out.print(f"scored {job.rows_out:,} users as of {job.as_of} with {escape(model)} on Spark; "
                  f"wrote {escape(str(out_path))}/")
        return
    result = execute_score(plan, tracking_uri=resolve_tracking_uri(tracking_uri), progress=err.is_terminal)
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}", highlight=False, soft_wrap=True)
    basis = ", ".join(f"{n:,} {b}" for b, n in sorted(result.by_basis.items(), key=lambda kv: (-kv[1], kv[0])))
    out.print(f"scored {result.rows_out:,} users (= {result.users_in:,} users in) as of {result.as_of} "
              f"for {result.target_period} with {escape(result.model_uri)} v{result.model_version}: "
              f"total predicted {result.total_prediction:,.2f}; by basis: {basis or 'none'}; "
              f"wrote {escape(str(result.out))}", highlight=False, soft_wrap=True)
    d = result.drift
    if d:  # against the reference profile logged with the version at promotion
        out.print(f"drift against training: max PSI {d['max_psi']:.3f} ({escape(d['max_psi_feature'])}), segment "
                  f"share shift {d['max_segment_shift']:+.3f} ({d['max_shift_segment']}), cold-start share "
                  f"{d['cold_start_share']:.2%}", highlight=False, soft_wrap=True)


def experiment_run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (experiments/<name>.yaml).")],
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated registry keys "
                                                  "(default: the experiment's models).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for leaderboard.csv and predictions.parquet.")]
    = Path("outputs/experiment"),
    tracking_uri: TrackingOpt = None,
    profile: Annotated[bool, typer.Option("--profile", help="Also print where the time went: wall and CPU "
                                          "seconds per stage (loading, features per cutoff, each model's fit "
                                          "and predict, blending, bootstrap, MLflow logging); the parent run "
                                          "always records them (profile/stages.csv).")] = False,
    feature_cache: Annotated[bool, typer.Option("--feature-cache/--no-feature-cache", help="Keep each cutoff's "
                                                "features under outputs/.feature_cache for the next run on the "
                                                "same data, reader and feature set.")] = True,
) -> None:
    """Backtest the experiment's models on rolling origins; print the leaderboard, log to MLflow."""
    from spendlab.jobs.experiment import run_experiment  # defer: mlflow, sklearn, sqlglot
    from spendlab.jobs.feature_cache import DEFAULT_CACHE_DIR  # defer: mlflow, sklearn, sqlglot
    keys = [m.strip() for m in models.split(",") if m.strip()] if models else None
    # claimed before the work: a tracking store given inside --out must not make it "someone else's" directory
    with output_dir(out_dir, inputs=[experiment]), progress_lines("experiment") as progress:
        result = run_experiment(experiment, models=keys, out_dir=out_dir, tracking_uri=resolve_tracking_uri(tracking_uri),
                                progress=progress, feature_cache=DEFAULT_CACHE_DIR if feature_cache else None)
    show_table(result.leaderboard, f"{result.name}: mean over test origins (champion chosen on validation)",
               highlight=result.champion)
    out.print(f"champion: {escape(result.champion)}   MLflow parent run: {result.parent_run_id}",
              highlight=False, soft_wrap=True)
    written = [str(result.paths[k]) for k in ("leaderboard", "predictions", "report") if k in result.paths]
    out.print(f"wrote {escape(', '.join(written))}", highlight=False, soft_wrap=True)
    if profile:
        show_table(result.profile, "where the time went (seconds per stage, summed over origins and threads)")


def compare(
    experiment_name: Annotated[str, typer.Argument(help="Experiment name (the YAML's name:).")],
    top: Annotated[int, typer.Option(min=1, help="How many best runs to diff params between.")] = 3,
    metric: Annotated[str, typer.Option("--metric", help="Sort by this metric, best first: rmse (mean test RMSE), "
                                        "mae, bias (nearest 0), wape, top10_capture, gini_norm, spearman "
                                        "(highest first), decile_mape, validation_rmse, interval_coverage_80 "
                                        "(nearest 80%), or any metric key the model runs logged.")] = "rmse",
    model: Annotated[str | None, typer.Option("--model", help="Only this model's runs (registry key).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print runs and param diff as JSON on stdout.")] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """List every model run of EXPERIMENT_NAME across invocations, best --metric first.

    Also shows the params that differ between the best --top runs (only params those runs all have;
    tuning, trial and promotion runs are not model runs and are not listed).
    """
    from spendlab.jobs.compare import compare_runs  # defer: mlflow, sklearn, sqlglot
    board, diff = compare_runs(experiment_name, tracking_uri=resolve_tracking_uri(tracking_uri), top=top, metric=metric,
                               model=model)
    if as_json:
        payload = {"experiment": experiment_name, "metric": metric, "top": top,
                   "runs": json.loads(board.to_json(orient="records")),
                   "param_diff": json.loads(diff.to_json(orient="records"))}
        typer.echo(json.dumps(payload, indent=2))
        return
    shown = board
    if out.is_terminal:  # short ids on screen; --json and piped output keep them whole
        shown = board.assign(run_id=board["run_id"].str[:8])
        if "git_commit" in board.columns:
            shown["git_commit"] = board["git_commit"].astype(str).str.replace(r"^([0-9a-f]{10})[0-9a-f]+", r"\1",
                                                                               regex=True)
    show_table(shown, f"{experiment_name}: model runs across invocations, best {metric} first", digits=4)
    if diff.empty:
        out.print(f"no parameter shared by the best {min(top, len(board))} runs differs between them", highlight=False)
        return
    show_table(diff.astype(str), f"params that differ between the best {min(top, len(board))} runs "
               f"(params they all have)")


def evaluate(
    model_uri: Annotated[str, typer.Argument(help="A registered version (models:/spendlab-next-month@champion, "
                                             "models:/spendlab-next-month/3) or a model directory.")],
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML whose test protocol to re-run.")],
    tracking_uri: TrackingOpt = None,
) -> None:
    """Re-run the experiment's test origins with the version's recorded candidate.

    Prints the recorded and the reproduced test RMSE. Exit 5 when they differ by more than 1e-6.
    """
    from spendlab.jobs.evaluate import TOLERANCE, evaluate_model  # defer: mlflow, sklearn, sqlglot
    ev = evaluate_model(model_uri, experiment, tracking_uri=resolve_tracking_uri(tracking_uri))
    out.print(f"{escape(model_uri)} (version {ev.version}, {ev.model_key}): recorded test RMSE "
              f"{ev.recorded_test_rmse:.9f}, reproduced {ev.test_rmse:.9f} (difference {ev.difference:.2e})",
              highlight=False)
    if not ev.reproduced:
        err.print(f"[bold red]error:[/] the test RMSE is not reproduced within {TOLERANCE:g}", highlight=False)
        raise typer.Exit(5)
