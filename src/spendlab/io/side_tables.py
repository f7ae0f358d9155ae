"""Side tables joined to the transactions by key (the user table, product lookups): one way to read them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from spendlab.errors import InputFileError


def read_side_table(path: Path, columns: list[str], *, what: str, setting: str) -> tuple[pa.Table, int]:
    """Read ``columns`` of a CSV (as text) or Parquet side table.

    Parameters
    ----------
    path : pathlib.Path
        The table; ``.parquet``/``.pq`` is Parquet, anything else CSV with a header line.
    columns : list of str
        The columns to read; a missing one is refused naming the file and the column.
    what : str
        What the table is, for messages ("the user table").
    setting : str
        The config setting that names the table, for messages ("dataset.users").

    Returns
    -------
    tuple of (pyarrow.Table, int)
        The columns as read, and the line number of the first row (2 for CSV, 1 for Parquet).

    Raises
    ------
    InputFileError
        The file cannot be read, or lacks a column.
    """
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            names = pq.read_schema(path).names
        else:
            names = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(str(path), "CORRUPT_FILE", f"cannot read {what}: {exc}") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputFileError(str(path), "SCHEMA_MISSING_COLUMN", f"missing column(s) {missing}; found {names} "
                             f"(check {setting} in the config)", column=missing[0])
    if parquet:
        return pq.read_table(path, columns=columns), 1
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}, include_columns=columns,
                                   strings_can_be_null=False)
    return pacsv.read_csv(path, convert_options=convert), 2
