"""Every DuckDB result spendlab opens is read to the end before the connection is used again.

DuckDB 2 refuses a statement on a connection whose previous result is unfinished
(``ResourceInUseException``); DuckDB 1 silently discarded it. ``fetchone()`` and ``fetchmany()``
stop before the end of a result, so the source never calls them: single rows come from
``fetchall()[0]``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spendlab

SRC = Path(spendlab.__file__).parent
PARTIAL_FETCHES = {"fetchone", "fetchmany"}


def partial_fetches(source: str) -> list[int]:
    """Return the line numbers of calls that read only part of a result."""
    tree = ast.parse(source)
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in PARTIAL_FETCHES]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_result_is_left_half_read(path: Path) -> None:
    assert partial_fetches(path.read_text(encoding="utf-8")) == []


def test_the_check_catches_a_partial_fetch() -> None:
    src = "x = con.execute('SELECT 1').fetchall()[0]\ny = con.execute('SELECT 2').fetchone()\n"
    assert partial_fetches(src) == [2]


def test_a_connection_takes_new_work_after_each_single_row_read() -> None:
    import duckdb

    from spendlab.features.metadata import default_as_of

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT TIMESTAMP '2024-03-05 10:00:00' + i * INTERVAL 1 DAY AS ts "
                "FROM range(40) r(i)")
    import datetime as dt

    assert default_as_of(con, "month", view="t") == dt.date(2024, 3, 31)  # last day 2024-04-13
    assert default_as_of(con, "week", view="t") == dt.date(2024, 4, 7)  # the second query runs
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(40,)]
