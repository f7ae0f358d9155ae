"""Values printed by commands (paths, names, reasons) are never read as rich markup: a directory
named like a closing tag used to crash the command with a MarkupError traceback after its work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import millions_csv


@pytest.mark.parametrize("command", [["describe", "{input}", "--format", "millions", "--out", "{out}"],
                                     ["features", "{input}", "--format", "millions", "--out", "{out}/f.parquet"]])
def test_output_paths_that_look_like_markup_are_printed_verbatim(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "tx.csv"
    data.write_bytes(millions_csv([("-12.50", "2024-01-03 9:15:00", "u1"), ("-3.00", "2024-02-03 10:00:00", "u2"),
                                   ("-4.00", "2024-02-05 11:00:00", "u1")]))
    out = tmp_path / "run[/bold] [red]x"
    argv = [a.format(input=data, out=out) for a in command]
    done = subprocess.run([sys.executable, "-m", "spendlab.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "run[/bold] [red]x" in done.stdout + done.stderr
