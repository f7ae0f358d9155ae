"""Issue 15 item 3: one set of reader policies for every format (a differential property test).

Each example is a small table of rows, hostile values included, written three ways: as CSV text,
as Parquet with string columns holding the same text, and (when its values have native types) as
Parquet with typed columns (int ids; aware, naive or date timestamps; float, decimal or integer
amounts). Every way must give the same canonical rows (user_id, UTC ts, amount) in the same
order and the same rejects (row, error type, column), under a drawn reader config (time zone,
DST policy, sub-cent policy, thousands separator, sign convention).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError
from spendlab.io import load_transactions
from spendlab.io.load import connect

UTC = dt.UTC
PARITY = settings(max_examples=500, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CON = connect()
ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
#: Local times next to DST changes: gaps and overlaps in New York (1 h) and Lord Howe (30 min).
DST_EDGES = [dt.datetime(2021, 3, 14, 2, 30), dt.datetime(2021, 3, 14, 1, 59, 59), dt.datetime(2021, 3, 14, 3),
             dt.datetime(2021, 11, 7, 1, 30), dt.datetime(2021, 11, 7, 0, 59), dt.datetime(2021, 11, 7, 2),
             dt.datetime(2021, 10, 3, 2, 15), dt.datetime(2021, 4, 4, 1, 45), dt.datetime(2021, 4, 4, 2, 0)]

HOSTILE_USERS = ["u1", "007", "7", " 7 ", "\xa0u1", "u1\xa0", "u\x00x", "\u200bu1", "u\u202e1", "", "  ", "\t",
                 "=SUM(A1)", "١٢", "ｕ１", "a,b", 'q"uote', "\x1fu1\x1f", "<script>", "7.0", "7e3"]
HOSTILE_TS = ["2021-12-31 23:30:00-05:00", "2021-12-31T23:30:00Z", "2021-12-31 23:30:00Z", "2021-03-14 02:30:00",
              "2021-11-07 01:30:00", "2021-12-31 23:30:00+05:99", "2021-12-31 23:30:00+15:00",
              "2021-12-31 23:30:00+14:00", "2021-12-31 23:30:00-1400", "2021-02-30 00:00:00", "2021-13-01",
              "٢٠٢١-01-01", "２０２１-01-01 00:00:00", "2021-12-30 3:40:03", "", "2021-12-31", "1969-12-31 23:59:59",
              "2099-01-01 00:00:00", " 2021-06-01 12:00:00 ", "2021-06-01 12:00:00\xa0", "2021-06-01 24:00:00",
              "2021-06-01 12:00:00.123456789", "2021-06-01T12:00", "01/06/2021", "1_2021-01-01", "2021-06-01\n"]
HOSTILE_AMOUNTS = ["1_000", "١٢.٠٠", "１２.００", "12.00", "-12.50", "0.001", "1,234.50", "1,234", "$5", "5 USD",
                   "nan", "NaN", "inf", "-Infinity", "1e400", "-0.00", "", " 3.10 ", "3.10\xa0", "99999999",
                   "10000000.00", "10000000.01", "1e3", "+5", ".5", "5.", "0x10", "1.0e-2", "--1", "1.2.3"]


@st.composite
def typed_table(draw):
    """Rows with native types, and each value's CSV rendering."""
    n = draw(st.integers(1, 6))
    ts_kind = draw(st.sampled_from(["aware", "naive", "date"]))
    amount_kind = draw(st.sampled_from(["float", "decimal", "int"]))
    annotation = draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
    instant = st.one_of(st.datetimes(dt.datetime(1965, 1, 1), dt.datetime(2035, 1, 1)),
                        st.sampled_from(DST_EDGES))
    users, ts, amounts = [], [], []
    for _ in range(n):
        present = [draw(st.integers(0, 9)) > 0 for _ in range(3)]  # 1 in 10 is null (an empty CSV field)
        users.append(draw(st.integers(-5, 10**12)) if present[0] else None)
        t = draw(instant)
        if ts_kind == "aware":
            ts.append(t.replace(tzinfo=UTC) if present[1] else None)
        elif ts_kind == "naive":
            ts.append(t if present[1] else None)
        else:
            ts.append(t.date() if present[1] else None)
        if amount_kind == "float":
            a = draw(st.one_of(st.floats(-2e7, 2e7), st.sampled_from([float("nan"), float("inf"), -float("inf"),
                                                                      1.005, 0.1, 1e7, 1e7 + 0.01, -0.0, 1e-5,
                                                                      # float noise of a computed export (The
                                                                      # Complete Journey), and a half cent
                                                                      1.776357e-15, -4.440892e-16, 0.1 + 0.2, 0.125]),
                               st.decimals(-10**6, 10**6, places=2).map(float)))
        elif amount_kind == "decimal":
            a = draw(st.decimals(-10**8, 10**8, places=3, allow_nan=False, allow_infinity=False))
        else:
            a = draw(st.integers(-10**8, 10**8))
        amounts.append(a if present[2] else None)
    return ts_kind, amount_kind, annotation, users, ts, amounts


