"""Issue 15 item 8: no traceback from the command line, whatever typer version is installed.

Every usage error exits 2 with exactly one line on stderr; every command fed hostile input files
ends with one line and no traceback. Commands are enumerated from the typer app, so a new
command is covered here without editing this file.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.cli_harness import CliRun, Param, chdir, groups, leaf_commands, run_cli

COMMANDS = leaf_commands()
SPENDLAB = Path(sys.executable).with_name("spendlab")


def assert_one_line_usage_error(run: CliRun, argv: list[str]) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.code == 2, (argv, run)
    assert len(lines) == 1, (argv, run.stderr)
    assert "Traceback" not in run.stderr + run.stdout, argv


def _filler(p: Param) -> str:
    """A parse-valid value for a required parameter (the bad value under test fails first)."""
    hint = p.hint
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint)).value  # type: ignore[no-any-return]
    if hint in (int, float):
        return "1"
    return "x"


def _required(params: list[Param], skip: str) -> list[str]:
    argv: list[str] = []
    for p in params:
        if p.required and p.name != skip:
            argv += [p.opts[0], _filler(p)] if p.is_option else [_filler(p)]
    return argv


def _bad_cases() -> list[tuple[str, list[str]]]:
    """(id, argv) pairs: each is a usage error whatever else the command would do."""
    cases: list[tuple[str, list[str]]] = []
    for name, params in COMMANDS.items():
        cmd = name.split()
        base = _required(params, skip="")
        cases.append((f"{name}:unknown-option", [*cmd, *base, "--definitely-bogus"]))
        cases.append((f"{name}:extra-argument", [*cmd, *base, "extra-argument-nobody-takes"]))
        for p in params:
            rest = _required(params, skip=p.name)
            if p.required:
                cases.append((f"{name}:missing-{p.name}", [*cmd, *rest]))
            if not p.is_option:
                continue
            if p.is_flag:
                cases.append((f"{name}:{p.name}-flag-with-value", [*cmd, *rest, f"{p.opts[0]}=1"]))
                continue
            cases.append((f"{name}:{p.name}-without-value", [*cmd, *rest, p.opts[0]]))
            hint = p.hint
            if hint in (int, float):
                cases.append((f"{name}:{p.name}-not-a-number", [*cmd, *rest, p.opts[0], "not-a-number"]))
            if isinstance(hint, type) and issubclass(hint, enum.Enum):
                cases.append((f"{name}:{p.name}-bad-choice", [*cmd, *rest, p.opts[0], "no-such-choice"]))
    for group in groups():
        cases.append((f"{group or 'spendlab'}:no-command", group.split()))
        cases.append((f"{group or 'spendlab'}:unknown-command", [*group.split(), "no-such-command"]))
        cases.append((f"{group or 'spendlab'}:unknown-option", [*group.split(), "--definitely-bogus"]))
    cases.append(("describe:top-n-0", ["describe", "x", "--out", "o", "--top-n", "0"]))
    cases.append(("tune:jobs-0", ["tune", "x", "--model", "ridge", "--jobs", "0"]))
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("argv", [argv for _, argv in BAD], ids=[i for i, _ in BAD])
def test_every_usage_error_of_every_command_exits_2_with_one_line_and_no_traceback(
        argv: list[str], tmp_path: Path) -> None:
    with chdir(tmp_path):
        run = run_cli(argv)
    assert_one_line_usage_error(run, argv)
    assert list(tmp_path.iterdir()) == [], f"{argv} wrote {list(tmp_path.iterdir())}"


def test_the_matrix_covers_every_command_and_the_known_ones() -> None:
    covered = {i.split(":")[0] for i, _ in BAD}
    assert set(COMMANDS) <= covered
    assert {"describe", "validate", "score", "experiment run", "datasets synth", "reconcile", "pipeline"} <= covered


def test_version_prints_one_line_and_exits_0() -> None:
    from spendlab import __version__

    run = run_cli(["--version"])
    assert (run.code, run.stdout.strip(), run.stderr) == (0, f"spendlab {__version__}", "")


@pytest.mark.parametrize("args", ["--definitely-bogus", "describe --definitely-bogus", "score --definitely-bogus",
                                  "experiment run --definitely-bogus", "validate", ""])
def test_console_script_usage_errors_are_one_line_exit_2(args: str, tmp_path: Path) -> None:
    """The hook's check, through the installed console script (a real process, real typer)."""
    run = subprocess.run([str(SPENDLAB), *args.split()], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "COLUMNS": "40"})  # a narrow terminal must not wrap the line
    assert run.returncode == 2, run
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout


# Hostile input files. Each command's file-like parameters get the hostile path; its other
# required parameters get harmless values (outputs inside the temporary directory).
FILE_PARAMS = {"input", "experiment", "config", "platform", "source", "deltas"}
OTHER_VALUES = {"out_dir": "out", "out_path": "out.parquet", "model": "ridge", "experiment_name": "x"}
NO_FILE_INPUT = {"datasets list", "datasets synth", "datasets synth-covariates", "datasets deltas", "compare"}


def _hostile(root: Path) -> dict[str, Path]:
    root.mkdir()
    (root / "empty.csv").write_bytes(b"")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 8 + b"\x00\xff\xfe")
    (root / "folder").mkdir()
    (root / "bad.yaml").write_text("reader: [unclosed\n  key: : :\n")
    (root / "list.yaml").write_text("- just\n- a list\n")
    return {"empty": root / "empty.csv", "garbage": root / "garbage.bin", "missing": root / "missing.csv",
            "directory": root / "folder", "bad-yaml": root / "bad.yaml", "yaml-list": root / "list.yaml"}


HOSTILE = ["empty", "garbage", "missing", "directory", "bad-yaml", "yaml-list"]


def _argv_with(name: str, params: list[Param], path: Path, only: str | None = None) -> list[str] | None:
    argv = name.split()
    used = False
    for p in params:
        value = None
        if p.name in FILE_PARAMS and (only is None or p.name == only):
            value, used = str(path), True
        elif p.required:
            value = OTHER_VALUES.get(p.name, "x")
        if value is not None:
            argv += [p.opts[0], value] if p.is_option else [value]
    return argv if used else None


def test_every_command_but_the_known_ones_takes_a_file_input() -> None:
    without = {n for n, ps in COMMANDS.items() if not any(p.name in FILE_PARAMS for p in ps)}
    assert without == NO_FILE_INPUT


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - NO_FILE_INPUT))
def test_every_command_on_hostile_input_files_fails_in_one_line_without_a_traceback(
        command: str, tmp_path: Path) -> None:
    files = _hostile(tmp_path / "hostile")
    work = tmp_path / "work"
    work.mkdir()
    failures = []
    with chdir(work):
        for kind in HOSTILE:
            for only in [None, *sorted(p.name for p in COMMANDS[command] if p.name in FILE_PARAMS)]:
                argv = _argv_with(command, COMMANDS[command], files[kind], only=only)
                if argv is None:
                    continue
                run = run_cli(argv)
                text = run.stdout + run.stderr
                if "Traceback" in text or "internal error" in text or run.code != 2 \
                        or len(run.stderr.strip().splitlines()) != 1:
                    failures.append((kind, only, argv, run))
    assert failures == []
