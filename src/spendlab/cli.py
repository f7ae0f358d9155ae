"""The ``spendlab`` command line: thin commands that load config, call pure functions, write outputs.

Every error the user can act on is one line on stderr and a non-zero exit, never a traceback:
usage errors (unknown option, missing argument, bad value, no command) and refused outputs exit 2.
Every output is checked by :func:`spendlab.io.safe_out.check_output` before any work starts, so a
command never deletes or clobbers what spendlab did not write (docs/decisions.md, issue 15).
"""
# long: one thin typer command per user-facing command; their options and help text are the CLI's documentation and read best together

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spendlab import __version__, api
from spendlab.config import ReaderConfig, load_config, load_yaml, parse_config
from spendlab.dependencies import untested_dependencies_line
from spendlab.describe.formats import check_currency
from spendlab.errors import RowError, SpendlabError
from spendlab.features.metadata import feature_metadata
from spendlab.io import Mode, load_transactions
from spendlab.io.atomic import confined_path
from spendlab.io.builtin import BUILTINS, builtin_path
from spendlab.io.load import FORMATS, date_span, validation_summary
from spendlab.io.rejects import write_rejects_csv
from spendlab.io.safe_out import UnsafeOutputError, check_output, output_dir
from spendlab.jobs.compare import compare_runs
from spendlab.jobs.datasets import generate_deltas, synth_transactions
from spendlab.jobs.evaluate import TOLERANCE, evaluate_model
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.features import features_table, load_feature_config, write_features
from spendlab.jobs.pipeline import PipelineConfig, run_pipeline
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.score import score as run_score
from spendlab.jobs.tune import tune_experiment
from spendlab.settings import (
    DEFAULT_MEMORY_LIMIT,
    check_as_of,
    check_country,
    check_tolerance,
    compile_pattern,
    parse_memory_limit,
)
from spendlab.spark import SparkConfig, session
from spendlab.spark.jobs import features_job, score_job
from spendlab.tracking.scorer import load_model_async

if TYPE_CHECKING:
    import pandas as pd

class UsageError(SpendlabError):
    """A command line that names no command, or a value the options cannot express."""


