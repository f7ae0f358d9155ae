"""The per-(user, period) aggregate in parts of periods on time-ordered Parquet: same features, fewer rows read."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.config import GenericMapping
from spendlab.features import build_features_arrow, timeparts
from spendlab.features.timeparts import FIRST_DAY, time_parts
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.parquet import range_sql

AS_OF = dt.date(2024, 6, 30)


def _rows(n: int = 600, seed: int = 7) -> list[tuple[int, dt.datetime, float]]:
    rng = random.Random(seed)
    start = dt.datetime(2023, 11, 1)
    rows = []
    for _ in range(n):
        ts = start + dt.timedelta(seconds=rng.randrange(0, 300 * 86_400))  # to late August 2024: past the cutoff
        amount = round(rng.choice([1, 1, 1, -1]) * rng.uniform(0.5, 90.0), 2)
        rows.append((rng.randrange(1, 40), ts, amount))
    return rows


def _parquet(path: Path, rows: list[tuple[int, dt.datetime, float]], *, aware: bool = True) -> Path:
    unit = pa.timestamp("us", "UTC") if aware else pa.timestamp("us")
    table = pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                      "ts": pa.array([r[1] for r in rows], unit), "amount": [r[2] for r in rows]})
    pq.write_table(table, path, row_group_size=20)  # 30 row groups of about 10 days
    return path


def _g(rows: int, lo: str, hi: str) -> tuple[int, dt.datetime, dt.datetime]:
    return rows, dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi)


def test_parts_start_at_periods_and_cover_every_row_up_to_the_cutoff() -> None:
    groups = [_g(100, "2024-01-03", "2024-01-30"), _g(100, "2024-02-01", "2024-02-28"),
              _g(100, "2024-03-02", "2024-04-10"), _g(100, "2024-04-11", "2024-06-30 23:59:59"),
              _g(100, "2024-07-01", "2024-07-31")]  # after the cutoff: not counted
    parts = time_parts(groups, AS_OF, "month", part_rows=150)
    # 100 rows a month in Jan and Feb; Mar-Apr 10 holds 100 (about 78 in March); Apr 11-Jun 100 (80 days)
    assert parts == [(FIRST_DAY, dt.date(2024, 2, 1)), (dt.date(2024, 2, 1), dt.date(2024, 3, 1)),
                     (dt.date(2024, 3, 1), dt.date(2024, 5, 1)), (dt.date(2024, 5, 1), dt.date(2024, 7, 1))]


def test_weekly_parts_start_on_mondays() -> None:
    tuesdays = [dt.datetime(2024, 1, 2) + dt.timedelta(weeks=w) for w in range(26)]
    groups = [(100, t, t + dt.timedelta(days=4)) for t in tuesdays]  # Tuesday to Saturday of each week
    parts = time_parts(groups, AS_OF, "week", part_rows=250)
    assert parts is not None and len(parts) == 13  # two weeks a part
    assert all(lo.weekday() == 0 for lo, _ in parts[1:])
    assert parts[-1][1] == AS_OF + dt.timedelta(days=1)


def test_no_parts_for_unordered_or_small_inputs() -> None:
    spread = [_g(100, "2024-01-01", "2024-06-30")] * 6  # every row group spans every month
    assert time_parts(spread, AS_OF, "month", part_rows=150) is None
    assert time_parts([_g(100, "2024-01-01", "2024-01-31")], AS_OF, "month", part_rows=150) is None


@pytest.mark.parametrize(("freq", "aware"), [("month", True), ("week", True), ("month", False)])
def test_features_in_parts_equal_those_of_one_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        freq: str, aware: bool) -> None:
    rows = sorted(_rows(), key=lambda r: r[1])
    tx = load_transactions(str(_parquet(tmp_path / "sorted.parquet", rows, aware=aware)), "generic")
    assert len(tx.row_groups) == 30
    con = connect()
    tx.register(con, native_ids=True)
    one = build_features_arrow(con, freq=freq, as_of=AS_OF, view="transactions")  # 600 rows: one part
    seen: list[object] = []
    real = timeparts.time_parts

    def spy(*args: object, **kwargs: object) -> object:
        out = real(*args, **kwargs, part_rows=120)  # type: ignore[arg-type]
        seen.append(out)
        return out

    monkeypatch.setattr("spendlab.features.timeparts.time_parts", spy)
    parts = build_features_arrow(con, freq=freq, as_of=AS_OF, view="transactions")
    assert seen and seen[0] is not None and len(seen[0]) >= 3  # type: ignore[arg-type]
    assert parts.equals(one)
    plain = connect()  # the same rows without the range macro: the view alone
    plain.execute(f"CREATE VIEW transactions AS {tx.sql}")
    assert build_features_arrow(plain, freq=freq, as_of=AS_OF, view="transactions").equals(one)


def test_range_macro_holds_the_views_rows_in_range(tmp_path: Path) -> None:
    rows = sorted(_rows(), key=lambda r: r[1])
    tx = load_transactions(str(_parquet(tmp_path / "sorted.parquet", rows)), "generic")
    con = connect()
    tx.register(con, native_ids=True)
    view = con.execute("SELECT user_id, ts, amount FROM transactions "
                       "WHERE ts >= TIMESTAMP '2024-02-01' AND ts < TIMESTAMP '2024-03-01' ORDER BY ALL").fetchall()
    macro = con.execute("SELECT user_id, ts, amount FROM transactions__between(DATE '2024-02-01', DATE '2024-03-01') "
                        "ORDER BY ALL").fetchall()
    assert macro == view and len(view) > 20
    con.execute("SET TimeZone = 'Pacific/Kiritimati'")  # +14h: the raw bound's day of margin still covers it
    assert con.execute("SELECT user_id, ts, amount FROM transactions__between(DATE '2024-02-01', DATE '2024-03-01') "
                       "ORDER BY ALL").fetchall() == view


def test_unordered_parquet_gets_no_parts(tmp_path: Path) -> None:
    rows = _rows()
    random.Random(3).shuffle(rows)
    tx = load_transactions(str(_parquet(tmp_path / "shuffled.parquet", rows)), "generic")
    groups = tx.row_groups
    assert groups and time_parts(groups, AS_OF, "month", part_rows=120) is None


def test_no_range_sql_where_a_raw_bound_would_not_be_exact() -> None:
    raw = "(SELECT u, t, a FROM read_parquet('x.parquet'))"
    valid = f"SELECT * FROM {raw} AS r"
    plain = GenericMapping()
    assert range_sql(valid, raw, plain, "aware", "UTC")
    assert range_sql(valid, raw, plain, "naive", "UTC")
    assert not range_sql(valid, raw, plain, "naive", "Europe/Paris")  # local times: the instant is not the raw value
    assert not range_sql(valid, raw, plain, "string", "UTC")  # parsed text
    assert not range_sql(valid, raw, GenericMapping(order_col="order"), "aware", "UTC")  # an order's time is its first line's


def test_registering_another_input_under_the_same_name_drops_the_range_macro(tmp_path: Path) -> None:
    rows = sorted(_rows(), key=lambda r: r[1])
    parquet = load_transactions(str(_parquet(tmp_path / "sorted.parquet", rows)), "generic")
    con = connect()
    parquet.register(con, native_ids=True)
    assert con.execute("SELECT count(*) FROM transactions__row_groups").fetchone()[0] == 30
    text = tmp_path / "few.csv"
    text.write_text("user_id,ts,amount\n1,2024-01-05 10:00:00,5.00\n")
    load_transactions(str(text), "generic").register(con, native_ids=True)
    assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'transactions__between'"
                       ).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'transactions__row_groups'"
                       ).fetchone()[0] == 0
