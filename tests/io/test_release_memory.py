"""io.load.release_memory: DuckDB lets go of dropped tables' buffers; the limit and every live table stay."""

from __future__ import annotations

import duckdb
import pytest

from spendlab.io.load import connect, release_memory


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


@pytest.mark.parametrize("limit", ["1GB", "300MB", "2GiB"])
def test_the_limit_connect_set_is_set_back_exactly_and_live_tables_survive(limit: str) -> None:
    con = connect(threads=2, memory_limit=limit)
    before = _limit(con)
    con.execute("CREATE TEMP TABLE kept AS SELECT range AS i, range * 2 AS j FROM range(3000000)")
    con.execute("CREATE TEMP TABLE dropped AS SELECT range AS i, random() AS r FROM range(3000000)")
    want = con.execute("SELECT count(*), sum(i), sum(j) FROM kept").fetchall()[0]
    con.execute("DROP TABLE dropped")
    for _ in range(3):  # repeated calls do not drift the limit (DuckDB shows it rounded: 1GB is 953.6 MiB)
        release_memory(con)
    assert _limit(con) == before
    assert con.execute("SELECT count(*), sum(i), sum(j) FROM kept").fetchall()[0] == want


def test_a_connection_opened_elsewhere_or_without_a_limit_is_left_alone() -> None:
    for con in (duckdb.connect(), connect(threads=1)):
        con.execute("SET memory_limit = '777MB'")  # set by SQL, not by connect(): not spendlab's to restore
        before = _limit(con)
        release_memory(con)
        assert _limit(con) == before


def test_a_limit_below_what_is_held_cannot_be_set_and_the_limit_comes_back() -> None:
    con = connect(threads=1, memory_limit="1GB")
    con.execute("CREATE TEMP TABLE big AS SELECT range AS i FROM range(5000000)")
    real = con.execute

    def refusing(sql: str, *args: object):  # DuckDB refuses a limit it cannot evict down to
        if "B'" in sql and sql.startswith("SET memory_limit"):
            raise duckdb.OutOfMemoryException("could not free up enough memory for the new limit")
        return real(sql, *args)

    class Wrapped:  # DuckDBPyConnection's methods are read-only: wrap it, as a connection opened by connect()
        def __init__(self) -> None:
            self.execute = refusing

    wrapped = Wrapped()
    from spendlab.io import load

    load._LIMITS[wrapped] = "1GB"
    release_memory(wrapped)  # type: ignore[arg-type]
    assert _limit(con) == _limit(connect(memory_limit="1GB"))
    assert con.execute("SELECT count(*) FROM big").fetchall()[0] == (5000000,)
