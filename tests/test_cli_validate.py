"""``spendlab validate``, ``datasets`` and the CLI's help/error contract (issue 2 acceptance)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import click
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from spendlab.cli import app
from spendlab.jobs.datasets import synth_transactions
from tests.conftest import millions_row

SPENDLAB = [sys.executable, "-m", "spendlab.cli"]
REJECT_COLUMNS = ["file", "line", "column", "error_type", "raw", "message"]

#: line to plant -> (bad line, error type, column). Line numbers are physical, header = 1.
PLANTED = {
    5: ('auth,"{""amount"":""-1.00""",2023-01-05 3:00:00,77', "JSON_DECODE", "data"),
    17: (millions_row("NaN", "2023-01-05 3:00:00", "77"), "NON_FINITE", "data"),
    18: (millions_row("-1.00", "2023-02-30 3:00:00", "77"), "DATE_PARSE", "created_at"),
    40: (millions_row("-1.00", "2023-01-05 3:00:00", ""), "NULL_KEY", "user_id"),
    41: (millions_row("-1.00", "2023-01-05 3:00:00", "77") + ",x", "TOO_MANY_COLUMNS", ""),
    100: (millions_row("-1,00", "2023-01-05 3:00:00", "77"), "AMOUNT_FORMAT", "data"),
    101: (millions_row("-1.00", "2023-01-05 3:00:00", "77", "card_refund"), "UNKNOWN_TYPE", "type"),
    250: ("auth,17", "MISSING_COLUMNS", ""),
    251: (millions_row("-1.00", "1899-12-31 3:00:00", "77"), "OUT_OF_WINDOW", "created_at"),
}
LATIN1_LINE = 180  # a row with a latin-1 byte: INVALID_ENCODING


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, object]:
    """A synthetic millions file with corrupt rows planted at known physical lines."""
    base = tmp_path_factory.mktemp("planted")
    clean = base / "clean.csv"
    synth_transactions(clean, users=60, months=3, fmt="millions", seed=3)
    lines = clean.read_bytes().split(b"\n")[:-1]
    good = len(lines) - 1
    assert good > max(PLANTED), "the clean file must be long enough for every planted line"
    plants = {k: v[0].encode() for k, v in PLANTED.items()}
    plants[LATIN1_LINE] = millions_row("-1.00", "2023-01-05 3:00:00", "Caf\xe9").encode("latin-1")
    for line in sorted(plants):  # insert in ascending order so each lands on its own physical line
        lines.insert(line - 1, plants[line])
    dirty = base / "dirty.csv"
    dirty.write_bytes(b"\n".join(lines) + b"\n")
    return {"clean": clean, "dirty": dirty, "good": good, "dir": base}


