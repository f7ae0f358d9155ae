"""The ``millions`` card-authorisation CSV: ``type,data,created_at,user_id``.

``data`` is a JSON object whose ``amount`` is a string decimal; negative = money left the
account (spend), positive = refund/credit. The canonical amount flips the sign, so spend is
positive and a refund is negative.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendlab.config import ReaderConfig
from spendlab.io.collect import RowBuilder, RowReject, field, read_header_csv
from spendlab.io.parsing import FieldError, check_window, normalise_user_id, parse_amount, parse_timestamp
from spendlab.io.records import Record
from spendlab.io.rejects import RejectSink

COLUMNS = ("type", "data", "created_at", "user_id")
#: The usual shape of ``data``: one ``amount`` key with an escape-free string value. It is read
#: without the JSON parser (the same result, several times faster); anything else goes to json.
_WS = "[ \t\n\r]*"  # JSON's whitespace (narrower than regex \s)
_SIMPLE_DATA = re.compile(f'{_WS}\\{{{_WS}"amount"{_WS}:{_WS}"([^"\\\\\\x00-\\x1f]*)"{_WS}\\}}{_WS}')


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise FieldError("AMBIGUOUS_JSON", f"duplicate key(s) {dupes} in data (which one is meant?)")
    return dict(pairs)


def _non_finite(token: str) -> Any:
    raise FieldError("NON_FINITE", f"bare {token} in data is not a finite amount")


def parse_data_amount(data: str) -> str | Decimal:
    """Extract ``amount`` from the JSON ``data`` field without losing precision."""
    simple = _SIMPLE_DATA.fullmatch(data)
    if simple:
        return simple.group(1)
    if not data.strip():
        raise FieldError("EMPTY_FIELD", "data is empty")
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_float=Decimal,
                         parse_int=Decimal, parse_constant=_non_finite)
    except json.JSONDecodeError as exc:
        raise FieldError("JSON_DECODE", f"data is not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(obj, dict):
        raise FieldError("JSON_DECODE", "data is not a JSON object")
    if "amount" not in obj:
        raise FieldError("MISSING_FIELD", "data has no 'amount'")
    amount = obj["amount"]
    if amount is None:
        raise FieldError("MISSING_FIELD", "data.amount is null")
    if not isinstance(amount, (str, Decimal)):
        raise FieldError("AMOUNT_FORMAT", f"data.amount {amount!r} is not a number")
    return amount


def read_millions(path: Path, config: ReaderConfig, sink: RejectSink, rows: RowBuilder) -> None:
    """Read one millions-format file into ``rows``; rejects go to ``sink``."""
    window_end = config.window_end or dt.date.today()
    report = sink.file_report
    seen: set[tuple[str, ...]] = set()
    tz_kinds: set[bool] = set()

    def parse_row(row: dict[str, str], rec: Record) -> None:
        user = field("user_id", lambda: normalise_user_id(row["user_id"]))
        kind = row["type"].strip()
        if kind not in config.accepted_types:
            if config.unknown_types == "reject":
                allowed = list(config.accepted_types)
                raise RowReject("type", FieldError("UNKNOWN_TYPE", f"type {kind!r} is not one of {allowed}"))
            report.warnings["UNKNOWN_TYPE"] += 1
        raw_amount = field("data", lambda: parse_data_amount(row["data"]))
        value = field("data", lambda: parse_amount(raw_amount, thousands=config.thousands,  # type: ignore[arg-type]
                                                   max_abs=config.max_abs_amount, sub_cent=config.sub_cent))
        created_at = row["created_at"]
        ts, aware = field("created_at",  # type: ignore[misc]
                          lambda: parse_timestamp(created_at, zone=config.timezone, dst_policy=config.dst_policy))
        field("created_at", lambda: check_window(ts, config.window_start, window_end))
        amount = -value + 0.0  # negative = spend in this format
        if amount == 0.0 and config.zero_amounts == "exclude":
            raise RowReject("data", FieldError("ZERO_AMOUNT", "zero amount excluded by config"))
        key = (kind, row["data"], row["created_at"], row["user_id"])
        if key in seen:
            if config.dedupe:
                raise RowReject("", FieldError("DUPLICATE_ROW", "exact duplicate of an earlier row (dedupe on)"))
            report.warnings["DUPLICATE_ROW"] += 1
        seen.add(key)
        tz_kinds.add(aware)
        if amount < 0:
            report.warnings["REFUND"] += 1
        rows.add(user, ts, amount, rec.line)  # type: ignore[arg-type]

    read_header_csv(path, COLUMNS, parse_row, config, sink)
    if len(tz_kinds) > 1:
        report.warnings["MIXED_TZ"] += 1
