"""The ``spendlab`` command line: thin commands that load config, call the jobs, write outputs.

Every error the user can act on is one line on stderr and a non-zero exit, never a traceback:
usage errors (unknown option, missing argument, bad value, no command) and refused outputs exit 2.
Every output is checked by :func:`spendlab.io.safe_out.check_output` before any work starts, so a
command never deletes or clobbers what spendlab did not write.

The commands live by group in :mod:`spendlab.cli.data_commands`, :mod:`spendlab.cli.forecast_commands`
and :mod:`spendlab.cli.reconcile_commands`; they are registered here, in the order ``--help`` lists
them. A new command is one function in its group's module and one line below.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from spendlab import __version__
from spendlab.cli.common import UsageError, err, reader_config, require_command
from spendlab.cli.covariates_commands import datasets_synth_covariates, experiment_covariates
from spendlab.cli.data_commands import datasets_deltas, datasets_list, datasets_synth, describe, features, validate
from spendlab.cli.forecast_commands import compare, evaluate, experiment_run, pipeline, promote, score, tune
from spendlab.cli.monitor_commands import monitor, replay
from spendlab.cli.reconcile_commands import reconcile
from spendlab.dependencies import untested_dependencies_line
from spendlab.errors import SpendlabError

__all__ = ["UsageError", "app", "main", "reader_config"]


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
    require_command(ctx)


for _command in (pipeline, validate, describe, features, reconcile, tune, promote, score):
    app.command()(_command)

datasets_app = typer.Typer(help="Embedded datasets and seeded synthetic generators.",
                           callback=require_command, invoke_without_command=True)
datasets_app.command("list")(datasets_list)
datasets_app.command("synth")(datasets_synth)
datasets_app.command("deltas")(datasets_deltas)
datasets_app.command("synth-covariates")(datasets_synth_covariates)
app.add_typer(datasets_app, name="datasets")

experiment_app = typer.Typer(help="Forecasting experiments: rolling-origin backtests tracked in MLflow.",
                             callback=require_command, invoke_without_command=True)
experiment_app.command("run")(experiment_run)
experiment_app.command("covariates")(experiment_covariates)
app.add_typer(experiment_app, name="experiment")

for _command in (compare, evaluate, monitor, replay):
    app.command()(_command)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_line(exc: BaseException) -> str:
    """One line for a click/typer usage error, from whichever copy of click raised it."""
    ctx = getattr(exc, "ctx", None)
    message = _one_line(exc.format_message())  # type: ignore[attr-defined]
    path = getattr(ctx, "command_path", None) or "spendlab"
    return f"{message} (try '{path} --help')"


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every ``finally`` (temporary outputs) runs before exit 143."""


#: Set once SIGTERM arrived: a library that catches the signal's exception (DuckDB turns it into its
#: own "Query interrupted" error) must not turn a clean termination into an "internal error".
_TERMINATED: list[bool] = []


def _raise_terminated(signum: int, frame: object) -> None:
    _TERMINATED.append(True)
    raise Terminated


def _interrupted(exc: BaseException) -> bool:
    """Tell whether ``exc`` is a library's report of a signal that interrupted it (DuckDB's InterruptException)."""
    return type(exc).__name__ == "InterruptException" or str(exc).strip() == "Query interrupted"


#: Seconds after which a termination that landed where no exception can propagate (a garbage-collection
#: callback, a ``__del__``: Python reports it as "Exception ignored in ..." and carries on) is raised
#: again, by SIGALRM, in ordinary code.
REDELIVER_SECONDS = 0.01


def _redeliver_terminated(args: Any) -> None:
    """``sys.unraisablehook``: a swallowed :class:`Terminated` is re-raised shortly after, not printed."""
    import signal

    if isinstance(args.exc_value, Terminated):
        signal.setitimer(signal.ITIMER_REAL, REDELIVER_SECONDS)
        return
    sys.__unraisablehook__(args)


def _on_sigterm() -> object:
    """Turn SIGTERM into :class:`Terminated` (main thread only; elsewhere signals cannot be set).

    Returns what :func:`_restore_sigterm` puts back: the previous SIGTERM and SIGALRM handlers and
    unraisable hook (None off the main thread).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = (signal.signal(signal.SIGTERM, _raise_terminated), signal.signal(signal.SIGALRM, _raise_terminated),
                sys.unraisablehook)
    sys.unraisablehook = _redeliver_terminated
    return previous


def _restore_sigterm(previous: object) -> None:
    import signal

    if previous is not None:
        term, alarm, hook = previous  # type: ignore[misc]
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, term)
        signal.signal(signal.SIGALRM, alarm)
        sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one clear line and a non-zero exit for every expected error.

    Typer >= 0.22 raises its own vendored copy of click's exceptions, older typer raises click's;
    both are told apart by shape (``exit_code``, ``format_message``), not by class.
    """
    import os

    untested = untested_dependencies_line()
    if untested:
        err.print(escape(untested), highlight=False, soft_wrap=True)
    previous = _on_sigterm()
    _TERMINATED.clear()
    try:
        rv = app(args=argv, prog_name="spendlab", standalone_mode=False)
    except Terminated:
        err.print("terminated: outputs not completed were removed; earlier outputs are unchanged")
        sys.exit(143)
    except SpendlabError as exc:
        err.print(f"[bold red]error:[/] {escape(_one_line(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _TERMINATED:  # SIGTERM arrived inside a library call that raised its own error instead
            err.print("terminated: outputs not completed were removed; earlier outputs are unchanged")
            sys.exit(143)
        if _interrupted(exc):
            err.print("interrupted")
            sys.exit(130)
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
        if isinstance(exc, OSError) or kind == "IOException":  # the file system refused (DuckDB's too): which file, why
            filename = getattr(exc, "filename", None)
            why = getattr(exc, "strerror", None) or exc
            where = f": {filename}" if filename else ""
            err.print(f"[bold red]error:[/] {escape(_one_line(f'{why}{where}'))}",
                      highlight=False, soft_wrap=True)
            sys.exit(1)
        if os.environ.get("SPENDLAB_TRACEBACK"):
            raise
        err.print(f"[bold red]internal error:[/] {escape(_one_line(f'{kind}: {exc}'))} (a bug in spendlab; "
                  "set SPENDLAB_TRACEBACK=1 to see where)", highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        _restore_sigterm(previous)
    if isinstance(rv, int) and rv:
        sys.exit(rv)

