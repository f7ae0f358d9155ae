"""Generic inputs: any CSV or Parquet with a column mapping and a sign convention.

CSV goes through the same physical-line reader as the other text formats. Parquet (the format
of large inputs) is validated and canonicalised in DuckDB, never row by row in Python: a
per-file footer check, one aggregate pass that counts rejects per file and error type, and a
SQL view that keeps only the valid rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.config import GenericMapping, ReaderConfig
from spendlab.errors import ConfigError, InputFileError
from spendlab.io.collect import RowBuilder, RowReject, field, read_header_csv
from spendlab.io.parsing import UTC, FieldError, check_window, localize, parse_amount, parse_timestamp
from spendlab.io.records import Record
from spendlab.io.rejects import FileReport, LoadReport, RejectRecord, RejectSink


class MappingColumnError(InputFileError, ConfigError):
    """The generic mapping names a column the file does not have: a file error and a config error.

    Raised from the header or the Parquet footer, before any row is read or any SQL runs.
    """


def _ts_parser(mapping: GenericMapping, config: ReaderConfig):  # noqa: ANN202
    if mapping.ts_format is None:
        return lambda text: parse_timestamp(text, zone=config.timezone, dst_policy=config.dst_policy)[0]

    def parse(text: str) -> dt.datetime:
        try:
            value = dt.datetime.strptime(text.strip(), mapping.ts_format)  # type: ignore[arg-type]
        except ValueError as exc:
            raise FieldError("DATE_PARSE", f"timestamp {text!r} does not match {mapping.ts_format!r}: {exc}") from None
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return localize(value, config.timezone, config.dst_policy)

    return parse


def read_generic_csv(path: Path, config: ReaderConfig, sink: RejectSink, rows: RowBuilder) -> None:
    """Read one generic CSV into ``rows`` using ``config.generic``."""
    m = config.generic
    sign = 1.0 if m.spend_is == "positive" else -1.0
    parse_ts = _ts_parser(m, config)
    window_end = config.window_end or dt.date.today()
    report = sink.file_report

    def parse_row(row: dict[str, str], rec: Record) -> None:
        user = row[m.user_col].strip()
        if not user:
            raise RowReject(m.user_col, FieldError("NULL_KEY", f"{m.user_col} is empty"))
        value = field(m.amount_col, lambda: parse_amount(row[m.amount_col], thousands=config.thousands,
                                                         max_abs=config.max_abs_amount, sub_cent=config.sub_cent))
        ts = field(m.ts_col, lambda: parse_ts(row[m.ts_col]))
        field(m.ts_col, lambda: check_window(ts, config.window_start, window_end))  # type: ignore[arg-type]
        amount = sign * value + 0.0  # type: ignore[operator]
        if amount < 0:
            report.warnings["REFUND"] += 1
        rows.add(user, ts, amount, rec.line)  # type: ignore[arg-type]

    try:
        read_header_csv(path, (m.user_col, m.ts_col, m.amount_col), parse_row, config, sink)
    except InputFileError as exc:
        if exc.error_type not in {"SCHEMA_MISSING_COLUMN", "HEADER_MISMATCH"} or isinstance(exc, MappingColumnError):
            raise
        message = str(exc).split(f"{exc.error_type}: ", 1)[-1]
        raise MappingColumnError(exc.file, exc.error_type, f"{message} (check reader.generic in the config)",
                                 line=exc.line, column=exc.column) from None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_parquet_files(files: list[Path], mapping: GenericMapping, strict: bool) -> dict[str, pa.DataType]:
    """Read every footer; fail a corrupt file, list schema drift per column and file.

    Returns the Arrow type of each mapped column (the first file's). ``user_id`` stored as an
    integer in some files is read as a string with a warning, or fails in strict mode.
    """
    types: dict[str, dict[str, pa.DataType]] = {}
    for f in files:
        try:
            schema = pq.read_schema(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFileError(str(f), "CORRUPT_PARQUET", f"not a readable Parquet file: {exc}") from None
        missing = [c for c in (mapping.user_col, mapping.ts_col, mapping.amount_col) if c not in schema.names]
        if missing:
            raise MappingColumnError(str(f), "SCHEMA_MISSING_COLUMN",
                                     f"missing column(s) {missing}; found {schema.names} "
                                     "(check reader.generic in the config)", column=missing[0])
        types[str(f)] = {c: schema.field(c).type for c in (mapping.user_col, mapping.ts_col, mapping.amount_col)}
    drift = schema_drift(types, (mapping.user_col, mapping.ts_col, mapping.amount_col))
    if drift and strict:
        raise InputFileError(str(files[0].parent), "SCHEMA_DRIFT", "; ".join(drift))
    first = next(iter(types.values()))
    if len({str(t[mapping.user_col]) for t in types.values()}) > 1:
        first = {**first, mapping.user_col: pa.string()}  # ids stored as int in some files only: read as text
    return {**first, "_drift": drift}  # type: ignore[dict-item]


def schema_drift(types: dict[str, dict[str, pa.DataType]], columns: tuple[str, ...]) -> list[str]:
    """One line per mapped column whose Arrow type differs across files, listing every file's type."""
    drift: list[str] = []
    for col in columns:
        kinds = {str(t[col]) for t in types.values()}
        if len(kinds) > 1:
            per_file = ", ".join(f"{Path(f).name}: {t[col]}" for f, t in types.items())
            drift.append(f"column {col!r} differs across files ({per_file})")
    return drift


def parquet_select(files: list[Path], config: ReaderConfig, types: dict[str, pa.DataType]) -> tuple[str, str]:
    """SQL for the canonical rows of Parquet ``files`` and the per-row error expression."""
    m = config.generic
    u, t, a = _quote(m.user_col), _quote(m.ts_col), _quote(m.amount_col)
    sign = "1.0" if m.spend_is == "positive" else "-1.0"
    file_list = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    ts_type = types[m.ts_col]
    tz = config.timezone.replace("'", "''")
    # make_timestamp(epoch_us(x)) turns an instant into UTC wall time; it is an order of magnitude
    # faster than CAST(x AS TIMESTAMP), which goes through ICU's time-zone machinery per value.
    if pa.types.is_timestamp(ts_type) and ts_type.tz is not None:
        ts_expr = f"make_timestamp(epoch_us({t}))"
    elif (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)) and config.timezone == "UTC":
        ts_expr = f"CAST({t} AS TIMESTAMP)"
    elif pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type):
        ts_expr = f"make_timestamp(epoch_us(timezone('{tz}', CAST({t} AS TIMESTAMP))))"
    else:
        ts_expr = f"make_timestamp(epoch_us(timezone('{tz}', TRY_CAST({t} AS TIMESTAMP))))"
    # Integer ids keep their type: an int64 key hashes, groups and joins far faster than its text
    # (Transactions.register casts them to text unless asked for native ids). Text ids have
    # surrounding spaces trimmed (as in the CSV readers), but only where there are any.
    native_ids = pa.types.is_integer(types.get(m.user_col, pa.string()))
    user = f"CAST({u} AS VARCHAR)"
    user_expr = u if native_ids else (
        f"CASE WHEN starts_with({user}, ' ') OR ends_with({user}, ' ') THEN trim({user}) ELSE {user} END")
    null_key = "user_id IS NULL" if native_ids else "user_id IS NULL OR user_id = ''"
    window_end = config.window_end or dt.date.today()
    src = (f"read_parquet({file_list}, filename=true, file_row_number=true, union_by_name=true)")
    base = (
        f"SELECT {user_expr} AS user_id, {ts_expr} AS ts, "
        f"{sign} * TRY_CAST({a} AS DOUBLE) AS amount, CAST(NULL AS BIGINT) AS n_items, "
        f"filename AS source_file, CAST(file_row_number + 1 AS BIGINT) AS line FROM {src}"
    )
    error = (
        f"CASE WHEN {null_key} THEN 'NULL_KEY' "
        "WHEN ts IS NULL THEN 'DATE_PARSE' "
        f"WHEN ts < TIMESTAMP '{config.window_start}' OR ts >= TIMESTAMP '{window_end}' + INTERVAL 1 DAY "
        "THEN 'OUT_OF_WINDOW' "
        "WHEN amount IS NULL OR isnan(amount) OR isinf(amount) THEN 'NON_FINITE' "
        f"WHEN abs(amount) > {float(config.max_abs_amount)!r} THEN 'OUT_OF_RANGE' "
        "ELSE NULL END"
    )
    return base, error


