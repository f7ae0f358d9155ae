"""Data commands: ``validate``, ``describe``, ``features`` and the ``datasets`` group."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from spendlab.cli.common import (
    ConfigOpt,
    EngineOpt,
    FormatOpt,
    InputArg,
    ModeOpt,
    SparkMasterOpt,
    check_engine,
    err,
    nothing,
    out,
    reader_config,
    spark_session,
    users_config,
)
from spendlab.describe.formats import check_currency
from spendlab.errors import RowError, SpendlabError
from spendlab.features.config import check_covariates
from spendlab.features.metadata import feature_metadata
from spendlab.io import Mode, load_transactions
from spendlab.io.builtin import BUILTINS, builtin_path
from spendlab.io.load import date_span, validation_summary
from spendlab.io.rejects import write_rejects_csv
from spendlab.io.safe_out import check_output, output_dir
from spendlab.settings import DEFAULT_MEMORY_LIMIT, check_as_of, check_country, parse_memory_limit


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
    from spendlab.jobs.covariates import with_users  # defer: mlflow, sklearn, sqlglot
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
    tx = with_users(tx, users_config(config), mode=mode)  # the config's user table, if it has one
    if rejects is not None:
        write_rejects_csv([*tx.report.rejects, *(tx.users.rejects if tx.users else [])], rejects)
    summary = validation_summary(tx)
    if tx.users is not None:
        summary["user_table"] = tx.users.as_dict()
    if tx.report.lookups:
        summary["lookups"] = tx.report.lookups
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
    if tx.users is not None:
        u = tx.users
        out.print(f"user table {escape(Path(u.report.file).name)}: rows in {u.report.rows_in:,}, accepted "
                  f"{u.report.accepted:,}, rejected {u.report.rejected:,}; keys no transaction uses: "
                  f"{u.unused_keys:,}; users without a row: {u.missing_users:,}")
    for name, lk in tx.report.lookups.items():
        out.print(f"lookup {escape(name)} ({escape(Path(str(lk['input'])).name)}): {lk['keys']:,} keys; keys no line "
                  f"uses: {lk['unused_keys']:,}; lines whose key it lacks (attributes missing): {lk['unmatched_lines']:,}")
    excluded = [f"{f.file}: {f.excluded:,} row(s) excluded by reader.generic include/exclude "
                f"({', '.join(f'{k}={v}' for k, v in sorted(f.exclusions.items()))})" for f in tx.report.files if f.excluded]
    for note in [*tx.report.skipped, *tx.report.duplicates, *excluded]:  # inputs not read, read once, rows dropped
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if rejects is not None:
        out.print(f"rejects written to {escape(str(rejects))}")


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
    tables: Annotated[Literal["csv", "parquet"], typer.Option(
        "--tables", help="Format of the per-user tables: csv (default) or parquet (full precision, "
        "several times smaller and faster to write at millions of users).")] = "csv",
) -> None:
    """Describe INPUT: transaction values, monthly spend, days with spend per week, insights, report.html."""
    from spendlab import api  # defer: mlflow, sklearn, sqlglot
    check_country(country), parse_memory_limit(memory_limit), check_currency(currency)  # before any data is read
    check_output(out_dir, kind="dir", inputs=[input, config])
    with err.status("describing: tables, figures, report", spinner="dots") if err.is_terminal else nothing():
        result = api.describe_transactions(input, out=out_dir, format=format, reader=reader_config(config), mode=mode,
                              country=country, top_n=top_n, currency=currency, per_user_tables=False,
                              memory_limit=None if memory_limit in (None, "none") else memory_limit, tables=tables)
    s = result.summary
    out.print(f"{s['n_transactions']:,} transactions, {s['n_users']:,} users, gross spend {s['total_spend']:,.2f}, "
              f"average transaction {s['avg_transaction_value'] or 0:,.2f}; refunds {s['n_refunds']:,} "
              f"({s['refund_amount']:,.2f}); rejected rows {s['rows_rejected']:,}", highlight=False, soft_wrap=True)
    out.print(f"report: {escape(str(Path(out_dir) / 'report.html'))}", highlight=False, soft_wrap=True)


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


def datasets_synth(
    out_path: Annotated[Path, typer.Option("--out", help="Output file (.parquet, .csv) or directory.")],
    users: Annotated[int, typer.Option(help="Number of users.")] = 10_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 18,
    format: Annotated[str, typer.Option("--format", help="parquet (canonical columns) or millions (CSV).")] = "parquet",
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = "2023-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 0,
    chunk_users: Annotated[int, typer.Option(help="Users generated per chunk (bounds memory).")] = 50_000,
    profile: Annotated[str, typer.Option(help="Behaviour: default (retail), grocery (about weekly, low churn), "
                                              "occasional (BTYD buyers), habit (routine households) or mixed "
                                              "(habit + occasional).")]
    = "default",
    oracle: Annotated[bool, typer.Option("--oracle", help="Also write oracle.parquet beside --out: each user's "
                                         "true expected spend per period, for the data and 3 periods more.")] = False,
    freq: Annotated[str, typer.Option("--freq", help="The oracle's periods: month or week (ISO weeks).")] = "month",
    shift: Annotated[str | None, typer.Option("--shift", help="A change of behaviour from a month on: "
                                              "MONTH:rate=R,basket=B (MONTH 1-based or YYYY-MM), e.g. "
                                              "18:rate=0.5.")] = None,
) -> None:
    """Write a seeded synthetic transaction set with heterogeneous, seasonal behaviour."""
    from spendlab.jobs.datasets import synth_transactions  # defer: mlflow, sklearn, sqlglot
    check_output(out_path, kind="file")
    stats = synth_transactions(out_path, users=users, months=months, fmt=format, start=start, seed=seed,
                               chunk_users=chunk_users, profile=profile, oracle=oracle, freq=freq, progress=True,
                               shift=shift)
    err.print(f"wrote {stats['transactions']:,} transactions for {stats['users']:,} users "
              f"to {escape(str(out_path))}")
    if oracle:
        err.print(f"wrote {stats['oracle_rows']:,} oracle rows to {escape(str(out_path.parent / 'oracle.parquet'))}")


def _feature_options(freq: str, as_of: str | None, horizon: int) -> dt.date | None:
    """Check ``spendlab features``' --freq and --horizon; return --as-of as a date (None: the default)."""
    if freq not in ("month", "week"):
        raise SpendlabError(f"--freq must be month or week, got {freq!r}")
    if horizon < 1:
        raise SpendlabError(f"--horizon must be a whole number of periods >= 1, got {horizon}")
    try:
        return dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise SpendlabError(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}") from None