def _require_command(ctx: typer.Context) -> None:
    """A group called without a command: one line listing the commands (not the whole help)."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        names = ", ".join(sorted(getattr(ctx.command, "commands", {}) or {}))
        raise UsageError(f"missing command for '{ctx.command_path}'; choose one of: {names} "
                         f"(try '{ctx.command_path} --help')")


def _version(value: bool) -> None:
    if value:
        print(f"spendlab {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    name="spendlab",
    help="Per-user spend analytics and forecasting: describe, experiment, score, reconcile.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Print the spendlab version and exit.")] = False,
) -> None:
    """Per-user spend analytics and forecasting: describe, experiment, score, reconcile."""
    _require_command(ctx)


datasets_app = typer.Typer(help="Embedded datasets and seeded synthetic generators.",
                           callback=_require_command, invoke_without_command=True)
app.add_typer(datasets_app, name="datasets")

out = Console()
err = Console(stderr=True)


def show_table(df: pd.DataFrame, title: str, *, highlight: str | None = None, digits: int = 3) -> None:
    """A table on stdout, never truncated: a rich table on a terminal (cells fold onto more lines
    rather than end in an ellipsis when the terminal is narrow); plain CSV under a ``# title`` line when stdout is a pipe or a
    file, so logs and ``| cat`` keep every column and every digit that matters."""
    if not out.is_terminal:
        typer.echo(f"# {title}")
        typer.echo(df.to_csv(index=False, float_format=f"%.{max(digits, 6)}g", lineterminator="\n"), nl=False)
        return
    table = Table(title=escape(title))
    for col in df.columns:
        table.add_column(escape(str(col)), justify="right" if df[col].dtype.kind in "fiu" else "left",
                         overflow="fold")
    rows = [[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    for row, model in zip(rows, df["model"] if "model" in df.columns else [None] * len(df), strict=True):
        table.add_row(*map(escape, row), style="bold green" if highlight is not None and model == highlight else None)
    out.print(table)  # rich cannot print wider than the terminal: a narrow one folds cells, never cuts them


@contextmanager
def progress_lines(label: str) -> Iterator[Callable[[str], None]]:
    """A ``progress(msg)`` callback: a live bar on a terminal (stderr), plain lines in a log.

    Messages of the form ``[i/n] ...`` move the bar to step i of n; every message is also printed
    above the bar, so the terminal keeps the same lines a log gets.
    """
    import re

    if not err.is_terminal:
        yield lambda msg: err.print(msg, markup=False, highlight=False, soft_wrap=True)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(escape(label)), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def say(msg: str) -> None:
            bar.console.print(msg, markup=False, highlight=False, soft_wrap=True)
            step = re.match(r"\[(\d+)/(\d+)\]\s*(.*)", msg)
            if step:
                bar.update(task, completed=int(step.group(1)) - 1, total=int(step.group(2)),
                           description=escape(step.group(3)[:60]))

        yield say

InputArg = Annotated[str, typer.Argument(help="A file, directory, glob, or builtin:cdnow for the embedded CDNOW data.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"Input format: {'|'.join(FORMATS)}.")]
ConfigOpt = Annotated[
    Path | None,
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


TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (one machine) or spark (pyspark; a cluster or local).")]
SparkMasterOpt = Annotated[str | None, typer.Option(
    "--spark-master", help="Spark master URL for --engine spark (default: the config's spark.master, local[2]).")]


def spark_session(path: Path | None, master: str | None):
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
    try:  # out_dir stays inside the project directory (the working directory)
        confined_path(Path.cwd(), str(cfg.out_dir))
    except SpendlabError as exc:
        raise UnsafeOutputError(f"{config}: out_dir: {exc}") from None
    with output_dir(cfg.out_dir, inputs=[config, cfg.experiment], option=f"{config}: out_dir"):
        run_pipeline(cfg, console=err)


@app.command()
def validate(
    input: InputArg,
    format: FormatOpt = "generic",
    mode: ModeOpt = Mode.QUARANTINE,
    rejects: Annotated[Path | None, typer.Option(help="Write rejected rows to this CSV "
                                                    "(file, line, column, error_type, raw, message).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Validate INPUT: per-file rows in / accepted / rejected by error type, users and total spend.

    Exit 0 in quarantine mode even with rejects; non-zero when strict or collect mode finds a bad
    row or the input cannot be read.
    """

    if rejects is not None:
        check_output(rejects, kind="file", inputs=[input, config], option="--rejects")
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
    excluded = [f"{f.file}: {f.excluded:,} row(s) excluded by reader.generic include/exclude "
                f"({', '.join(f'{k}={v}' for k, v in sorted(f.exclusions.items()))})" for f in tx.report.files if f.excluded]
    for note in [*tx.report.skipped, *tx.report.duplicates, *excluded]:  # inputs not read, read once, rows dropped
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
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
    memory_limit: Annotated[str | None, typer.Option(
        help="DuckDB memory limit, e.g. 4GB (beyond it DuckDB spills to a folder inside the output); "
        "'none' = DuckDB's default of 80% of RAM.")] = DEFAULT_MEMORY_LIMIT,
    currency: Annotated[str | None, typer.Option(
        "--currency", help="ISO 4217 code shown on money in report.html, e.g. USD ($) or EUR (default: none).")] = None,
) -> None:
    """Describe INPUT: transaction values, monthly spend, days with spend per week, insights, report.html."""

    check_country(country), parse_memory_limit(memory_limit), check_currency(currency)  # before any data is read
    check_output(out_dir, kind="dir", inputs=[input, config])
    with err.status("describing: tables, figures, report", spinner="dots") if err.is_terminal else _nothing():
        result = api.describe(input, out=out_dir, format=format, reader=reader_config(config), mode=mode,
                              country=country, top_n=top_n, currency=currency, per_user_tables=False,
                              memory_limit=None if memory_limit in (None, "none") else memory_limit)
    s = result.summary
    out.print(f"{s['n_transactions']:,} transactions, {s['n_users']:,} users, gross spend {s['total_spend']:,.2f}, "
              f"average transaction {s['avg_transaction_value'] or 0:,.2f}; refunds {s['n_refunds']:,} "
              f"({s['refund_amount']:,.2f}); rejected rows {s['rows_rejected']:,}", highlight=False, soft_wrap=True)
    out.print(f"report: {escape(str(Path(out_dir) / 'report.html'))}", highlight=False, soft_wrap=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


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
    profile: Annotated[str, typer.Option(help="Behaviour: default (retail) or grocery (about weekly, low churn).")]
    = "default",
    oracle: Annotated[bool, typer.Option("--oracle", help="Also write oracle.parquet beside --out: each user's "
                                         "true expected spend per period, for the data and 3 periods more.")] = False,
    freq: Annotated[str, typer.Option("--freq", help="The oracle's periods: month or week (ISO weeks).")] = "month",
) -> None:
    """Write a seeded synthetic transaction set with heterogeneous, seasonal behaviour."""

    check_output(out_path, kind="file")
    stats = synth_transactions(out_path, users=users, months=months, fmt=format, start=start, seed=seed,
                               chunk_users=chunk_users, profile=profile, oracle=oracle, freq=freq, progress=True)
    err.print(f"wrote {stats['transactions']:,} transactions for {stats['users']:,} users "
              f"to {escape(str(out_path))}")
    if oracle:
        err.print(f"wrote {stats['oracle_rows']:,} oracle rows to {escape(str(out_path.parent / 'oracle.parquet'))}")