def scan_parquet(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    config: ReaderConfig,
    report: LoadReport,
    strict: bool,
    types: dict[str, pa.DataType] | None = None,
) -> str:
    """Count rows and rejects per file in one pass; return the SQL of the valid canonical rows.

    ``types`` is :func:`check_parquet_files`' result when the caller already checked the footers.
    """
    if types is None:
        types = check_parquet_files(files, config.generic, strict)
    base, error = parquet_select(files, config, types)
    counts = con.execute(
        f"SELECT source_file, error, count(*) FROM (SELECT source_file, {error} AS error FROM ({base})) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    by_file: dict[str, FileReport] = {str(f): FileReport(str(f)) for f in files}
    for name, err, n in counts:
        by_file.setdefault(name, FileReport(name)).count(err, n)
    drift = types.get("_drift") or []
    if drift:
        for fr in by_file.values():
            fr.warnings["SCHEMA_DRIFT"] += 1
            fr.notes.extend(drift)
    report.files.extend(by_file.values())
    if any(fr.rejected for fr in by_file.values()):
        bad = con.execute(
            f"SELECT source_file, line, {error} AS error, user_id, CAST(ts AS VARCHAR), amount FROM ({base}) "
            f"WHERE {error} IS NOT NULL ORDER BY source_file, line"
        ).fetchall()
        for name, line, err, user, ts, amount in bad:
            column = {"NULL_KEY": config.generic.user_col, "DATE_PARSE": config.generic.ts_col,
                      "OUT_OF_WINDOW": config.generic.ts_col}.get(err, config.generic.amount_col)
            raw = f"{user},{ts},{amount}"
            message = f"{err} in row {line} of {name}"
            report.rejects.append(RejectRecord(name, line, column, err, raw, message, -1, line))
    return f"SELECT * EXCLUDE (error) FROM (SELECT *, {error} AS error FROM ({base})) WHERE error IS NULL"
