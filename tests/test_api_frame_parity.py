"""One policy for every way in: a DataFrame given to the Python API is validated as a CSV file and a
Parquet file holding the same rows are (a differential property test, plus the modes and columns)."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import spendlab
from spendlab.config import ReaderConfig
from spendlab.errors import ConfigError, InputFileError, RowError, SpendlabError
from spendlab.io import load_transactions
from tests.io.test_reader_parity import (
    CON,
    CONFIGS,
    HOSTILE_AMOUNTS,
    HOSTILE_TS,
    HOSTILE_USERS,
    PARITY,
    _write_csv,
    typed_table,
)

UTC = dt.UTC


def _config(cfg: dict) -> ReaderConfig:
    rest = {k: v for k, v in cfg.items() if k != "spend_is"}
    return ReaderConfig(**rest, generic={"spend_is": cfg["spend_is"]})


def _file_outcome(path: Path, config: ReaderConfig, first_line: int) -> tuple[list, list]:
    tx = load_transactions(str(path), "generic", config=config, con=CON)
    tx.register(CON, "parity_file")
    rows = [(line - first_line, user, ts.replace(tzinfo=UTC), amount) for line, user, ts, amount in
            CON.execute("SELECT line, user_id, ts, amount FROM parity_file").fetchall()]
    return sorted(rows), sorted((r.line - first_line, r.error_type, r.column) for r in tx.report.rejects)


def _frame_outcome(df: pd.DataFrame, config: ReaderConfig, offset: int) -> tuple[list, list]:
    loaded = spendlab.load(df, reader=config)
    f = loaded.files.iloc[0]
    assert f["file"] == "dataframe" and f["rows_in"] == f["accepted"] + f["rejected"] == len(df)
    t = loaded.transactions
    rows = [(int(line) - 1, user, ts.to_pydatetime(), amount)
            for line, user, ts, amount in zip(t["line"], t["user_id"], t["ts"], t["amount"], strict=True)]
    rejects = sorted((int(r.line) - offset, r.error_type, r.column) for r in loaded.rejects.itertuples())
    assert set(loaded.rejects["file"]) <= {"dataframe"}
    return sorted(rows), rejects


def _compare(df: pd.DataFrame, users: list[str], ts: list[str], amounts: list[str], cfg: dict,
             typed: pa.Table | None, offset: int) -> None:
    config = _config(cfg)
    df.index = pd.RangeIndex(offset, offset + len(df))  # rejects name index labels, whatever they start at
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _write_csv(d / "t.csv", users, ts, amounts)
        expected = _file_outcome(d / "t.csv", config, first_line=2)
        if typed is not None:
            pq.write_table(typed, d / "typed.parquet")
            assert _file_outcome(d / "typed.parquet", config, first_line=1) == expected
        else:
            pq.write_table(pa.table({"user_id": pa.array([u or None for u in users], pa.string()),
                                     "ts": pa.array([t or None for t in ts], pa.string()),
                                     "amount": pa.array([a or None for a in amounts], pa.string())}), d / "s.parquet")
            assert _file_outcome(d / "s.parquet", config, first_line=1) == expected
    assert _frame_outcome(df, config, offset) == expected, "the DataFrame differs from CSV and Parquet"


@PARITY
@given(st.one_of(typed_table(), st.none()), st.data(), CONFIGS, st.integers(0, 1000))
def test_dataframe_csv_and_parquet_give_identical_rows_and_rejects(typed, data, cfg, offset) -> None:
    if typed is None:  # hostile text in every column, the frame holding the same strings (None for empty)
        n = data.draw(st.integers(1, 6))
        users = [data.draw(st.sampled_from(HOSTILE_USERS)) for _ in range(n)]
        ts = [data.draw(st.sampled_from([t for t in HOSTILE_TS if "\n" not in t])) for _ in range(n)]
        amounts = [data.draw(st.sampled_from(HOSTILE_AMOUNTS)) for _ in range(n)]
        df = pd.DataFrame({"user_id": pd.Series([u or None for u in users], dtype=object),
                           "ts": pd.Series([t or None for t in ts], dtype=object),
                           "amount": pd.Series([a or None for a in amounts], dtype=object)})
        _compare(df, users, ts, amounts, cfg, None, offset)
        return
    ts_kind, amount_kind, _annotation, users, ts, amounts = typed
    # pandas' missing float is NaN (what to_csv writes as an empty field): a NaN amount is "missing" in a frame
    amounts = [None if isinstance(a, float) and a != a else a for a in amounts]
    ts_type = {"aware": pa.timestamp("us", tz="UTC"), "naive": pa.timestamp("us"), "date": pa.date32()}[ts_kind]
    amount_type = {"float": pa.float64(), "decimal": pa.decimal128(18, 3), "int": pa.int64()}[amount_kind]
    values = [None if a is None else (Decimal(a).quantize(Decimal("0.001")) if amount_kind == "decimal" else a)
              for a in amounts]
    table = pa.table({"user_id": pa.array(users, pa.int64()), "ts": pa.array(ts, ts_type),
                      "amount": pa.array(values, amount_type)})
    df = pd.DataFrame({"user_id": pd.Series(users, dtype=object), "ts": pd.Series(ts, dtype=object),
                       "amount": pd.Series(values, dtype=object)})
    text_ts = ["" if t is None else (t.isoformat(sep=" ") if ts_kind != "date" else t.isoformat()) for t in ts]
    text_amounts = ["" if a is None else (repr(a) if amount_kind == "float" else str(a)) for a in values]
    _compare(df, ["" if u is None else str(u) for u in users], text_ts, text_amounts, cfg, table, offset)


ROWS = {"user_id": ["u1", " u1 ", "u\x002", "7"], "ts": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-02-30"],
        "amount": ["1.00", "abc", "2.00", "3.00"]}


def test_strict_mode_names_the_frame_the_row_index_label_and_the_column() -> None:
    df = pd.DataFrame(ROWS, index=[10, 11, 12, 13])
    with pytest.raises(RowError) as err:
        spendlab.load(df, mode="strict")
    assert str(err.value).startswith("strict mode: dataframe, row index 11, column 'amount': AMOUNT_FORMAT")
    assert "spendlab-frame-" not in str(err.value) and "\n" not in str(err.value)


def test_collect_mode_fails_after_listing_every_bad_row_and_quarantine_keeps_the_rest() -> None:
    df = pd.DataFrame(ROWS)
    with pytest.raises(SpendlabError, match="3") as err:
        spendlab.load(df, mode="collect")
    assert "spendlab-frame-" not in str(err.value)
    loaded = spendlab.load(df)
    assert list(loaded.rejects["line"]) == [1, 2, 3]
    assert list(loaded.rejects["error_type"]) == ["AMOUNT_FORMAT", "INVALID_KEY", "DATE_PARSE"]
    assert loaded.transactions["user_id"].tolist() == ["u1"] and loaded.summary["users"] == 1


def test_the_seven_rows_of_the_report_give_the_same_users_through_the_api_and_the_csv_reader(tmp_path: Path) -> None:
    users = ["7", " 7", "7\xa0", "\u200b7", "7\x01", "7.0", "8"]
    df = pd.DataFrame({"user_id": users, "ts": ["2024-01-02"] * 7, "amount": ["1.00"] * 7})
    _write_csv(tmp_path / "a.csv", users, ["2024-01-02"] * 7, ["1.00"] * 7)
    from_csv = spendlab.load(str(tmp_path / "a.csv"))
    from_frame = spendlab.load(df)
    assert from_frame.summary["users"] == from_csv.summary["users"] == 3  # "7", "7.0", "8"
    assert sorted(from_frame.transactions["user_id"]) == sorted(from_csv.transactions["user_id"])


@pytest.mark.parametrize("column", ["amount", "user_id", "ts"])
def test_duplicate_column_names_are_refused_in_one_line(column: str) -> None:
    df = pd.DataFrame([["u1", "2024-01-02", "1.00", "x"]], columns=["user_id", "ts", "amount", column])
    with pytest.raises(ConfigError, match=rf"duplicate column name\(s\) \['{column}'\]") as err:
        spendlab.describe_transactions(df)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("column", "values"), [("amount", [True]), ("ts", [True]), ("user_id", [True]),
                                                  ("amount", [[1.0]])])
def test_booleans_and_nested_values_are_refused_like_parquet(column: str, values: list) -> None:
    df = pd.DataFrame({"user_id": ["u1"], "ts": ["2024-01-02"], "amount": [1.0]})
    df[column] = pd.Series(values, dtype=object if column != "user_id" else bool)
    with pytest.raises(InputFileError) as err:
        spendlab.load(df)
    assert err.value.error_type == "UNSUPPORTED_TYPE" and str(err.value).startswith("dataframe, column")


def test_float_ids_read_as_to_csv_prints_them(tmp_path: Path) -> None:
    df = pd.DataFrame({"user_id": [7.0, None, 8.5], "ts": ["2024-01-02"] * 3, "amount": [1.0, 2.0, 3.0]})
    df.to_csv(tmp_path / "a.csv", index=False)
    from_csv, from_frame = spendlab.load(str(tmp_path / "a.csv")), spendlab.load(df)
    assert from_frame.transactions["user_id"].tolist() == from_csv.transactions["user_id"].tolist() == ["7.0", "8.5"]
    assert list(from_frame.rejects["error_type"]) == list(from_csv.rejects["error_type"]) == ["NULL_KEY"]


def test_the_frame_is_not_modified() -> None:
    df = pd.DataFrame(ROWS)
    before = df.copy()
    spendlab.describe_transactions(df, top_n=3)
    pd.testing.assert_frame_equal(df, before)