def features(
    input: InputArg,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file (one row per user).")],
    format: FormatOpt = "generic",
    freq: Annotated[str, typer.Option("--freq", help="month (calendar months) or week (ISO weeks).")] = "month",
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Cutoff day YYYY-MM-DD, inclusive (default: end of the latest complete period).")] = None,
    horizon: Annotated[int, typer.Option(
        "--horizon", help="Periods the target covers after the cutoff (as the experiment's `horizon`): sets the "
        "target_* calendar covariates (days, holidays, events of the whole target window).")] = 1,
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
    spendlab.config_hash, spendlab.freq, spendlab.as_of and spendlab.horizon.
    """
    from spendlab.jobs.covariates import with_users  # defer: mlflow, sklearn, sqlglot
    from spendlab.jobs.features import (  # defer: mlflow, sklearn, sqlglot
        features_table,
        load_feature_config,
        write_features,
    )

    cutoff = _feature_options(freq, as_of, horizon)
    parse_memory_limit(memory_limit)
    check_engine(engine, format)
    check_output(out_path, kind="dir" if engine == "spark" else "file", inputs=[input, config])
    feature_cfg = load_feature_config(config)
    check_covariates(feature_cfg, reader_config(config), fmt=format, users=users_config(config),
                     where=str(config) if config is not None else "the feature set")
    if engine == "spark":  # canonical Parquet in, a Parquet folder out (docs/scale-out.md)
        from spendlab.spark.jobs import features_job  # defer: mlflow, pyspark, sqlglot (Spark engine only)

        job = features_job(spark_session(config, spark_master), input, out_path, freq=freq,  # type: ignore[arg-type]
                           as_of=cutoff, config=feature_cfg, reader=reader_config(config), mode=mode,
                           horizon=horizon)
        err.print(f"wrote features of {job.rows_out:,} users ({freq}, as of {job.as_of}, Spark) to "
                  f"{escape(str(out_path))}/")
        return
    tx = with_users(load_transactions(input, format, config=reader_config(config), mode=mode), users_config(config))
    for warning in check_as_of(cutoff, *date_span(tx), freq=freq) if cutoff else []:
        err.print(f"warning: {escape(warning)}", highlight=False, soft_wrap=True)
    table, cutoff = features_table(tx, freq=freq, as_of=cutoff, config=feature_cfg, threads=threads,  # type: ignore[arg-type]
                                   memory_limit=None if memory_limit in (None, "none") else memory_limit,
                                   horizon=horizon)
    meta = feature_metadata(feature_cfg, freq=freq, as_of=cutoff, input=str(input), horizon=str(horizon),  # type: ignore[arg-type]
                            rows_accepted=str(tx.report.accepted), rows_rejected=str(tx.report.rejected))
    write_features(table, out_path, meta)
    err.print(f"wrote features of {table.num_rows:,} users ({table.num_columns - 1} features, {freq}, "
              f"as of {cutoff}) to {escape(str(out_path))}")


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
    from spendlab.jobs.datasets import generate_deltas  # defer: mlflow, sklearn, sqlglot
    with output_dir(out_path):
        key = generate_deltas(out_path, scenario=scenario.split("+"), users=users, files=files, seed=seed,
                              fault_share=fault_share, update_share=update_share)
    err.print(f"wrote {files} delta file(s) and summaries to {out_path / 'inputs'}; answer key "
              f"{out_path / 'answer_key.json'} (gap {key['gap']:,})", highlight=False)
