"""The ``spendlab`` command line: thin commands that load config, call pure functions, write outputs.

Every error the user can act on is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spendlab.config import ReaderConfig, load_config, load_yaml, parse_config
from spendlab.datasets.deltas import generate_deltas
from spendlab.datasets.synth import synth_transactions
from spendlab.errors import RowError, SpendlabError
from spendlab.features import build_features_arrow
from spendlab.features.metadata import default_as_of, feature_metadata
from spendlab.io import Mode, load_transactions
from spendlab.io.builtin import BUILTINS, builtin_path
from spendlab.io.load import FORMATS, connect, validation_summary
from spendlab.io.rejects import write_rejects_csv
from spendlab.jobs.describe import run_describe
from spendlab.jobs.evaluate import TOLERANCE, evaluate_model
from spendlab.jobs.experiment import compare_runs, run_experiment
from spendlab.jobs.features import load_feature_config, write_features
from spendlab.jobs.pipeline import PipelineConfig, run_pipeline
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.reconcile import run_reconcile
from spendlab.jobs.score import score as run_score
from spendlab.jobs.tune import tune_experiment
from spendlab.spark import SparkConfig, session
from spendlab.spark.jobs import features_job, score_job
from spendlab.tracking.scorer import load_model_async

app = typer.Typer(
    name="spendlab",
    help="Per-user spend analytics and forecasting: describe, experiment, score, reconcile.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="Embedded datasets and seeded synthetic generators.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

out = Console()
err = Console(stderr=True)

InputArg = Annotated[str, typer.Argument(help="A file, directory, glob, or builtin:cdnow for the embedded CDNOW data.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"Input format: {'|'.join(FORMATS)}.")]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML config; its `reader:` section sets the reader policy (see configs/)."),
]
ModeOpt = Annotated[
    Mode,
    typer.Option("--mode", "-m", help="strict: stop at the first bad row; collect: list all, then fail; "
                 "quarantine: write rejects aside and go on."),
]


def reader_config(path: Path | None) -> ReaderConfig:
    """The ``reader:`` section of a config file (defaults when no file is given)."""
    if path is None:
        return ReaderConfig()
    data = load_yaml(path)
    return parse_config(ReaderConfig, data.get("reader", {}) or {}, f"{path} (reader)")


TrackingOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (one machine) or spark (pyspark; a cluster or local).")]
SparkMasterOpt = Annotated[Optional[str], typer.Option(
    "--spark-master", help="Spark master URL for --engine spark (default: the config's spark.master, local[2]).")]


def spark_session(path: Path | None, master: str | None):  # noqa: ANN201
    """A Spark session from the ``spark:`` section of a config file (see docs/scale-out.md)."""

    section = (load_yaml(path).get("spark") or {}) if path is not None else {}
    return session(master=master, config=parse_config(SparkConfig, section, f"{path} (spark)"))


def check_engine(engine: str, format: str) -> None:
    if engine not in ("duckdb", "spark"):
        raise SpendlabError(f"--engine must be duckdb or spark, got {engine!r}")
    if engine == "spark" and format != "generic":
        raise SpendlabError(f"--engine spark reads canonical Parquet (--format generic), got --format {format}")


@app.command()
def pipeline(
    config: Annotated[Path, typer.Option("--config", "-c", help="Pipeline YAML.")] = Path("configs/pipeline.yaml"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """The main job: validate -> describe -> experiment -> tune -> promote -> score, on one dataset."""

    cfg = load_config(PipelineConfig, config)
    uri = _tracking_uri(tracking_uri or cfg.tracking_uri)
    if uri != cfg.tracking_uri:
        cfg = cfg.model_copy(update={"tracking_uri": uri})
    run_pipeline(cfg, console=err)


@app.command()
def validate(
    input: InputArg,
    format: FormatOpt = "generic",
    mode: ModeOpt = Mode.QUARANTINE,
    rejects: Annotated[Optional[Path], typer.Option(help="Write rejected rows to this CSV "
                                                    "(file, line, column, error_type, raw, message).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Validate INPUT: per-file rows in / accepted / rejected by error type, users and total spend.

    Exit 0 in quarantine mode even with rejects; non-zero when strict or collect mode finds a bad
    row or the input cannot be read.
    """

    cfg = reader_config(config)
    try:
        tx = load_transactions(input, format, config=cfg, mode=mode)
    except RowError as exc:  # strict/collect: still write the rejects found, then fail
        found = getattr(exc, "report", None)
        if rejects is not None and found is not None:
            write_rejects_csv(found.rejects, rejects)
        raise
    if rejects is not None:
        write_rejects_csv(tx.report.rejects, rejects)
    summary = validation_summary(tx)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=escape(f"validate {input} ({format}, {mode.value})"))
    for col in ("file", "rows_in", "accepted", "rejected", "errors", "warnings"):
        table.add_column(col, justify="right" if col in {"rows_in", "accepted", "rejected"} else "left")
    for f in tx.report.files:
        table.add_row(escape(Path(f.file).name), str(f.rows_in), str(f.accepted), str(f.rejected),
                      ", ".join(f"{k}={v}" for k, v in sorted(f.errors.items())) or "-",
                      ", ".join(f"{k}={v}" for k, v in sorted(f.warnings.items())) or "-")
    out.print(table)
    out.print(f"users: {summary['users']:,}   total spend: {summary['total_spend']:,.2f}   "
              f"refunds: {summary['refunds']:,} ({summary['refund_amount']:,.2f})")
    if rejects is not None:
        out.print(f"rejects written to {escape(str(rejects))}")


