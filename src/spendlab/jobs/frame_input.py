"""A pandas DataFrame as an input: read under exactly the policy of a generic Parquet file.

The frame's mapped columns are written to a temporary Parquet file with their own types kept
(strings stay strings, integers integers, decimals decimals, timestamps timestamps) and read by the
generic reader, so ids, amounts, timestamps, windows, types and the validation mode (strict,
collect, quarantine) follow one rule for every way in. Two conversions make a frame behave like
the CSV a user would export from it: a float id column (integers with a missing value become
floats in pandas) and an object column mixing Python types are written as their ``str`` text,
as ``DataFrame.to_csv`` prints them. Rejects name the frame (``file`` = the frame's name) and the
row's **index label** (``line``); the accepted rows' ``line`` is the 1-based row position.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.config import GenericMapping, ReaderConfig
from spendlab.errors import ConfigError, SpendlabError
from spendlab.io.load import Transactions, connect, load_transactions
from spendlab.io.rejects import LoadReport, Mode, RejectRecord
from spendlab.schema import FILE_COL

if TYPE_CHECKING:
    import duckdb


class FrameTransactions(Transactions):
    """Transactions built from a DataFrame: identified by a hash of their rows (there is no file)."""

    def content_hash(self) -> str:
        """Return the SHA-256 of the accepted rows (Arrow IPC stream)."""
        assert self.table is not None
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def frame_mapping(reader: ReaderConfig, *, user_col: str, time_col: str, amount_col: str) -> ReaderConfig:
    """Return ``reader`` with the column names given as keywords (a non-default keyword wins)."""
    default = GenericMapping()
    update = {k: v for k, v, d in (("user_col", user_col, default.user_col), ("ts_col", time_col, default.ts_col),
                                   ("amount_col", amount_col, default.amount_col)) if v != d}
    if not update:
        return reader
    return reader.model_copy(update={"generic": reader.generic.model_copy(update=update)})


def _columns(mapping: GenericMapping) -> list[str]:
    cols = [mapping.user_col, mapping.ts_col, mapping.amount_col, mapping.quantity_col, mapping.unit_price_col,
            mapping.order_col, *mapping.include, *mapping.exclude]
    return list(dict.fromkeys(c for c in cols if c))


def _text(values: pd.Series) -> pa.Array:
    return pa.array([None if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT
                     else str(v) for v in values], pa.string())


def _arrow_column(values: pd.Series, *, is_user: bool) -> pa.Array:
    """One column as Arrow with its own type; float ids and mixed object columns as their text."""
    if is_user and pd.api.types.is_float_dtype(values.dtype):
        return _text(values.astype(object))
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return _text(values.astype(object))


def check_frame_columns(df: pd.DataFrame, mapping: GenericMapping) -> list[str]:
    """Return the mapped columns of ``df``; refuse duplicate names and missing columns in one line.

    Raises
    ------
    ConfigError
        Two columns share a name, or a mapped column is missing.
    """
    names = [str(c) for c in df.columns]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"DataFrame has duplicate column name(s) {dups}: rename them so each column is one value")
    cols = _columns(mapping)
    missing = [c for c in cols if c not in names]
    if missing:
        raise ConfigError(f"DataFrame is missing required column(s) {missing}; found {names} "
                          f"(name them with user_col=, time_col=, amount_col=)")
    return cols


def _rename(text: str, path: Path, labels: pd.Index, name: str) -> str:
    """Put the frame's name and row index labels where the temporary file and its row numbers appear."""
    def label(m: re.Match[str]) -> str:
        line = int(m.group(1))
        if not 0 < line <= len(labels):
            return f"{name}, row {line - 1}"
        value = _label(labels, line)
        return f"{name}, row index {value if isinstance(value, int) else repr(value)}"

    text = re.sub(re.escape(str(path)) + r", line (\d+)", label, text)
    return text.replace(str(path), name)


def _label(labels: pd.Index, line: int) -> Any:
    value = labels[line - 1]
    return int(value) if pd.api.types.is_integer(value) else value


def load_frame(df: pd.DataFrame, *, reader: ReaderConfig, mode: Mode, name: str = "dataframe",
               con: duckdb.DuckDBPyConnection | None = None) -> FrameTransactions:
    """Validate a DataFrame exactly as the generic reader validates a Parquet file.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per transaction (or per order line with a line-item mapping); not modified.
    reader : ReaderConfig
        The reader policy; ``reader.generic`` maps the columns.
    mode : Mode
        ``quarantine``, ``collect`` or ``strict``.
    name : str
        What the report and the rejects call the frame.
    con : duckdb.DuckDBPyConnection, optional
        The connection to validate on (default: a new one, used for the scan and the read-back).

    Returns
    -------
    FrameTransactions
        The accepted rows (materialised) and the report, whose rejects name row index labels.

    Raises
    ------
    SpendlabError
        Duplicate or missing columns, a column of a type no reader takes, or a bad row in strict
        or collect mode; the message names the frame, the row index and the column.
    """
    cols = check_frame_columns(df, reader.generic)
    frame = df.loc[:, [c for c in df.columns if str(c) in cols]]
    table = pa.table({str(c): _arrow_column(frame[c], is_user=str(c) == reader.generic.user_col)
                      for c in frame.columns})
    labels = df.index
    with tempfile.TemporaryDirectory(prefix="spendlab-frame-") as tmp:
        path = Path(tmp) / f"{name}.parquet"
        pq.write_table(table, path)
        con = con or connect()
        try:
            tx = load_transactions(str(path), "generic", config=reader, mode=mode, con=con)
            rows = tx.to_arrow(con)
        except SpendlabError as exc:
            exc.args = (_rename(str(exc), path, labels, name),)
            raise
    rows = rows.set_column(rows.schema.get_field_index(FILE_COL), FILE_COL, pa.array([name] * rows.num_rows, pa.string()))
    report = LoadReport()
    for f in tx.report.files:
        f.file = name
        report.files.append(f)
    report.rejects = [RejectRecord(name, _label(labels, r.line), r.column, r.error_type, r.raw,
                                   _rename(r.message, path, labels, name), r.byte_offset, r.record)
                      for r in tx.report.rejects]
    return FrameTransactions(name, report, table=rows, config=reader)

