"""The per-(user, period) tables are stored in compact types only when the load's totals prove they fit."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from spendlab.describe import tables as qt


def _prepared(amounts: list[float]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE raw (user_id VARCHAR, ts TIMESTAMP, amount DOUBLE)")
    # user u1 buys in January twice and in March; u2 only refunds in February
    rows = [("u1", "2022-01-03 10:00:00", amounts[0]), ("u1", "2022-01-20 11:00:00", amounts[1]),
            ("u1", "2022-03-01 09:00:00", amounts[2]), ("u2", "2022-02-07 12:00:00", -amounts[3])]
    con.executemany("INSERT INTO raw VALUES (?, ?, ?)", rows)
    con.execute("CREATE VIEW transactions AS SELECT * FROM raw")
    qt.prepare(con)
    return con


def _types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {name: typ for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall()}


@pytest.mark.parametrize(("n_rows", "abs_total", "expected"), [
    (4, Decimal("10.5"), ("DECIMAL(18, 6)", "INTEGER")),
    (4, Decimal("99999999999.999999"), ("DECIMAL(18, 6)", "INTEGER")),
    (4, Decimal(10**11), ("DECIMAL(38, 6)", "INTEGER")),
    (2**31 - 2, Decimal(1), ("DECIMAL(18, 6)", "INTEGER")),
    (2**31 - 1, Decimal(1), ("DECIMAL(18, 6)", "BIGINT")),
])
def test_compact_types_only_below_their_bounds(n_rows: int, abs_total: Decimal, expected: tuple[str, str]) -> None:
    assert qt.compact_types(n_rows, abs_total) == expected


def test_small_totals_store_narrow_types_with_exact_hand_computed_values() -> None:
    con = _prepared([10.25, 4.75, 7.10, 2.50])
    assert _types(con, qt.USER_MONTH)["spend"] == "DECIMAL(18,6)"
    assert _types(con, qt.USER_MONTH)["n_transactions"] == "INTEGER"
    assert set(_types(con, qt.USER_WEEK)) == {"user_id", "week_start", "day_mask"}
    monthly = con.execute(f"SELECT * FROM ({qt.monthly_sql(net_refunds=True)}) ORDER BY user_id, month").fetchall()
    assert [(r[0], r[1], r[2], r[3], r[7], r[8]) for r in monthly] == [
        ("u1", "2022-01", 2, Decimal("15.000000"), Decimal("0.000000"), Decimal("15.000000")),
        ("u1", "2022-03", 1, Decimal("7.100000"), Decimal("0.000000"), Decimal("7.100000")),
        ("u2", "2022-02", 1, Decimal("0.000000"), Decimal("2.500000"), Decimal("-2.500000")),
    ]
    # what readers other than the CSV writer see: the types DuckDB's sums return, as before
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE {qt.monthly_sql(net_refunds=True)}").fetchall()}
    assert described["spend"] == "DECIMAL(38,6)" and described["n_transactions"] == "BIGINT"
    mom = con.execute(f"SELECT user_id, month, prev_spend, spend, change, direction FROM {qt.MOM} "
                      "ORDER BY user_id, month").fetchall()
    assert mom == [("u1", "2022-02", Decimal("15.000000"), Decimal("0.000000"), Decimal("-15.000000"), "stopped"),
                   ("u1", "2022-03", Decimal("0.000000"), Decimal("7.100000"), Decimal("7.100000"), "started")]


def test_large_totals_keep_the_wide_types_and_exact_sums() -> None:
    # 6e10 + 5e10 in one month: the sum of |amount| (above 10^11) could not be bounded by DECIMAL(18, 6)'s margin
    con = _prepared([6e10, 5e10, 1.0, 2.0])
    assert _types(con, qt.USER_MONTH)["spend"] == "DECIMAL(38,6)"
    spend = con.execute(f"SELECT spend FROM {qt.USER_MONTH} WHERE user_id = 'u1' AND month_start = '2022-01-01'")
    assert spend.fetchall() == [(Decimal("110000000000.000000"),)]


def test_stored_tables_are_in_user_then_month_order() -> None:
    con = _prepared([10.25, 4.75, 7.10, 2.50])
    for table, order in qt.STORED_ORDER.items():
        rows = con.execute(f"SELECT {order} FROM {table}").fetchall()
        assert rows == sorted(rows), table