@app.command()
def describe(
    input: InputArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (written atomically, replaced as a whole).")],
    format: FormatOpt = "generic",
    config: ConfigOpt = None,
    mode: ModeOpt = Mode.QUARANTINE,
    country: Annotated[str, typer.Option(help="Holiday calendar (holidays country code) for the daily markers.")] = "US",
    top_n: Annotated[int, typer.Option("--top-n", min=1, help="Rows per table in report.html; size of top lists.")] = 20,
    memory_limit: Annotated[Optional[str], typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
) -> None:
    """Describe INPUT: transaction values, monthly spend, days with spend per week, insights, report.html."""

    cfg = reader_config(config)
    tx = load_transactions(input, format, config=cfg, mode=mode)
    result = run_describe(tx, out_dir, country=country, top_n=top_n, net_refunds=cfg.refunds == "net",
                          memory_limit=memory_limit)
    s = result["summary"]
    out.print(f"{s['n_transactions']:,} transactions, {s['n_users']:,} users, gross spend {s['total_spend']:,.2f}, "
              f"average transaction {s['avg_transaction_value'] or 0:,.2f}; refunds {s['n_refunds']:,} "
              f"({s['refund_amount']:,.2f}); rejected rows {s['rows_rejected']:,}")
    out.print(f"report: {escape(str(Path(out_dir) / 'report.html'))}")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the embedded datasets and where they are read from."""

    table = Table(title="embedded datasets")
    for col in ("input", "format", "description", "path"):
        table.add_column(col)
    for name, (_, _, fmt, desc) in BUILTINS.items():
        try:
            where = str(builtin_path(name))
        except SpendlabError as exc:
            where = f"unavailable: {exc}"
        table.add_row(f"builtin:{name}", fmt, desc, where)
    out.print(table)


@datasets_app.command("synth")
def datasets_synth(
    out_path: Annotated[Path, typer.Option("--out", help="Output file (.parquet, .csv) or directory.")],
    users: Annotated[int, typer.Option(help="Number of users.")] = 10_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 18,
    format: Annotated[str, typer.Option("--format", help="parquet (canonical columns) or millions (CSV).")] = "parquet",
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = "2023-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 0,
    chunk_users: Annotated[int, typer.Option(help="Users generated per chunk (bounds memory).")] = 50_000,
) -> None:
    """Write a seeded synthetic transaction set with heterogeneous, seasonal behaviour."""

    stats = synth_transactions(out_path, users=users, months=months, fmt=format, start=start, seed=seed,
                               chunk_users=chunk_users, progress=True)
    err.print(f"wrote {stats['transactions']:,} transactions for {stats['users']:,} users "
              f"to {escape(str(out_path))}")


@app.command()
def features(
    input: InputArg,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file (one row per user).")],
    format: FormatOpt = "generic",
    freq: Annotated[str, typer.Option("--freq", help="month (calendar months) or week (ISO weeks).")] = "month",
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Cutoff day YYYY-MM-DD, inclusive (default: end of the latest complete period).")] = None,
    mode: ModeOpt = Mode.QUARANTINE,
    config: ConfigOpt = None,
    threads: Annotated[int, typer.Option(help="DuckDB threads.")] = 2,
    memory_limit: Annotated[Optional[str], typer.Option(
        "--memory-limit", help="DuckDB memory limit (beyond it DuckDB spills to temp files); 'none' = DuckDB's "
        "default of 80% of RAM.")] = "2GB",
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
) -> None:
    """Write leakage-safe as-of features of INPUT: user_id plus the features of configs/features.yaml.

    Only transactions on or before the as-of day are read. The Parquet schema metadata holds
    spendlab.config_hash, spendlab.freq and spendlab.as_of.
    """
    import datetime as dt


    if freq not in ("month", "week"):
        raise SpendlabError(f"--freq must be month or week, got {freq!r}")
    try:
        cutoff = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise SpendlabError(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}") from None
    feature_cfg = load_feature_config(config)
    check_engine(engine, format)
    if engine == "spark":  # canonical Parquet in, a Parquet folder out (docs/scale-out.md)

        job = features_job(spark_session(config, spark_master), input, out_path, freq=freq,  # type: ignore[arg-type]
                           as_of=cutoff, config=feature_cfg, reader=reader_config(config), mode=mode)
        err.print(f"wrote features of {job.rows_out:,} users ({freq}, as of {job.as_of}, Spark) to "
                  f"{escape(str(out_path))}/")
        return
    tx = load_transactions(input, format, config=reader_config(config), mode=mode)
    con = connect(threads=threads, memory_limit=None if memory_limit in (None, "none") else memory_limit)
    tx.register(con)
    cutoff = cutoff or default_as_of(con, freq)  # type: ignore[arg-type]
    table = build_features_arrow(con, freq=freq, as_of=cutoff, config=feature_cfg)  # type: ignore[arg-type]
    meta = feature_metadata(feature_cfg, freq=freq, as_of=cutoff, input=str(input),  # type: ignore[arg-type]
                            rows_accepted=str(tx.report.accepted), rows_rejected=str(tx.report.rejected))
    write_features(table, out_path, meta)
    err.print(f"wrote features of {table.num_rows:,} users ({table.num_columns - 1} features, {freq}, "
              f"as of {cutoff}) to {escape(str(out_path))}")


@app.command()
def reconcile(
    deltas: Annotated[str, typer.Option("--deltas", help="Glob or folder of delta CSVs (natural order; files not "
                                        "named like delta<N>.csv are listed as ignored).")],
    platform: Annotated[Path, typer.Option("--platform", help="The platform's user-summary CSV.")],
    source: Annotated[Path, typer.Option("--source", help="The client's user-summary export CSV.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    fail_on_diff: Annotated[bool, typer.Option("--fail-on-diff", help="Exit 3 when any user differs.")] = False,
    tolerance: Annotated[float, typer.Option(help="Absolute tolerance for money columns.")] = 0.005,
    pattern: Annotated[Optional[str], typer.Option(help="Regex a delta file name must match.")] = None,
    contiguous_batches: Annotated[bool, typer.Option(help="Report gaps in the batch id sequence.")] = False,
    memory_limit: Annotated[Optional[str], typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
) -> None:
    """Rebuild the user summary from the deltas, compare both summaries, and explain every difference.

    Writes summary.json, user_diffs.csv, user_causes.csv, rejects.csv, delta_flags.csv, report.md and
    report.html. Exit 0 when it ran; with --fail-on-diff, exit 3 when any difference exists.
    """

    s = run_reconcile(deltas, platform, source, out_dir, tolerance=tolerance, name_pattern=pattern,
                      expect_contiguous_batches=contiguous_batches, memory_limit=memory_limit)
    out.print(f"source {s['source_total']:,.2f}  platform {s['platform_total']:,.2f}  gap {s['gap']:,.2f}  "
              f"explained {s['explained']:,.2f}  unexplained {s['unexplained']:,.2f} "
              f"({s['users']['unexplained']} users)", highlight=False, soft_wrap=True)
    for c in s["causes"]:
        out.print(f"  {c['cause']:<26} {c['side']:<8} {escape(c['file'] or '-'):<20} {c['users']:>8} users "
                  f"{c['amount']:>16,.2f}", highlight=False, soft_wrap=True)
    out.print(f"outputs in {escape(str(out_dir))}", highlight=False)
    if fail_on_diff and s["users"]["differing"]:
        raise typer.Exit(3)


@datasets_app.command("deltas")
def datasets_deltas(
    out_path: Annotated[Path, typer.Option("--out", help="Output directory: inputs/ and answer_key.json.")],
    scenario: Annotated[str, typer.Option(help="clean|missing_file|stale|tie|duplicate|corrupt|missing_user; "
                                          "combine faults with '+', e.g. missing_file+corrupt.")] = "clean",
    users: Annotated[int, typer.Option(help="Number of users.")] = 1000,
    files: Annotated[int, typer.Option(help="Number of delta files.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 0,
    fault_share: Annotated[float, typer.Option(help="Share of users each row-level fault touches.")] = 0.03,
    update_share: Annotated[float, typer.Option(help="Share of users each later delta updates.")] = 0.4,
) -> None:
    """Write seeded delta files, both summaries and an answer key (kept apart from the inputs)."""

    key = generate_deltas(out_path, scenario=scenario.split("+"), users=users, files=files, seed=seed,
                          fault_share=fault_share, update_share=update_share)
    err.print(f"wrote {files} delta file(s) and summaries to {out_path / 'inputs'}; answer key "
              f"{out_path / 'answer_key.json'} (gap {key['gap']:,})", highlight=False)


@app.command()
def tune(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (experiments/<name>.yaml).")],
    model: Annotated[str, typer.Option("--model", help="Registry key with a search space (e.g. lightgbm).")],
    trials: Annotated[int, typer.Option("--trials", help="Target number of finished trials in the study.")] = 20,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Stop starting new trials after S seconds.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Trials run at once on threads. Past the first 3 "
                                      "trials, more than 1 makes the sequence of trials depend on which "
                                      "finishes first.")] = 1,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Tune a model with Optuna on the experiment's validation origins (resumes an interrupted study).

    The best parameters go to configs/tuned/<experiment>-<model>.yaml, which later experiment runs
    pick up. The study is stored in mlruns/optuna.db; each trial is a nested MLflow run.
    """
    import os


    # Heartbeat of running trials (seconds) and the grace after which a silent one is failed and
    # retried; the environment can shorten them (tests kill studies on purpose).
    heartbeat = (int(os.environ.get("SPENDLAB_OPTUNA_HEARTBEAT", "5")), int(os.environ.get("SPENDLAB_OPTUNA_GRACE", "15")))
    result = tune_experiment(experiment, model_key=model, n_trials=trials, timeout=timeout, heartbeat=heartbeat,
                             jobs=jobs, tracking_uri=_tracking_uri(tracking_uri))
    out.print(f"study {escape(result.study_name)}: {result.n_complete} complete, {result.n_pruned} pruned; "
              f"best validation RMSE {result.best_value:.4f} with {escape(str(result.best_params))}")
    out.print(f"best parameters written to {escape(str(result.params_path))}")


@app.command()
def promote(
    experiment: Annotated[str, typer.Argument(help="Experiment name (or path to its YAML in experiments/).")],
    force: Annotated[bool, typer.Option(help="Move the alias even when the candidate does not win.")] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Register the experiment's tested champion (its candidate.json) as spendlab-next-month; move
    @champion only if it wins.

    Exit 0 when the candidate became (or already is) the champion; exit 4 when it does not beat the
    current champion on the same test protocol (the alias stays, the version's tags say why).
    """

    outcome = promote_experiment(experiment, force=force, tracking_uri=_tracking_uri(tracking_uri))
    verb = "promoted" if outcome.promoted else "not promoted"
    out.print(f"{verb}: spendlab-next-month version {outcome.version} ({escape(outcome.reason)})")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
def score(
    input: InputArg,
    out_path: Annotated[Path, typer.Option("--out", help="Output Parquet file (written atomically).")],
    format: FormatOpt = "generic",
    model: Annotated[str, typer.Option("--model", help="MLflow model URI.")] = "models:/spendlab-next-month@champion",
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Cutoff date (YYYY-MM-DD); default: end of the "
                                                  "latest complete calendar month in the data.")] = None,
    chunk_users: Annotated[int, typer.Option(help="Users per scoring chunk (bounds memory).")] = 250_000,
    config: ConfigOpt = None,
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Score every user's next-period spend: expected value, P(spend), median and 80% interval of the
    realized amount; one row per user seen by the cutoff. --model: a models:/ URI or a model directory
    (verified before anything in it is loaded)."""
    import datetime as dt


    cutoff = None
    if as_of is not None:
        try:
            cutoff = dt.date.fromisoformat(as_of)
        except ValueError:
            raise SpendlabError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    check_engine(engine, format)
    if engine == "spark":  # the model as a Spark UDF; a Parquet folder out (docs/scale-out.md)

        job = score_job(spark_session(config, spark_master), input, out_path, model_uri=model, as_of=cutoff,
                        reader=reader_config(config), tracking_uri=_tracking_uri(tracking_uri))
        out.print(f"scored {job.rows_out:,} users as of {job.as_of} with {escape(model)} on Spark; "
                  f"wrote {escape(str(out_path))}/")
        return
    loading = load_model_async(model, tracking_uri=_tracking_uri(tracking_uri))  # loads while the input is read
    tx = load_transactions(input, format, config=reader_config(config))
    result = run_score(tx, out=out_path, model=loading, as_of=cutoff, chunk_users=chunk_users)
    out.print(f"scored {result.rows_out:,} users (= {result.users_in:,} users in) as of {result.as_of} "
              f"for {result.target_period} with {escape(result.model_uri)} v{result.model_version}: "
              f"total predicted {result.total_prediction:,.2f}; basis {result.by_basis}; "
              f"wrote {escape(str(result.out))}")


experiment_app = typer.Typer(help="Forecasting experiments: rolling-origin backtests tracked in MLflow.",
                               no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


def _tracking_uri(value: str | None) -> str | None:
    """--tracking-uri, else $MLFLOW_TRACKING_URI (or the older $SPENDLAB_TRACKING_URI), else None = the
    default store sqlite:///mlruns/mlflow.db. The environment is read here only, never in the library."""
    import os

    return value or os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("SPENDLAB_TRACKING_URI") or None


@experiment_app.command("run")
def experiment_run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (experiments/<name>.yaml).")],
    models: Annotated[Optional[str], typer.Option("--models", help="Comma-separated registry keys "
                                                  "(default: the experiment's models).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for leaderboard.csv and predictions.parquet.")]
    = Path("outputs/experiment"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Backtest the experiment's models on rolling origins; print the leaderboard, log to MLflow."""

    keys = [m.strip() for m in models.split(",") if m.strip()] if models else None
    result = run_experiment(experiment, models=keys, out_dir=out_dir, tracking_uri=_tracking_uri(tracking_uri),
                            progress=lambda msg: err.print(msg, highlight=False))
    board = result.leaderboard
    table = Table(title=f"{result.name}: mean over test origins (champion chosen on validation)")
    for col in board.columns:
        table.add_column(col, justify="left" if col in {"model", "champion", "tuned"} else "right")
    for _, row in board.iterrows():
        cells = [str(row[c]) if isinstance(row[c], (str, bool)) else f"{row[c]:.3f}" for c in board.columns]
        table.add_row(*cells, style="bold green" if row["champion"] else None)
    out.print(table, width=max(out.width, 150))  # never truncate model names or figures in a log
    out.print(f"champion: {result.champion}   MLflow parent run: {result.parent_run_id}")
    out.print(f"wrote {escape(str(result.paths['leaderboard']))} and {escape(str(result.paths['predictions']))}")


@app.command()
def compare(
    experiment_name: Annotated[str, typer.Argument(help="Experiment name (the YAML's name:).")],
    top: Annotated[int, typer.Option(help="How many best runs to diff params between.")] = 3,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Leaderboard of every model run of EXPERIMENT_NAME across invocations, and the params that differ
    between the best runs (ranked by mean validation RMSE)."""

    board, diff = compare_runs(experiment_name, tracking_uri=_tracking_uri(tracking_uri), top=top)
    table = Table(title=f"{escape(experiment_name)}: model runs across invocations (best validation RMSE first)")
    for col in board.columns:
        table.add_column(col, justify="right" if board[col].dtype.kind in "fi" else "left")
    for _, row in board.iterrows():
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row])
    out.print(table, width=max(out.width, 180))
    if diff.empty:
        out.print(f"no parameter differs between the best {top} runs")
        return
    dt_ = Table(title=f"params that differ between the best {min(top, len(board))} runs")
    for col in diff.columns:
        dt_.add_column(escape(str(col)))
    for _, row in diff.iterrows():
        dt_.add_row(*[escape(str(v)) for v in row])
    out.print(dt_)


@app.command()
def evaluate(
    model_uri: Annotated[str, typer.Argument(help="A registered version (models:/spendlab-next-month@champion, "
                                             "models:/spendlab-next-month/3) or a model directory.")],
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML whose test protocol to re-run.")],
    tracking_uri: TrackingOpt = None,
) -> None:
    """Re-run the experiment's test origins with the version's recorded candidate; print the recorded and
    the reproduced test RMSE. Exit 5 when they differ by more than 1e-6."""

    ev = evaluate_model(model_uri, experiment, tracking_uri=_tracking_uri(tracking_uri))
    out.print(f"{escape(model_uri)} (version {ev.version}, {ev.model_key}): recorded test RMSE "
              f"{ev.recorded_test_rmse:.9f}, reproduced {ev.test_rmse:.9f} (difference {ev.difference:.2e})",
              highlight=False)
    if not ev.reproduced:
        err.print(f"[bold red]error:[/] the test RMSE is not reproduced within {TOLERANCE:g}", highlight=False)
        raise typer.Exit(5)


def main() -> None:
    """Console entry point: one clear line and a non-zero exit for every expected error."""
    try:
        rv = app(standalone_mode=False)
    except SpendlabError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":  # pragma: no cover
    main()
