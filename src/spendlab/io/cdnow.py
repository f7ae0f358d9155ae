"""The CDNOW master file: whitespace-separated ``customer_id date n_items dollar_value``.

``dollar_value`` is positive spend (the opposite sign convention to the millions format).
The file has no header; a first line starting with ``customer_id`` is read as one.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError
from spendlab.io.collect import RowBuilder
from spendlab.io.parsing import UTC, FieldError, check_window, normalise_user_id, parse_amount
from spendlab.io.records import BadRecord, Blank, iter_records
from spendlab.io.rejects import RejectRecord, RejectSink

_DATE = re.compile(r"[0-9]{8}\Z")  # ASCII digits only (\d takes any script's digits)
_INT = re.compile(r"[0-9]+\Z")
_COLUMNS = ("customer_id", "date", "n_items", "dollar_value")


def _parse_date(text: str) -> dt.datetime:
    if not _DATE.match(text):
        raise FieldError("DATE_PARSE", f"date {text!r} is not YYYYMMDD")
    try:
        return dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:]), tzinfo=UTC)
    except ValueError as exc:
        raise FieldError("DATE_PARSE", f"date {text!r} is impossible: {exc}") from None


def read_cdnow(path: Path, config: ReaderConfig, sink: RejectSink, rows: RowBuilder) -> None:
    """Read one CDNOW-format file into ``rows``; rejects go to ``sink``."""
    window_end = config.window_end or dt.date.today()
    report = sink.file_report
    first = True
    record = 0  # logical record number (non-blank lines, a header included)
    for rec in iter_records(path, quoted=False, max_line_bytes=config.max_line_bytes):
        if isinstance(rec, Blank):
            report.blank_lines += 1
            continue
        record += 1
        if first and not isinstance(rec, BadRecord) and rec.fields and rec.fields[0] == "customer_id":
            first = False
            continue
        first = False
        report.rows_in += 1
        if isinstance(rec, BadRecord):
            sink.reject(RejectRecord(str(path), rec.line, "", rec.error_type, rec.raw, rec.message, rec.offset, record))
            continue
        f = rec.fields
        if len(f) != 4:
            sink.reject(RejectRecord(str(path), rec.line, "", "FIELD_COUNT", rec.raw,
                                     f"expected 4 fields {list(_COLUMNS)}, found {len(f)}", rec.offset, record))
            continue
        column = "customer_id"
        try:
            user = normalise_user_id(f[0])
            column = "date"
            ts = _parse_date(f[1])
            check_window(ts, config.window_start, window_end)
            column = "n_items"
            if not _INT.match(f[2]):
                raise FieldError("INVALID_ITEMS", f"n_items {f[2]!r} is not a non-negative integer")
            column = "dollar_value"
            amount = parse_amount(f[3], max_abs=config.max_abs_amount, sub_cent=config.sub_cent)
            if amount < 0:
                raise FieldError("NEGATIVE_AMOUNT", f"dollar_value {f[3]} is negative (this format has no refunds)")
        except FieldError as exc:
            sink.reject(RejectRecord(str(path), rec.line, column, exc.error_type, rec.raw, str(exc),
                                     rec.offset, record))
            continue
        rows.add(user, ts, amount, rec.line, int(f[2]))
        report.accepted += 1
    if report.rows_in == 0 and report.blank_lines == 0 and first:
        raise InputFileError(str(path), "EMPTY_FILE", "the file has no lines")
