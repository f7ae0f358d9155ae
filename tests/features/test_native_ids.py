"""Integer ids stay int64 from the Parquet reader to the feature build, and come out as the same text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.features import build_features_arrow
from spendlab.io import load_transactions
from spendlab.io.load import connect


def _int_id_parquet(path: Path) -> Path:
    # ids 9, 10, 100 sort differently as numbers and as text: the output keeps the text order
    table = pa.table({
        "user_id": pa.array([10, 9, 100, 9, 10, 100], pa.int64()),
        "ts": pa.array([dt.datetime(2024, 1, d, 12) for d in (2, 3, 5, 9, 20, 28)], pa.timestamp("us", "UTC")),
        "amount": [10.0, 20.0, 5.5, -3.0, 7.25, 1.0],
    })
    pq.write_table(table, path)
    return path


def test_canonical_view_is_text_unless_native_ids_are_asked_for(tmp_path: Path) -> None:
    tx = load_transactions(str(_int_id_parquet(tmp_path / "ids.parquet")), "generic")
    con = connect()
    tx.register(con)
    assert con.execute("SELECT typeof(user_id) FROM transactions LIMIT 1").fetchone()[0] == "VARCHAR"
    tx.register(con, "native", native_ids=True)
    assert con.execute("SELECT typeof(user_id) FROM native LIMIT 1").fetchone()[0] == "BIGINT"
    assert tx.to_arrow().schema.field("user_id").type == pa.string()


def test_features_of_native_int_ids_equal_those_of_their_text(tmp_path: Path) -> None:
    tx = load_transactions(str(_int_id_parquet(tmp_path / "ids.parquet")), "generic")
    con = connect()
    tx.register(con, "text_ids")
    tx.register(con, "int_ids", native_ids=True)
    as_of = dt.date(2024, 1, 31)
    text = build_features_arrow(con, freq="month", as_of=as_of, view="text_ids")
    native = build_features_arrow(con, freq="month", as_of=as_of, view="int_ids")
    assert native.schema.field("user_id").type == pa.string()
    assert native.column("user_id").to_pylist() == ["10", "100", "9"]
    assert native.equals(text)