@app.command()
def features(
    input: InputArg,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file (one row per user).")],
    format: FormatOpt = "generic",
    freq: Annotated[str, typer.Option("--freq", help="month (calendar months) or week (ISO weeks).")] = "month",
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Cutoff day YYYY-MM-DD, inclusive (default: end of the latest complete period).")] = None,
    mode: ModeOpt = Mode.QUARANTINE,
    config: ConfigOpt = None,
    threads: Annotated[int, typer.Option(help="DuckDB threads.")] = 2,
    memory_limit: Annotated[str | None, typer.Option(
        "--memory-limit", help="DuckDB memory limit (beyond it DuckDB spills to temp files); 'none' = DuckDB's "
        "default of 80% of RAM.")] = DEFAULT_MEMORY_LIMIT,
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
    parse_memory_limit(memory_limit)
    try:
        cutoff = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise SpendlabError(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}") from None
    check_engine(engine, format)
    check_output(out_path, kind="dir" if engine == "spark" else "file", inputs=[input, config])
    feature_cfg = load_feature_config(config)
    if engine == "spark":  # canonical Parquet in, a Parquet folder out (docs/scale-out.md)

        job = features_job(spark_session(config, spark_master), input, out_path, freq=freq,  # type: ignore[arg-type]
                           as_of=cutoff, config=feature_cfg, reader=reader_config(config), mode=mode)
        err.print(f"wrote features of {job.rows_out:,} users ({freq}, as of {job.as_of}, Spark) to "
                  f"{escape(str(out_path))}/")
        return
    tx = load_transactions(input, format, config=reader_config(config), mode=mode)
    for warning in check_as_of(cutoff, *date_span(tx), freq=freq) if cutoff else []:
        err.print(f"warning: {escape(warning)}", highlight=False, soft_wrap=True)
    table, cutoff = features_table(tx, freq=freq, as_of=cutoff, config=feature_cfg, threads=threads,  # type: ignore[arg-type]
                                   memory_limit=None if memory_limit in (None, "none") else memory_limit)
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
    pattern: Annotated[str | None, typer.Option(help="Regex a delta file name must match.")] = None,
    contiguous_batches: Annotated[bool, typer.Option(help="Report gaps in the batch id sequence.")] = False,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
) -> None:
    """Rebuild the user summary from the deltas, compare both summaries, and explain every difference.

    Writes summary.json, user_diffs.csv, user_causes.csv, rejects.csv, delta_flags.csv, report.md and
    report.html. Exit 0 when it ran; with --fail-on-diff, exit 3 when any difference exists.
    """

    check_tolerance(tolerance), compile_pattern(pattern), parse_memory_limit(memory_limit)
    check_output(out_dir, kind="dir", inputs=[deltas, platform, source])
    s = api.reconcile(deltas, platform=platform, source=source, out=out_dir, tolerance=tolerance, pattern=pattern,
                      contiguous_batches=contiguous_batches, memory_limit=memory_limit).summary
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

    with output_dir(out_path):
        key = generate_deltas(out_path, scenario=scenario.split("+"), users=users, files=files, seed=seed,
                              fault_share=fault_share, update_share=update_share)
    err.print(f"wrote {files} delta file(s) and summaries to {out_path / 'inputs'}; answer key "
              f"{out_path / 'answer_key.json'} (gap {key['gap']:,})", highlight=False)