def spend_oracle(path: Path) -> tuple[int, Decimal]:
    """Users and gross spend of a clean millions file, computed with pandas + json + Decimal."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    amounts = [Decimal(json.loads(d)["amount"]) for d in df["data"]]
    return df["user_id"].nunique(), sum((-a for a in amounts if a < 0), Decimal(0))


def test_quarantine_accepts_every_good_row_and_rejects_exactly_the_planted_lines(planted):
    rejects = planted["dir"] / "rejects.csv"
    run = subprocess.run([*SPENDLAB, "validate", str(planted["dirty"]), "--format", "millions",
                          "--rejects", str(rejects), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    (f,) = summary["files"]
    n_planted = len(PLANTED) + 1
    assert (f["rows_in"], f["accepted"], f["rejected"]) == (planted["good"] + n_planted, planted["good"], n_planted)
    expected_errors: dict[str, int] = {}
    for _, kind, _ in [*PLANTED.values(), ("", "INVALID_ENCODING", "")]:
        expected_errors[kind] = expected_errors.get(kind, 0) + 1
    assert f["errors"] == expected_errors
    users, spend = spend_oracle(planted["clean"])
    assert summary["users"] == users and summary["total_spend"] == float(spend.quantize(Decimal("0.01")))
    with open(rejects, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames[:6] == REJECT_COLUMNS
        rows = list(reader)
    got = {int(r["line"]): (r["error_type"], r["column"]) for r in rows}
    want = {line: (kind, col) for line, (_, kind, col) in PLANTED.items()} | {LATIN1_LINE: ("INVALID_ENCODING", "")}
    assert got == want
    by_line = {int(r["line"]): r for r in rows}
    assert by_line[5]["raw"] == PLANTED[5][0] and by_line[5]["file"] == str(planted["dirty"])
    assert "Caf\\xe9" in by_line[LATIN1_LINE]["raw"]
    assert all(r["message"] for r in rows)


def test_strict_mode_exits_non_zero_naming_the_first_bad_line_in_one_line(planted):
    run = subprocess.run([*SPENDLAB, "validate", str(planted["dirty"]), "--format", "millions", "--mode", "strict"],
                         capture_output=True, text=True)
    assert run.returncode != 0 and run.stdout == ""
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in run.stderr
    assert str(planted["dirty"]) in message and "line 5" in message and "JSON_DECODE" in message


def test_collect_mode_lists_every_bad_row_then_fails(planted):
    run = subprocess.run([*SPENDLAB, "validate", str(planted["dirty"]), "--format", "millions", "--mode", "collect"],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"{len(PLANTED) + 1} bad row(s)" in run.stderr
    for line in [*PLANTED, LATIN1_LINE]:
        assert f"line {line}," in run.stderr


def test_collect_mode_still_writes_every_reject_before_failing(planted):
    rejects = planted["dir"] / "collect-rejects.csv"
    run = subprocess.run([*SPENDLAB, "validate", str(planted["dirty"]), "--format", "millions", "--mode", "collect",
                          "--rejects", str(rejects)], capture_output=True, text=True)
    assert run.returncode != 0
    with open(rejects, newline="", encoding="utf-8") as fh:
        assert sorted(int(r["line"]) for r in csv.DictReader(fh)) == sorted([*PLANTED, LATIN1_LINE])


def test_validate_prints_a_per_file_table_with_users_and_spend(planted):
    result = CliRunner().invoke(app, ["validate", str(planted["dirty"]), "--format", "millions"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "dirty.csv" in result.output and "JSON_DECODE=1" in result.output
    users, spend = spend_oracle(planted["clean"])
    assert f"users: {users:,}" in result.output and f"total spend: {spend:,.2f}" in result.output


@pytest.mark.slow
def test_cdnow_builtin_validates_to_the_published_figures():
    """Issue 2 acceptance: 69,659 rows, 0 rejected, 23,570 users, total spend 2,500,315.63."""
    run = subprocess.run([*SPENDLAB, "validate", "builtin:cdnow", "--format", "cdnow", "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    (f,) = summary["files"]
    assert (f["rows_in"], f["accepted"], f["rejected"], f["errors"]) == (69_659, 69_659, 0, {})
    assert Path(f["file"]).name == "CDNOW_master.txt"
    assert summary["users"] == 23_570 and summary["total_spend"] == 2_500_315.63


def test_cdnow_figures_match_an_independent_pandas_read():
    """The same figures from pandas' whitespace reader (the oracle), from the same installed file."""
    from spendlab.io.builtin import builtin_path

    df = pd.read_csv(builtin_path("cdnow"), sep=r"\s+", header=0, dtype={"customer_id": str})
    assert len(df) == 69_659 and df["customer_id"].nunique() == 23_570
    assert round(df["dollar_value"].sum(), 2) == 2_500_315.63


def test_an_unreadable_input_is_one_line_without_traceback():
    run = subprocess.run([*SPENDLAB, "validate", "/nonexistent/tx.csv", "--format", "millions"],
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == ["error: /nonexistent/tx.csv: no such file or directory"]


def test_a_file_level_error_is_one_line_naming_file_line_and_column(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("type;data;created_at;user_id\n")
    run = subprocess.run([*SPENDLAB, "validate", str(path), "--format", "millions"], capture_output=True, text=True)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert f"{path}, line 1" in run.stderr and "HEADER_MISMATCH" in run.stderr


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_command_has_help_that_explains_each_option():
    """Walks the whole click tree, so commands added later are covered automatically."""
    root = typer.main.get_command(app)
    commands = [((), root), *_commands(root)]
    assert len(commands) >= 5
    runner = CliRunner()
    for path, cmd in commands:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        where = " ".join(path) or "spendlab"
        assert result.exit_code == 0, f"{where} --help: {result.output}"
        assert (cmd.help or "").strip(), f"{where} has no help text"
        for param in cmd.params:
            if isinstance(param, click.Option) and "--help" not in param.opts:
                assert (param.help or "").strip(), f"{where} {param.opts[0]} has no help"
                assert param.opts[0] in result.output, f"{where} --help does not show {param.opts[0]}"


def test_datasets_list_names_the_embedded_cdnow_file():
    import os

    run = subprocess.run([*SPENDLAB, "datasets", "list"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "300"})
    assert run.returncode == 0, run.stderr
    assert "builtin:cdnow" in run.stdout and "CDNOW_master.txt" in run.stdout and "23,570" in run.stdout


def test_markup_like_text_in_data_and_file_names_is_printed_verbatim(tmp_path):
    """Catalogue rows 31-32 at the CLI: rich markup in a value or a file name is text, never markup."""
    path = tmp_path / "[red]x.csv"
    path.write_text("type,data,created_at,user_id\n" + millions_row("-1.00", "2021-12-30 3:40:03", "1", "[/x]") + "\n")
    strict = subprocess.run([*SPENDLAB, "validate", str(path), "--format", "millions", "--mode", "strict"],
                            capture_output=True, text=True)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "type '[/x]' is not one of" in strict.stderr and "[red]x.csv" in strict.stderr
    rejects = tmp_path / "[b]rejects.csv"
    result = CliRunner().invoke(app, ["validate", str(path), "--format", "millions", "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert "[red]x.csv" in result.output and f"rejects written to {rejects}" in result.output.replace("\n", "")
    assert rejects.exists()
