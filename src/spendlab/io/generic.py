"""Generic inputs: any CSV or Parquet with a column mapping and a sign convention.

CSV goes through the same physical-line reader as the other text formats. Parquet (the format
of large inputs) lives in :mod:`spendlab.io.parquet`: the same value rules, applied per distinct
value and joined in DuckDB.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError
from spendlab.io.attributes import line_values
from spendlab.io.collect import RowBuilder, RowExcluded, field, read_header_csv
from spendlab.io.lineitems import OrderBook, kept, line_amount
from spendlab.io.lookups import LookupTable, line_lookups
from spendlab.io.parquet import MappingColumnError, check_parquet_files, scan_parquet, schema_drift
from spendlab.io.parsing import (
    as_float,
    check_window,
    normalise_user_id,
    parse_decimal,
    timestamp_parser,
)
from spendlab.io.records import Record
from spendlab.io.rejects import RejectSink
from spendlab.sqltext import quote

__all__ = ["MappingColumnError", "check_parquet_files", "parquet_select", "read_generic_csv", "scan_parquet",
           "schema_drift"]


def read_generic_csv(  # long: one closure per row keeps the check order of every policy in one place
    path: Path, config: ReaderConfig, sink: RejectSink, rows: RowBuilder, orders: OrderBook | None = None,
    lookups: list[LookupTable] | None = None,
) -> None:
    """Read one generic CSV into ``rows`` using ``config.generic``.

    Include/exclude rules run first (an excluded row is counted, never validated). With
    ``orders`` (the mapping has ``order_col``) each accepted line goes to the order book instead
    of ``rows``; :mod:`spendlab.io.lineitems` turns the book into one row per order. ``lookups``
    (:mod:`spendlab.io.lookups`) add their columns to each line's attributes by key.
    """
    m = config.generic
    sign = Decimal(1) if m.spend_is == "positive" else Decimal(-1)
    parse_ts = timestamp_parser(m.ts_format, zone=config.timezone, dst_policy=config.dst_policy,
                                unit=m.ts_unit, origin=m.epoch)
    window_end = config.window_end or dt.date.today()
    report = sink.file_report
    def line_value(row: dict[str, str]) -> Decimal:
        if m.amount_col is None:
            return line_amount(row[m.quantity_col], row[m.unit_price_col], m, config)  # type: ignore[index]
        return field(m.amount_col, lambda: parse_decimal(row[m.amount_col], thousands=config.thousands,  # type: ignore[return-value]
                                                         max_abs=config.max_abs_amount, sub_cent=config.sub_cent))

    def parse_row(row: dict[str, str], rec: Record) -> None:
        for col in (*m.include, *m.exclude):
            if not kept(row[col], col, m):
                raise RowExcluded(col)
        user = field(m.user_col, lambda: normalise_user_id(row[m.user_col]))
        value = line_value(row)
        ts = field(m.ts_col, lambda: parse_ts(row[m.ts_col]))
        field(m.ts_col, lambda: check_window(ts, config.window_start, window_end))  # type: ignore[arg-type]
        attrs = line_values(row, m, config, exact=orders is not None) if m.attributes else None
        keys: list[str | None] = []
        if lookups:
            looked_up, keys = line_lookups(row, lookups)
            attrs = {**(attrs or {}), **looked_up}
        exact = sign * value
        if exact < 0:
            report.warnings["REFUND"] += 1
        if orders is not None:
            field(m.order_col, lambda: orders.add(row[m.order_col], user, ts, exact, str(path), rec.line,  # type: ignore[arg-type,index]
                                                  attrs))
        else:
            rows.add(user, ts, as_float(exact), rec.line, attributes=attrs)  # type: ignore[arg-type]
        for table, key in zip(lookups or (), keys, strict=True):
            table.count(key)

    try:
        read_header_csv(path, m.required_columns(), parse_row, config, sink)
    except InputFileError as exc:
        if exc.error_type not in {"SCHEMA_MISSING_COLUMN", "HEADER_MISMATCH"} or isinstance(exc, MappingColumnError):
            raise
        message = str(exc).split(f"{exc.error_type}: ", 1)[-1]
        raise MappingColumnError(exc.file, exc.error_type, f"{message} (check reader.generic in the config)",
                                 line=exc.line, column=exc.column) from None


def parquet_select(files: list[Path], config: ReaderConfig, types: dict[str, pa.DataType]) -> tuple[str, str]:
    """Return SQL for the canonical rows of Parquet ``files`` and the per-row error expression.

    Only the Spark engine still uses this (its error expression, transpiled, over canonical Parquet
    that ``spendlab validate`` wrote). The DuckDB reader applies the full CSV policies instead:
    :mod:`spendlab.io.parquet`.
    """
    m = config.generic
    u, t, a = quote(m.user_col), quote(m.ts_col), quote(m.amount_col)
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
        "WHEN amount IS NULL THEN 'EMPTY_FIELD' "  # a null is an empty field, as in the CSV and Parquet readers
        "WHEN isnan(amount) OR isinf(amount) THEN 'NON_FINITE' "
        f"WHEN abs(amount) > {float(config.max_abs_amount)!r} THEN 'OUT_OF_RANGE' "
        "ELSE NULL END"
    )
    return base, error