@app.command()
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
    as_of: Annotated[str | None, typer.Option("--as-of", help="Cutoff date (YYYY-MM-DD); default: end of the "
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
    check_output(out_path, kind="dir" if engine == "spark" else "file", inputs=[input, config])
    if engine == "spark":  # the model as a Spark UDF; a Parquet folder out (docs/scale-out.md)

        job = score_job(spark_session(config, spark_master), input, out_path, model_uri=model, as_of=cutoff,
                        reader=reader_config(config), tracking_uri=_tracking_uri(tracking_uri))
        out.print(f"scored {job.rows_out:,} users as of {job.as_of} with {escape(model)} on Spark; "
                  f"wrote {escape(str(out_path))}/")
        return
    loading = load_model_async(model, tracking_uri=_tracking_uri(tracking_uri))  # loads while the input is read
    tx = load_transactions(input, format, config=reader_config(config))
    if cutoff:  # errors only here; the job itself warns (result.warnings)
        check_as_of(cutoff, *date_span(tx))
    result = run_score(tx, out=out_path, model=loading, as_of=cutoff, chunk_users=chunk_users,
                       progress=err.is_terminal)
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}", highlight=False, soft_wrap=True)
    basis = ", ".join(f"{n:,} {b}" for b, n in sorted(result.by_basis.items(), key=lambda kv: (-kv[1], kv[0])))
    out.print(f"scored {result.rows_out:,} users (= {result.users_in:,} users in) as of {result.as_of} "
              f"for {result.target_period} with {escape(result.model_uri)} v{result.model_version}: "
              f"total predicted {result.total_prediction:,.2f}; by basis: {basis or 'none'}; "
              f"wrote {escape(str(result.out))}", highlight=False, soft_wrap=True)


experiment_app = typer.Typer(help="Forecasting experiments: rolling-origin backtests tracked in MLflow.",
                             callback=_require_command, invoke_without_command=True)
app.add_typer(experiment_app, name="experiment")


def _tracking_uri(value: str | None) -> str | None:
    """--tracking-uri, else $MLFLOW_TRACKING_URI (or the older $SPENDLAB_TRACKING_URI), else None = the
    default store sqlite:///mlruns/mlflow.db. The environment is read here only, never in the library."""
    import os

    return value or os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("SPENDLAB_TRACKING_URI") or None


@experiment_app.command("run")
def experiment_run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (experiments/<name>.yaml).")],
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated registry keys "
                                                  "(default: the experiment's models).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for leaderboard.csv and predictions.parquet.")]
    = Path("outputs/experiment"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Backtest the experiment's models on rolling origins; print the leaderboard, log to MLflow."""

    check_output(out_dir, kind="dir", inputs=[experiment])  # created and marked by the job when it writes
    keys = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with progress_lines("experiment") as progress:
        result = run_experiment(experiment, models=keys, out_dir=out_dir, tracking_uri=_tracking_uri(tracking_uri),
                                progress=progress)
    show_table(result.leaderboard, f"{result.name}: mean over test origins (champion chosen on validation)",
               highlight=result.champion)
    out.print(f"champion: {escape(result.champion)}   MLflow parent run: {result.parent_run_id}",
              highlight=False, soft_wrap=True)
    written = [str(result.paths[k]) for k in ("leaderboard", "predictions", "report") if k in result.paths]
    out.print(f"wrote {escape(', '.join(written))}", highlight=False, soft_wrap=True)


@app.command()
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
    """Every model run of EXPERIMENT_NAME across invocations, best --metric first, and the params that
    differ between the best --top runs (only params those runs all have; tuning, trial and promotion
    runs are not model runs and are not listed)."""

    board, diff = compare_runs(experiment_name, tracking_uri=_tracking_uri(tracking_uri), top=top, metric=metric,
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_line(exc: BaseException) -> str:
    """One line for a click/typer usage error, from whichever copy of click raised it."""
    ctx = getattr(exc, "ctx", None)
    message = _one_line(exc.format_message())  # type: ignore[attr-defined]
    path = getattr(ctx, "command_path", None) or "spendlab"
    return f"{message} (try '{path} --help')"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one clear line and a non-zero exit for every expected error.

    Typer >= 0.22 raises its own vendored copy of click's exceptions, older typer raises click's;
    both are told apart by shape (``exit_code``, ``format_message``), not by class.
    """
    import os

    untested = untested_dependencies_line()
    if untested:
        err.print(escape(untested), highlight=False, soft_wrap=True)
    try:
        rv = app(args=argv, prog_name="spendlab", standalone_mode=False)
    except SpendlabError as exc:
        err.print(f"[bold red]error:[/] {escape(_one_line(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        kind = type(exc).__name__
        code = getattr(exc, "exit_code", None)
        if kind == "Exit" and isinstance(code, int):  # typer.Exit / click.exceptions.Exit
            sys.exit(code)
        if kind == "Abort":  # typer.Abort / click.exceptions.Abort (Ctrl-C or EOF at a prompt)
            err.print("aborted")
            sys.exit(130)
        if isinstance(code, int) and callable(getattr(exc, "format_message", None)):
            line = _usage_line(exc) if code == 2 else _one_line(exc.format_message())  # type: ignore[attr-defined]
            err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            sys.exit(code)
        if isinstance(exc, OSError):  # the file system refused: say which file and why
            where = f": {exc.filename}" if exc.filename else ""
            err.print(f"[bold red]error:[/] {escape(_one_line(f'{exc.strerror or exc}{where}'))}",
                      highlight=False, soft_wrap=True)
            sys.exit(1)
        if os.environ.get("SPENDLAB_TRACEBACK"):
            raise
        err.print(f"[bold red]internal error:[/] {escape(_one_line(f'{kind}: {exc}'))} (a bug in spendlab; "
                  "set SPENDLAB_TRACEBACK=1 to see where)", highlight=False, soft_wrap=True)
        sys.exit(1)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":  # pragma: no cover
    main()