def _render_ts(value, kind: str, annotation: str, style: str) -> str:
    if value is None:
        return ""
    if kind == "aware":
        local = value.astimezone(ZoneInfo(annotation))
        text = local.isoformat(sep=" " if style == "space" else "T")
        return text.replace("+00:00", "Z") if style == "z" else text
    return value.isoformat(sep=" ") if kind == "naive" else value.isoformat()


def _render_amount(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "float":
        return repr(value)
    return str(value)


CONFIGS = st.fixed_dictionaries({
    "timezone": st.sampled_from(ZONES),
    "dst_policy": st.sampled_from(["reject", "shift_forward"]),
    "sub_cent": st.sampled_from(["reject", "keep", "round"]),
    "thousands": st.sampled_from([None, ","]),
    "spend_is": st.sampled_from(["positive", "negative"]),
})


def _write_csv(path: Path, users: list[str], ts: list[str], amounts: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["user_id", "ts", "amount"])
    writer.writerows(zip(users, ts, amounts, strict=True))
    path.write_bytes(buf.getvalue().encode("utf-8"))


def _outcome(path: Path, cfg: dict, first_line: int):
    """Canonical rows and rejects of one load, with rows numbered from 0 in file order."""
    spend_is = cfg.pop("spend_is")
    config = ReaderConfig(**cfg, generic={"spend_is": spend_is})
    cfg["spend_is"] = spend_is
    tx = load_transactions(str(path), "generic", config=config, con=CON)
    f = tx.report.files[0]
    assert f.rows_in == f.accepted + f.rejected
    tx.register(CON, "parity")  # one connection for every example: connecting costs more than reading
    rows = [(line - first_line, user, ts.replace(tzinfo=UTC), amount)
            for line, user, ts, amount in CON.execute("SELECT line, user_id, ts, amount FROM parity").fetchall()]
    rejects = sorted((r.line - first_line, r.error_type, r.column) for r in tx.report.rejects)
    assert len(rejects) == f.rejected and len(rows) == f.accepted
    return sorted(rows), rejects, dict(f.errors)


def _check(users_text, ts_text, amounts_text, cfg, typed=None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if any("\n" in t for t in ts_text):  # a field with a line break: CSV records only
            return
        _write_csv(d / "t.csv", users_text, ts_text, amounts_text)
        expected = _outcome(d / "t.csv", cfg, first_line=2)
        nullable = [None if s == "" else s for s in users_text], \
            [None if s == "" else s for s in ts_text], [None if s == "" else s for s in amounts_text]
        pq.write_table(pa.table({"user_id": pa.array(nullable[0], pa.string()),
                                 "ts": pa.array(nullable[1], pa.string()),
                                 "amount": pa.array(nullable[2], pa.string())}), d / "s.parquet")
        assert _outcome(d / "s.parquet", cfg, first_line=1) == expected, "Parquet string columns differ from CSV"
        if typed is not None:
            pq.write_table(typed, d / "typed.parquet")
            assert _outcome(d / "typed.parquet", cfg, first_line=1) == expected, "typed Parquet differs from CSV"


@PARITY
@given(st.one_of(typed_table(), st.none()), st.data(), CONFIGS, st.sampled_from(["space", "t", "z"]))
def test_csv_and_parquet_give_identical_rows_and_rejects(typed, data, cfg, style) -> None:
    if typed is None:  # hostile text in every column
        n = data.draw(st.integers(1, 6))
        users = [data.draw(st.sampled_from(HOSTILE_USERS)) for _ in range(n)]
        ts = [data.draw(st.sampled_from(HOSTILE_TS)) for _ in range(n)]
        amounts = [data.draw(st.sampled_from(HOSTILE_AMOUNTS)) for _ in range(n)]
        _check(users, ts, amounts, cfg)
        return
    ts_kind, amount_kind, annotation, users, ts, amounts = typed
    ts_type = {"aware": pa.timestamp("us", tz=annotation), "naive": pa.timestamp("us"), "date": pa.date32()}[ts_kind]
    amount_type = {"float": pa.float64(), "decimal": pa.decimal128(18, 3), "int": pa.int64()}[amount_kind]
    table = pa.table({"user_id": pa.array(users, pa.int64()), "ts": pa.array(ts, ts_type),
                      "amount": pa.array(amounts, amount_type)})
    amount_values = [None if a is None else (Decimal(a).quantize(Decimal("0.001")) if amount_kind == "decimal" else a)
                     for a in amounts]
    _check(["" if u is None else str(u) for u in users],
           [_render_ts(t, ts_kind, annotation, style if annotation == "UTC" or style != "z" else "t") for t in ts],
           [_render_amount(a, amount_kind) for a in amount_values], cfg, typed=table)


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2021-12-31 23:30:00-05:00", "UTC", dt.datetime(2022, 1, 1, 4, 30, tzinfo=UTC)),
        ("2021-12-31 23:30:00-05:00", "Asia/Tokyo", dt.datetime(2022, 1, 1, 4, 30, tzinfo=UTC)),
        ("2021-12-31T23:30:00Z", "America/New_York", dt.datetime(2021, 12, 31, 23, 30, tzinfo=UTC)),
    ],
    ids=["offset", "offset-wins-over-zone", "z-is-utc-not-local"],
)
def test_parquet_string_timestamps_keep_their_offset_or_z(tmp_path, text, zone, expected) -> None:
    """A Parquet ts with an offset or ``Z`` gives the same UTC instant as CSV, whatever reader.timezone."""
    pq.write_table(pa.table({"user_id": ["u1"], "ts": [text], "amount": ["1.00"]}), tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text(f"user_id,ts,amount\nu1,{text},1.00\n")
    for path in (tmp_path / "a.parquet", tmp_path / "a.csv"):
        tx = load_transactions(str(path), "generic", config=ReaderConfig(timezone=zone))
        assert tx.to_pandas()["ts"].tolist() == [expected]


@pytest.mark.parametrize(
    ("column", "values", "arrow_type"),
    [
        ("user_id", [True, False], pa.bool_()),
        ("user_id", [{"a": 1}, {"a": 2}], pa.struct([("a", pa.int64())])),
        ("user_id", [[1], [2]], pa.list_(pa.int64())),
        ("user_id", [1.0, 2.0], pa.float64()),
        ("amount", [True, False], pa.bool_()),
        ("amount", [[1.0], [2.0]], pa.list_(pa.float64())),
        ("amount", [b"1", b"2"], pa.binary()),
        ("ts", [1, 2], pa.int64()),
        ("ts", [True, True], pa.bool_()),
    ],
    ids=["bool-id", "struct-id", "list-id", "float-id", "bool-amount", "list-amount", "binary-amount", "int-ts",
         "bool-ts"],
)
def test_parquet_columns_of_other_types_fail_the_file_never_coerced(tmp_path, column, values, arrow_type) -> None:
    cols = {"user_id": pa.array(["u1", "u2"]), "ts": pa.array(["2021-01-01", "2021-01-02"]),
            "amount": pa.array([1.0, 2.0])}
    cols[column] = pa.array(values, arrow_type)
    pq.write_table(pa.table(cols), tmp_path / "a.parquet")
    with pytest.raises(InputFileError) as exc:
        load_transactions(str(tmp_path / "a.parquet"), "generic")
    assert exc.value.error_type == "UNSUPPORTED_TYPE" and exc.value.column == column
    assert str(tmp_path / "a.parquet") in str(exc.value) and str(arrow_type).split("<")[0] in str(exc.value)


def test_a_ts_column_that_is_text_in_one_file_and_a_timestamp_in_another_fails(tmp_path) -> None:
    pq.write_table(pa.table({"user_id": ["u1"], "ts": ["2021-01-01 00:00:00"], "amount": [1.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"user_id": ["u1"], "ts": pa.array([dt.datetime(2021, 1, 1)], pa.timestamp("us")),
                             "amount": [1.0]}), tmp_path / "b.parquet")
    with pytest.raises(InputFileError) as exc:
        load_transactions(str(tmp_path), "generic")
    assert exc.value.error_type == "SCHEMA_DRIFT" and "a.parquet: string" in str(exc.value)
