"""The cheaper CSV paths of describe write the same bytes as the checked, wide ones.

Oracle: the same query written by ``copy_csv`` with the defaults (every text cell checked for a
formula start, money as DECIMAL(38, 2)); the fast path (``safe_text``, ``money_type``) must give
identical files for any values in range, and the job must only choose it when it is provably safe.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.io.csv_out import NARROW_MONEY, WIDE_MONEY, copy_csv, money_type_for
from spendlab.jobs.describe import money_bound, plain_text_columns

_money = st.decimals(min_value=Decimal("-99999999999.999999"), max_value=Decimal("99999999999.999999"), places=6,
                     allow_nan=False, allow_infinity=False)
ORDER = "src.user_id, src.n, src.spend, src.avg_transaction_value"
_ids = st.text(alphabet="0123456789abc", min_size=1, max_size=9)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(_ids, _money, st.floats(-1e9, 1e9, allow_nan=False), st.integers(0, 9)),
                     min_size=1, max_size=30))
def test_narrow_money_and_unchecked_safe_text_write_the_same_bytes(tmp_path_factory: pytest.TempPathFactory,
                                                                   rows: list) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    con = duckdb.connect()
    con.execute("CREATE TABLE t (user_id VARCHAR, spend DECIMAL(38, 6), avg_transaction_value DOUBLE, n BIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(u, str(m), f, n) for u, m, f, n in rows])
    sql = "SELECT user_id, spend, avg_transaction_value, n, spend / nullif(n, 0) AS refunds FROM t"
    money = frozenset({"spend", "avg_transaction_value", "refunds"})
    slow, fast = tmp / "slow.csv", tmp / "fast.csv"
    n_slow = copy_csv(con, sql, slow, ORDER, money_columns=money)
    bound = con.execute("SELECT max(greatest(abs(spend), abs(avg_transaction_value))) FROM t").fetchall()[0][0]
    n_fast = copy_csv(con, sql, fast, ORDER, money_columns=money,
                      safe_text=frozenset({"user_id"}), money_type=money_type_for(float(bound)))
    assert n_slow == n_fast == len(rows)
    assert fast.read_bytes() == slow.read_bytes()


def test_unchecked_text_is_only_for_columns_named_safe(tmp_path: Path) -> None:
    con = duckdb.connect()
    sql = "SELECT * FROM (VALUES ('=1+1', '=2')) AS v(user_id, direction)"
    out = tmp_path / "x.csv"
    copy_csv(con, sql, out, "src.user_id", safe_text=frozenset({"direction"}))
    assert out.read_text().splitlines() == ["user_id,direction", "'=1+1,=2"]


@pytest.mark.parametrize(("bound", "expected"), [
    (0.0, NARROW_MONEY), (1e12, NARROW_MONEY), (4.9e14, NARROW_MONEY), (5e14, WIDE_MONEY), (1e16, WIDE_MONEY),
    (None, WIDE_MONEY), (float("nan"), WIDE_MONEY), (float("inf"), WIDE_MONEY), (-1.0, WIDE_MONEY),
])
def test_money_type_is_narrow_only_well_inside_its_range(bound: float | None, expected: str) -> None:
    assert money_type_for(bound) == expected


def test_narrow_money_would_overflow_beyond_its_range() -> None:
    """Why the bound matters: DECIMAL(18, 2) refuses 10^16, so the job must not pick it there."""
    con = duckdb.connect()
    with pytest.raises(duckdb.Error):
        con.execute(f"SELECT CAST(round(CAST(1e16 AS DECIMAL(38, 6)), 2) AS {NARROW_MONEY})").fetchall()


def test_money_bound_is_gross_spend_plus_refunds() -> None:
    assert money_bound({"total_spend": 10.5, "refund_amount": 2.25}) == 12.75
    assert money_bound({"total_spend": 10.5}) is None


@pytest.mark.parametrize(("start", "ids_plain", "expected"), [
    ("2024-01-01T00:00:00", True, {"direction", "month", "user_id"}),
    ("2024-01-01T00:00:00", False, {"direction", "month"}),
    (None, True, {"direction", "user_id"}),
    ("-0001-01-01T00:00:00", False, {"direction"}),
])
def test_plain_text_columns(start: str | None, ids_plain: bool, expected: set[str]) -> None:
    assert plain_text_columns({"period_start": start}, ids_plain=ids_plain) == expected
