"""Catalogue rows 37-39: Parquet files and the generic column mapping."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import spendlab.io.load as load_module
from spendlab.cli import app
from spendlab.config import ReaderConfig, parse_config
from spendlab.errors import ConfigError, InputFileError
from spendlab.io.load import validation_summary
from tests.conftest import load

UTC = dt.UTC
MAPPING = {"user_col": "customer", "ts_col": "when", "amount_col": "value"}


_STRING, _FLOAT64 = pa.string(), pa.float64()


def write_parquet(path, users, amounts, *, user_type=_STRING, amount_type=_FLOAT64):
    ts = [dt.datetime(2023, 1, 1, 12, tzinfo=UTC) + dt.timedelta(days=i) for i in range(len(users))]
    table = pa.table({
        "customer": pa.array(users, user_type),
        "when": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "value": pa.array(amounts, amount_type),
    })
    pq.write_table(table, path)
    return path


def test_row37_truncated_parquet_fails_the_file_as_corrupt_naming_it(tmp_path):
    """Catalogue row 37: a valid file truncated by 100 bytes (no footer)."""
    good = write_parquet(tmp_path / "good.parquet", [f"u{i}" for i in range(50)], [1.0] * 50)
    data = good.read_bytes()
    bad = tmp_path / "part-2.parquet"
    bad.write_bytes(data[:-100])
    with pytest.raises(InputFileError) as exc:
        load(tmp_path, "generic", generic=MAPPING)
    assert exc.value.error_type == "CORRUPT_PARQUET" and str(bad) in str(exc.value)
    assert "magic bytes" in str(exc.value)


def test_row37_a_text_file_named_parquet_is_corrupt_parquet(tmp_path):
    """Catalogue row 37: not Parquet at all."""
    fake = tmp_path / "x.parquet"
    fake.write_text("user_id,ts,amount\n")
    with pytest.raises(InputFileError) as exc:
        load(fake, "generic")
    assert exc.value.error_type == "CORRUPT_PARQUET" and str(fake) in str(exc.value)


def test_row38_user_id_int64_vs_string_across_files_warns_and_lists_drift(tmp_path):
    """Catalogue row 38: int ids become strings with a SCHEMA_DRIFT warning; strict mode fails."""
    write_parquet(tmp_path / "a.parquet", ["007", "8"], [1.0, 2.0])
    write_parquet(tmp_path / "b.parquet", [7, 8], [Decimal("3.00"), Decimal("4.50")],
                  user_type=pa.int64(), amount_type=pa.decimal128(10, 2))
    tx = load(tmp_path, "generic", generic=MAPPING)
    assert tx.report.accepted == 4
    assert all(f.warnings["SCHEMA_DRIFT"] == 1 for f in tx.report.files)
    notes = " ".join(n for f in tx.report.files for n in f.notes)
    assert "'customer'" in notes and "a.parquet: string" in notes and "b.parquet: int64" in notes
    assert "'value'" in notes and "decimal128(10, 2)" in notes
    df = tx.to_pandas()
    assert sorted(df["user_id"]) == ["007", "7", "8", "8"]
    assert validation_summary(tx)["total_spend"] == 10.5
    with pytest.raises(InputFileError) as exc:
        load(tmp_path, "generic", mode="strict", generic=MAPPING)
    assert exc.value.error_type == "SCHEMA_DRIFT"
    assert "customer" in str(exc.value) and "b.parquet: int64" in str(exc.value)


def test_parquet_bad_rows_are_counted_per_file_with_row_numbers(tmp_path):
    """Parquet rows go through the same checks in SQL: null key, non-finite, out of range."""
    write_parquet(tmp_path / "a.parquet", ["u1", None, "u3", " ", "u5"], [1.0, 2.0, float("nan"), 4.0, 2e7])
    tx = load(tmp_path / "a.parquet", "generic", generic=MAPPING)
    f = tx.report.files[0]
    assert (f.rows_in, f.accepted, f.rejected) == (5, 1, 4)
    assert dict(f.errors) == {"NULL_KEY": 2, "NON_FINITE": 1, "OUT_OF_RANGE": 1}
    assert [(r.line, r.error_type, r.column) for r in tx.report.rejects] == [
        (2, "NULL_KEY", "customer"), (3, "NON_FINITE", "value"), (4, "NULL_KEY", "customer"),
        (5, "OUT_OF_RANGE", "value")]


class ConnectionSpy:
    """Stands in for ``spendlab.io.load.connect`` and records every SQL statement."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.connections = 0

    def __call__(self, *args, **kwargs):
        self.connections += 1
        con = real_connect(*args, **kwargs)
        spy = self

        class Proxy:
            def execute(self, sql, *a, **k):
                spy.statements.append(sql)
                return con.execute(sql, *a, **k)

            def __getattr__(self, name):
                return getattr(con, name)

        return Proxy()


