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
from rich.table import Table

from spendlab.config import ReaderConfig, load_config, load_yaml, parse_config
from spendlab.errors import RowError, SpendlabError
from spendlab.io import Mode, load_transactions
from spendlab.io.load import FORMATS, validation_summary

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


@app.command()
def pipeline(
    config: Annotated[Path, typer.Option("--config", "-c", help="Pipeline YAML.")] = Path("configs/pipeline.yaml"),
) -> None:
    """The main job: validate -> describe -> experiment -> tune -> promote -> score, on one dataset."""
    from spendlab.pipeline import PipelineConfig, run_pipeline

    cfg = load_config(PipelineConfig, config if config.exists() or str(config) != "configs/pipeline.yaml" else None)
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
    from spendlab.io.rejects import write_rejects_csv

    cfg = reader_config(config)
    try:
        tx = load_transactions(input, format, config=cfg, mode=mode)
    except RowError:
        raise
    if rejects is not None:
        write_rejects_csv(tx.report.rejects, rejects)
    summary = validation_summary(tx)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"validate {input} ({format}, {mode.value})")
    for col in ("file", "rows_in", "accepted", "rejected", "errors", "warnings"):
        table.add_column(col, justify="right" if col in {"rows_in", "accepted", "rejected"} else "left")
    for f in tx.report.files:
        table.add_row(Path(f.file).name, str(f.rows_in), str(f.accepted), str(f.rejected),
                      ", ".join(f"{k}={v}" for k, v in sorted(f.errors.items())) or "-",
                      ", ".join(f"{k}={v}" for k, v in sorted(f.warnings.items())) or "-")
    out.print(table)
    out.print(f"users: {summary['users']:,}   total spend: {summary['total_spend']:,.2f}   "
              f"refunds: {summary['refunds']:,} ({summary['refund_amount']:,.2f})")
    if rejects is not None:
        out.print(f"rejects written to {rejects}")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the embedded datasets and where they are read from."""
    from spendlab.datasets import BUILTINS, builtin_path

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
    from spendlab.datasets import synth_transactions

    stats = synth_transactions(out_path, users=users, months=months, fmt=format, start=start, seed=seed,
                               chunk_users=chunk_users, progress=True)
    err.print(f"wrote {stats['transactions']:,} transactions for {stats['users']:,} users to {out_path}")


def main() -> None:
    """Console entry point: one clear line and a non-zero exit for every expected error."""
    try:
        rv = app(standalone_mode=False)
    except SpendlabError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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
