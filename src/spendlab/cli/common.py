"""What every command shares: the consoles, option types, progress and table display, config sections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spendlab.config import ReaderConfig, UserTableSpec, load_yaml, parse_config
from spendlab.errors import ConfigError, SpendlabError
from spendlab.io import Mode
from spendlab.io.load import FORMATS
from spendlab.settings import DEFAULT_HEARTBEAT
from spendlab.spark import SparkConfig, session

if TYPE_CHECKING:
    import pandas as pd


class UsageError(SpendlabError):
    """A command line that names no command, or a value the options cannot express."""


def require_command(ctx: typer.Context) -> None:
    """Print one line listing the commands when a group is called without one (not the whole help)."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        names = ", ".join(sorted(getattr(ctx.command, "commands", {}) or {}))
        raise UsageError(f"missing command for '{ctx.command_path}'; choose one of: {names} "
                         f"(try '{ctx.command_path} --help')")


out = Console()
err = Console(stderr=True)


def show_table(df: pd.DataFrame, title: str, *, highlight: str | None = None, digits: int = 3) -> None:
    """Print a table on stdout, never truncated.

    A rich table on a terminal (cells fold onto more lines rather than end in an ellipsis when the
    terminal is narrow); plain CSV under a ``# title`` line when stdout is a pipe or a file, so logs and
    ``| cat`` keep every column and every digit that matters.
    """
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
    """Yield a ``progress(msg)`` callback: a live bar on a terminal (stderr), plain lines in a log.

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
    """Return the ``reader:`` section of a config file (defaults when no file is given)."""
    if path is None:
        return ReaderConfig()
    data = load_yaml(path)
    return parse_config(ReaderConfig, data.get("reader", {}) or {}, f"{path} (reader)")


def users_config(path: Path | None) -> UserTableSpec | None:
    """Return the user attribute table of a config file, or None.

    A config's ``users:`` section, or an experiment YAML's ``dataset.users`` (so the experiment a model
    came from serves as ``--config`` when scoring it); a file with both is refused.
    """
    if path is None:
        return None
    data = load_yaml(path)
    dataset = data.get("dataset")
    nested = dataset.get("users") if isinstance(dataset, dict) else None
    if data.get("users") is not None and nested is not None:
        raise ConfigError(f"{path}: a user table in both users: and dataset.users; keep one")
    if nested is not None:
        return parse_config(UserTableSpec, nested, f"{path} (dataset.users)")
    section = data.get("users")
    return None if section is None else parse_config(UserTableSpec, section, f"{path} (users)")


TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).")]


EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (one machine) or spark (pyspark; a cluster or local).")]


SparkMasterOpt = Annotated[str | None, typer.Option(
    "--spark-master", help="Spark master URL for --engine spark (default: the config's spark.master, local[2]).")]


def spark_session(path: Path | None, master: str | None):
    """Start a Spark session from the ``spark:`` section of a config file (see docs/scale-out.md)."""
    section = (load_yaml(path).get("spark") or {}) if path is not None else {}
    return session(master=master, config=parse_config(SparkConfig, section, f"{path} (spark)"))


def check_engine(engine: str, format: str) -> None:
    """Refuse an unknown ``--engine``, and Spark on anything but canonical Parquet."""
    if engine not in ("duckdb", "spark"):
        raise SpendlabError(f"--engine must be duckdb or spark, got {engine!r}")
    if engine == "spark" and format != "generic":
        raise SpendlabError(f"--engine spark reads canonical Parquet (--format generic), got --format {format}")


def tracking_uri(value: str | None) -> str | None:
    """Resolve the tracking store of a command.

    --tracking-uri, else $MLFLOW_TRACKING_URI (or the older $SPENDLAB_TRACKING_URI), else None = the
    default store sqlite:///mlruns/mlflow.db. The environment is read here only, never in the library.
    """
    import os

    return value or os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("SPENDLAB_TRACKING_URI") or None


#: Seconds between a running trial's heartbeats, and after which a silent trial is failed and retried.
OPTUNA_HEARTBEAT = ("SPENDLAB_OPTUNA_HEARTBEAT", DEFAULT_HEARTBEAT[0])
OPTUNA_GRACE = ("SPENDLAB_OPTUNA_GRACE", DEFAULT_HEARTBEAT[1])


def optuna_heartbeat() -> tuple[int, int]:
    """Resolve the tuning study's trial heartbeat interval and grace period, in seconds.

    ``tune`` and the ``pipeline``'s tune stage both take them from here: $SPENDLAB_OPTUNA_HEARTBEAT
    (default 5) and $SPENDLAB_OPTUNA_GRACE (default 15), which the tests shorten because they kill
    studies on purpose and wait out the grace period.
    """
    import os

    values = []
    for name, default in (OPTUNA_HEARTBEAT, OPTUNA_GRACE):
        raw = os.environ.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"${name} must be a whole number of seconds, at least 1; got {raw!r}")
        values.append(value)
    return values[0], values[1]


@contextmanager
def nothing() -> Iterator[None]:
    """Do nothing (in place of a spinner when stderr is not a terminal)."""
    yield None