real_connect = load_module.connect


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"user_col": "customer", "ts_col": "when", "amount_col": "customer"}, "three different columns"),
        ({"user_col": "customer", "ts_col": "when", "amount_col": 'value"; DROP TABLE x; --'}, "is not allowed"),
        ({"user_col": "customer", "ts_col": "when", "amount_col": "value'); SELECT 1; --"}, "is not allowed"),
    ],
    ids=["two-roles-one-column", "double-quote-injection", "single-quote-injection"],
)
def test_row39_bad_mapping_is_a_config_error_before_any_sql(tmp_path, monkeypatch, mapping, message):
    """Catalogue row 39: the mapping is validated when the config is parsed; no connection is made."""
    spy = ConnectionSpy()
    monkeypatch.setattr(load_module, "connect", spy)
    with pytest.raises(ConfigError) as exc:
        parse_config(ReaderConfig, {"generic": mapping}, "cfg.yaml")
    assert message in str(exc.value) and "cfg.yaml" in str(exc.value)
    write_parquet(tmp_path / "a.parquet", ["u1"], [1.0])
    cfg = tmp_path / "cfg.yaml"
    lines = "\n".join(f"    {k}: '{v.replace(chr(39), chr(39) * 2)}'" for k, v in mapping.items())
    cfg.write_text(f"reader:\n  generic:\n{lines}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "a.parquet"), "--format", "generic",
                                      "--config", str(cfg)])
    assert isinstance(result.exception, ConfigError)
    assert spy.connections == 0 and spy.statements == []


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_row39_mapping_naming_a_missing_column_fails_before_any_sql(tmp_path, monkeypatch, kind):
    """Catalogue row 39: a mapped column the file lacks is a config error naming file and column."""
    if kind == "parquet":
        path = write_parquet(tmp_path / "a.parquet", ["u1"], [1.0])
    else:
        path = tmp_path / "a.csv"
        path.write_text("customer,when,value\nu1,2023-01-01 00:00:00,1.00\n")
    spy = ConnectionSpy()
    monkeypatch.setattr(load_module, "connect", spy)
    with pytest.raises(ConfigError) as exc:
        load(path, "generic", generic={**MAPPING, "amount_col": "amount"})
    assert isinstance(exc.value, InputFileError) and exc.value.error_type == "SCHEMA_MISSING_COLUMN"
    assert str(path) in str(exc.value) and "'amount'" in str(exc.value)
    assert spy.connections == 0 and spy.statements == []


def test_generic_csv_with_negative_spend_convention_and_ts_format(write_file):
    """The generic mapping's sign convention and strptime format (a reader-level sanity check)."""
    path = write_file("g.csv", "customer,when,value\nu1,30/12/2021 03:40,-12.50\nu2,31/12/2021 23:00,4.00\n")
    tx = load(path, "generic", generic={**MAPPING, "spend_is": "negative", "ts_format": "%d/%m/%Y %H:%M"})
    df = tx.to_pandas()
    assert df["amount"].tolist() == [12.5, -4.0]
    assert df["ts"].tolist() == [dt.datetime(2021, 12, 30, 3, 40, tzinfo=UTC),
                                 dt.datetime(2021, 12, 31, 23, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("ts_type", "values", "zone"),
    [
        (pa.timestamp("us", tz="UTC"), [dt.datetime(2021, 12, 31, 23, 30, tzinfo=UTC)], "UTC"),
        (pa.timestamp("us", tz="America/New_York"), [dt.datetime(2021, 12, 31, 23, 30, tzinfo=UTC)], "UTC"),
        (pa.timestamp("us"), [dt.datetime(2021, 12, 31, 23, 30)], "UTC"),
        (pa.timestamp("ms"), [dt.datetime(2021, 12, 31, 18, 30)], "America/New_York"),
        (pa.string(), ["2021-12-31 18:30:00"], "America/New_York"),
    ],
    ids=["aware-utc", "aware-ny-annotation", "naive-utc", "naive-local-ny", "string-local-ny"],
)
def test_parquet_timestamps_become_utc_wall_time(tmp_path, ts_type, values, zone):
    """Aware instants keep their instant; naive values are read in ``reader.timezone``."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"customer": ["u1"], "when": pa.array(values, ts_type), "value": [1.0]}), path)
    tx = load(path, "generic", timezone=zone, generic=MAPPING)
    assert tx.to_pandas()["ts"].tolist() == [dt.datetime(2021, 12, 31, 23, 30, tzinfo=UTC)]
