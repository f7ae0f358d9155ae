"""Numeric timestamps (``reader.generic.ts_unit`` / ``ts_origin``): day numbers and epoch counts.

Exports often carry time as numbers: a day index counted from the start of the data (a grocery panel's
``DAY`` 1 .. 711), or Unix seconds / milliseconds / nanoseconds. Each value must become the same UTC
instant as pandas' ``to_datetime(value, unit=..., origin=...)`` gives (the independent oracle), the
same from CSV text and from Parquet string, integer, float and decimal columns, and a bad value is one
reject naming its line and column.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.config import ReaderConfig, parse_config
from spendlab.errors import ConfigError
from spendlab.io import load_transactions
from spendlab.io.load import connect

UTC = dt.UTC
CON = connect()
PANDAS_UNIT = {"day": "D", "s": "s", "ms": "ms", "us": "us", "ns": "ns"}
#: Values a little past what 1970 .. 2099 holds, per unit (the reader's default window is 1970-01-01 .. today).
SPAN = {"day": 60_000, "s": 4 * 10**9, "ms": 4 * 10**12, "us": 4 * 10**15, "ns": 4 * 10**18}


def _oracle(value: str, unit: str, origin: dt.date, zone: str) -> dt.datetime:
    """The instant pandas reads, to the microsecond (rounded down); a day is midnight in ``zone``."""
    stamp = pd.to_datetime(int(value), unit=PANDAS_UNIT[unit], origin=pd.Timestamp(origin))
    if unit == "day":
        return stamp.tz_localize(zone).tz_convert("UTC").to_pydatetime()
    return stamp.floor("us").tz_localize("UTC").to_pydatetime()


def _config(unit: str, origin: dt.date | None, zone: str = "UTC") -> ReaderConfig:
    generic = {"user_col": "household_key", "ts_col": "DAY", "amount_col": "SALES_VALUE", "ts_unit": unit}
    if origin is not None:
        generic["ts_origin"] = origin.isoformat()
    return ReaderConfig(timezone=zone, window_end=dt.date(2099, 12, 31), generic=generic)


def _load(path: Path, config: ReaderConfig, first_line: int):
    tx = load_transactions(str(path), "generic", config=config, con=CON)
    f = tx.report.files[0]
    assert f.rows_in == f.accepted + f.rejected
    tx.register(CON, "numeric_ts")
    rows = sorted((line - first_line, user, ts.replace(tzinfo=UTC))
                  for line, user, ts in CON.execute("SELECT line, user_id, ts FROM numeric_ts").fetchall())
    rejects = sorted((r.line - first_line, r.error_type, r.column, r.message if r.error_type == "DATE_PARSE" else "")
                     for r in tx.report.rejects)  # the window's message differs by reader (not this change)
    assert len(rows) == f.accepted and len(rejects) == f.rejected
    return rows, rejects


def test_a_grocery_day_index_reads_as_calendar_days_from_its_origin(tmp_path: Path) -> None:
    # Day 1 of a panel numbered from 1 with origin 2019-12-31 is 2020-01-01; day 60 is 2020-02-29 (leap year)
    (tmp_path / "t.csv").write_text("household_key,DAY,SALES_VALUE\n7,1,10.50\n7,60,4.00\n8,366,1.25\n")
    rows, rejects = _load(tmp_path / "t.csv", _config("day", dt.date(2019, 12, 31)), first_line=2)
    assert rejects == []
    assert [r[2] for r in rows] == [dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 2, 29, tzinfo=UTC),
                                    dt.datetime(2020, 12, 31, tzinfo=UTC)]
    # in a local zone the day starts at local midnight: 05:00 UTC in New York's winter, 04:00 in summer
    rows, _ = _load(tmp_path / "t.csv", _config("day", dt.date(2019, 12, 31), "America/New_York"), first_line=2)
    assert [r[2].hour for r in rows] == [5, 5, 5]
    (tmp_path / "s.csv").write_text("household_key,DAY,SALES_VALUE\n7,183,1.00\n")
    rows, _ = _load(tmp_path / "s.csv", _config("day", dt.date(2019, 12, 31), "America/New_York"), first_line=2)
    assert rows[0][2] == dt.datetime(2020, 7, 1, 4, tzinfo=UTC)


def test_unix_seconds_milliseconds_and_nanoseconds_are_instants_whatever_the_zone(tmp_path: Path) -> None:
    expected = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    for unit, text in [("s", "1700000000.123456"), ("ms", "1700000000123.456"), ("us", "1700000000123456"),
                       ("ns", "1700000000123456789")]:
        (tmp_path / "t.csv").write_text(f"household_key,DAY,SALES_VALUE\n1,{text},2.00\n")
        for zone in ("UTC", "Asia/Kolkata"):
            rows, rejects = _load(tmp_path / "t.csv", _config(unit, None, zone), first_line=2)
            assert (rejects, rows[0][2]) == ([], expected), (unit, zone)


NUMBERS = st.sampled_from(sorted(SPAN)).flatmap(lambda unit: st.tuples(
    st.just(unit),
    st.lists(st.one_of(st.integers(-SPAN[unit] // 40, SPAN[unit]),
                       st.sampled_from([0, -1, 10**20, -(10**19), 2**63 - 1])), min_size=1, max_size=6),
    st.sampled_from([None, dt.date(2019, 12, 31), dt.date(1999, 1, 1)]),
    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(NUMBERS, st.sampled_from(["int", "string", "float", "decimal"]))
def test_csv_and_every_parquet_column_type_give_the_oracles_instants_and_the_same_rejects(case, column_type) -> None:
    unit, values, origin, zone = case
    if column_type == "int":
        values = [v for v in values if -(2**63) <= v < 2**63]
    if column_type == "float":  # a float column holds what a double can: whole numbers below 2**53
        values = [v for v in values if abs(v) < 2**53]
    if not values:
        return
    config = _config(unit, origin, zone)
    texts = [str(v) for v in values]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "t.csv").write_text("household_key,DAY,SALES_VALUE\n" + "".join(f"u{i},{t},1.00\n"
                                                                           for i, t in enumerate(texts)))
        expected = _load(d / "t.csv", config, first_line=2)
        arrow = {"int": lambda: pa.array(values, pa.int64()), "string": lambda: pa.array(texts, pa.string()),
                 "float": lambda: pa.array([float(v) for v in values], pa.float64()),
                 "decimal": lambda: pa.array([Decimal(v) for v in values], pa.decimal128(38, 0))}[column_type]()
        pq.write_table(pa.table({"household_key": [f"u{i}" for i in range(len(values))], "DAY": arrow,
                                 "SALES_VALUE": ["1.00"] * len(values)}), d / "t.parquet")
        assert _load(d / "t.parquet", config, first_line=1) == expected
    origin = origin or dt.date(1970, 1, 1)
    rows, rejects = expected
    for i, _user, ts in rows:
        assert ts == _oracle(texts[i], unit, origin, zone)
        assert dt.datetime(1970, 1, 1, tzinfo=UTC) <= ts < dt.datetime(2100, 1, 1, tzinfo=UTC)
    for _line, error, column, _ in rejects:
        assert column == "DAY" and error in ("DATE_PARSE", "OUT_OF_WINDOW", "DST_NONEXISTENT", "DST_AMBIGUOUS")
    assert len(rows) + len(rejects) == len(values)


@pytest.mark.parametrize(("text", "unit", "message"), [
    ("1.5", "day", "'1.5' is not a whole number of days"),
    ("x", "s", "'x' is not a number (ts_unit: s)"),
    ("", "day", "'' is not a number (ts_unit: day)"),
    ("1e999999", "ms", "'1e999999' (ms from 2019-12-31) is out of range"),
    ("٣", "day", "is not a number"),
])
def test_a_bad_value_is_one_reject_naming_line_column_and_reason(tmp_path: Path, text: str, unit: str,
                                                                  message: str) -> None:
    (tmp_path / "t.csv").write_text(f"household_key,DAY,SALES_VALUE\n1,1,1.00\n2,{text},1.00\n")
    rows, rejects = _load(tmp_path / "t.csv", _config(unit, dt.date(2019, 12, 31)), first_line=0)
    assert len(rows) == 1
    ((line, error, column, got),) = rejects
    assert (line, error, column) == (3, "DATE_PARSE", "DAY") and message in got


@pytest.mark.parametrize(("generic", "message"), [
    ({"ts_unit": "day", "ts_format": "%Y%m%d"}, "not both"),
    ({"ts_origin": "2019-12-31"}, "ts_origin needs ts_unit"),
    ({"ts_unit": "week"}, "ts_unit"),
])
def test_contradicting_timestamp_options_are_a_config_error(generic: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(ReaderConfig, {"generic": generic}, "test.yaml (reader)")


def test_the_cli_reads_a_day_index_export_and_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("household_key,DAY,SALES_VALUE\n7,1,10.50\n7,40,4.00\n")
    good = tmp_path / "good.yaml"
    good.write_text("reader:\n  generic:\n    user_col: household_key\n    ts_col: DAY\n    amount_col: SALES_VALUE\n"
                    "    ts_unit: day\n    ts_origin: 2019-12-31\n")
    run = subprocess.run([sys.executable, "-m", "spendlab.cli", "validate", str(tmp_path / "t.csv"), "--config",
                          str(good)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "14.50" in run.stdout + run.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text() + "    ts_format: '%Y'\n")
    run = subprocess.run([sys.executable, "-m", "spendlab.cli", "validate", str(tmp_path / "t.csv"), "--config",
                          str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "not both" in run.stderr and "Traceback" not in run.stderr
