"""Shared driver for header-CSV readers and the builder of canonical Arrow tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError
from spendlab.io.parsing import FieldError
from spendlab.io.records import BadRecord, Blank, Record, iter_records
from spendlab.io.rejects import FileReport, Mode, RejectRecord, RejectSink
from spendlab.schema import CANONICAL_SCHEMA

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class RowBuilder:
    """Accumulates canonical rows column by column (cheap) and turns them into an Arrow table."""

    def __init__(self, attributes: Sequence[pa.Field] = ()) -> None:
        self.user_id: list[str] = []
        self.ts_us: list[int] = []
        self.amount: list[float] = []
        self.n_items: list[int | None] = []
        self.line: list[int] = []
        self.attribute_fields = list(attributes)  # extra columns after the canonical ones
        self.attributes: dict[str, list[object]] = {f.name: [] for f in self.attribute_fields}

    def add(self, user_id: str, ts: dt.datetime, amount: float, line: int, n_items: int | None = None,
            attributes: dict[str, object] | None = None) -> None:
        """Append one canonical row (``ts`` is stored as µs since the epoch, UTC)."""
        delta = ts - _EPOCH
        self.user_id.append(user_id)
        self.ts_us.append((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
        self.amount.append(amount)
        self.n_items.append(n_items)
        self.line.append(line)
        for name, values in self.attributes.items():
            values.append(None if attributes is None else attributes[name])

    def pop(self) -> None:
        """Remove the last row added."""
        for col in (self.user_id, self.ts_us, self.amount, self.n_items, self.line, *self.attributes.values()):
            col.pop()

    def __len__(self) -> int:
        return len(self.user_id)

    def table(self, file: str) -> pa.Table:
        """Return the rows as an Arrow table of the canonical schema, ``source_file`` set to ``file``."""
        n = len(self)
        return pa.table(
            [
                pa.array(self.user_id, pa.string()),
                pa.array(self.ts_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                pa.array(self.amount, pa.float64()),
                pa.array(self.n_items, pa.int64()),
                pa.array([file] * n, pa.string()),
                pa.array(self.line, pa.int64()),
                *(pa.array(self.attributes[f.name], f.type) for f in self.attribute_fields),
            ],
            schema=pa.schema([*CANONICAL_SCHEMA, *self.attribute_fields]),
        )


RowParser = Callable[[dict[str, str], Record], None]


def check_header(
    path: Path,
    header: Record,
    required: Sequence[str],
    config: ReaderConfig,
    file_report: FileReport,
    *,
    strict: bool = False,
) -> dict[str, int]:
    """Map required column names to positions; fail the file on a wrong or duplicate header.

    Extra columns are a warning listed in ``file_report.notes``; they fail the file when
    ``config.extra_columns == "error"`` or in strict mode.
    """
    names = [h.strip() for h in header.fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(str(path), "DUPLICATE_HEADER", f"duplicate column name(s) {dupes}", line=header.line)
    missing = [c for c in required if c not in names]
    if len(missing) == len(required) and len(required) > 1:
        raise InputFileError(
            str(path),
            "HEADER_MISMATCH",
            f"expected columns {list(required)} separated by commas, found {names} "
            "(is the delimiter a comma?)",
            line=header.line,
        )
    if missing:
        raise InputFileError(
            str(path),
            "SCHEMA_MISSING_COLUMN",
            f"missing required column(s) {missing}; found {names}",
            line=header.line,
            column=missing[0],
        )
    extra = [n for n in names if n not in required]
    if extra:
        if config.extra_columns == "error" or strict:
            raise InputFileError(str(path), "EXTRA_COLUMNS", f"unexpected column(s) {extra}; expected {list(required)}",
                                 line=header.line, column=extra[0])
        file_report.warnings["EXTRA_COLUMNS"] += len(extra)
        file_report.notes.append(f"extra column(s) ignored: {extra}")
    return {name: i for i, name in enumerate(names)}


def read_header_csv(
    path: Path,
    required: Sequence[str],
    parse_row: RowParser,
    config: ReaderConfig,
    sink: RejectSink,
) -> None:
    """Drive a header CSV: header check, field-count check, then ``parse_row`` per record.

    ``parse_row`` raises :class:`FieldError` (with the column in ``exc.args``) to reject a row.
    """
    file_report = sink.file_report
    header: Record | None = None
    positions: dict[str, int] = {}
    record = 0  # logical record number, header = 1
    expected_fields: list[int] = []  # filled from the header: guards multi-line records
    for rec in iter_records(path, quoted=True, max_line_bytes=config.max_line_bytes, expected_fields=expected_fields):
        if isinstance(rec, Blank):
            file_report.blank_lines += 1
            continue
        record += 1
        if header is None:
            if isinstance(rec, BadRecord):
                raise InputFileError(str(path), rec.error_type, f"cannot read the header: {rec.message}", line=rec.line)
            header = rec
            expected_fields.append(len(rec.fields))
            positions = check_header(path, rec, required, config, file_report, strict=sink.mode is Mode.STRICT)
            continue
        file_report.rows_in += 1
        if isinstance(rec, BadRecord):
            sink.reject(RejectRecord(str(path), rec.line, "", rec.error_type, rec.raw, rec.message, rec.offset, record))
            continue
        n = len(header.fields)
        if len(rec.fields) != n:
            kind = "TOO_MANY_COLUMNS" if len(rec.fields) > n else "MISSING_COLUMNS"
            sink.reject(RejectRecord(str(path), rec.line, "", kind, rec.raw,
                                     f"expected {n} fields, found {len(rec.fields)}", rec.offset, record))
            continue
        row = {name: rec.fields[i] for name, i in positions.items()}
        try:
            parse_row(row, rec)
        except RowExcluded as exc:
            file_report.excluded += 1
            file_report.exclusions[exc.column] += 1
            continue
        except RowReject as exc:
            sink.reject(RejectRecord(str(path), rec.line, exc.column, exc.error_type, rec.raw, str(exc),
                                     rec.offset, record))
            continue
        file_report.accepted += 1
    if header is None:
        raise InputFileError(str(path), "EMPTY_FILE", "the file has no header line")


class RowExcluded(Exception):
    """A row an include/exclude rule drops: counted as excluded, not rejected."""

    def __init__(self, column: str) -> None:
        self.column = column
        super().__init__(column)


class RowReject(FieldError):
    """A field error tied to the column it came from."""

    def __init__(self, column: str, error: FieldError) -> None:
        self.column = column
        super().__init__(error.error_type, str(error))


def field(column: str, fn: Callable[[], object]) -> object:
    """Run a field parser, re-raising its error as a reject of ``column``."""
    try:
        return fn()
    except RowReject:
        raise
    except FieldError as exc:
        raise RowReject(column, exc) from None
