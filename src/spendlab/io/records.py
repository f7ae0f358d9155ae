"""Physical-line record reader shared by every text format.

Python's ``csv`` module and pandas lose physical line numbers once a quoted field spans lines,
and pandas cannot reject one undecodable row without failing the file. This reader keeps what a
reject record needs: the physical line where a record starts (header = line 1), its byte offset
and its raw text. CRLF, mixed line endings and a missing final newline read the same as LF; a
UTF-8 BOM is stripped; UTF-16/32 input fails the file with a hint; an over-long line is rejected
without being held in memory.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spendlab.errors import InputFileError

UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Record:
    """A logical record: its physical start line, byte offset, raw text and parsed fields."""

    line: int
    end_line: int
    offset: int
    raw: str
    fields: list[str]


@dataclass(frozen=True)
class BadRecord:
    """A record that could not even be split into fields."""

    line: int
    offset: int
    raw: str
    error_type: str
    message: str


@dataclass(frozen=True)
class Blank:
    """A blank physical line (ignored, but counted)."""

    line: int


def check_file_start(path: Path, fh: BinaryIO) -> None:
    """Fail the file early for 0 bytes or a non-UTF-8 encoding; leave ``fh`` after any UTF-8 BOM."""
    head = fh.read(4)
    if not head:
        raise InputFileError(str(path), "EMPTY_FILE", "the file is empty (0 bytes)")
    if head.startswith(_UTF16_32_BOMS) or (len(head) >= 2 and b"\x00" in head[:4]):
        raise InputFileError(
            str(path),
            "ENCODING",
            "the file looks UTF-16/UTF-32 encoded; spendlab reads UTF-8 "
            "(convert it, for example with: iconv -f UTF-16 -t UTF-8)",
            line=1,
        )
    fh.seek(len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0)


_RAW_PREFIX = 200  # bytes of an over-long line kept for its reject record


def _physical_lines(fh: BinaryIO, start: int, max_line_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(offset, bytes_without_eol, too_long)``.

    A line over ``max_line_bytes`` is skipped in bounded chunks and yielded as its first
    ``_RAW_PREFIX`` bytes with ``too_long=True``; it is never held in memory whole.
    """
    offset = start
    while True:
        chunk = fh.readline(max_line_bytes + 1)
        if not chunk:
            return
        if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
            prefix = chunk[:_RAW_PREFIX]
            consumed = len(chunk)
            while not chunk.endswith(b"\n"):
                chunk = fh.readline(_CHUNK)
                if not chunk:
                    break
                consumed += len(chunk)
            yield offset, prefix, True
            offset += consumed
            continue
        length = len(chunk)
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        yield offset, chunk, False
        offset += length


def iter_records(
    path: Path,
    *,
    quoted: bool = True,
    max_line_bytes: int = 1 << 20,
    expected_fields: list[int] | None = None,
) -> Iterator[Record | BadRecord | Blank]:
    """Read ``path`` into records.

    ``quoted=True`` reads RFC 4180 CSV (comma separated, a quoted field may span lines);
    ``quoted=False`` splits each line on runs of whitespace (the CDNOW format).

    ``expected_fields`` is an optional one-element list the caller fills once it knows the header's
    field count: a multi-line record with another count is treated like an unclosed quote.
    """
    gz = path.name.lower().endswith(".gz")  # byte offsets then count the decompressed bytes
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            check_file_start(path, fh)
            physical = _physical_lines(fh, fh.tell(), max_line_bytes)
            if quoted:
                yield from _csv_records(physical, max_line_bytes, expected_fields)
            else:
                yield from _whitespace_records(physical, max_line_bytes)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputFileError(str(path), "CORRUPT_GZIP", f"not a readable gzip file: {exc}") from None


_Line = tuple[int, int, bytes, bool]  # line number, byte offset, bytes without EOL, too long


def _numbered(physical: Iterator[tuple[int, bytes, bool]]) -> Iterator[_Line]:
    for line_no, (offset, data, too_long) in enumerate(physical, start=1):
        yield line_no, offset, data, too_long


def _decode(line_no: int, offset: int, data: bytes) -> str | BadRecord:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", errors="backslashreplace")
        return BadRecord(line_no, offset, raw, "INVALID_ENCODING",
                         f"invalid UTF-8 at byte {exc.start} of the line: {exc.reason}")


def _too_long(line_no: int, offset: int, prefix: bytes, max_line_bytes: int) -> BadRecord:
    raw = prefix.decode("utf-8", errors="backslashreplace") + "..."
    return BadRecord(line_no, offset, raw, "LINE_TOO_LONG", f"line exceeds the maximum of {max_line_bytes} bytes")


def _whitespace_records(
    physical: Iterator[tuple[int, bytes, bool]], max_line_bytes: int
) -> Iterator[Record | BadRecord | Blank]:
    for line_no, offset, data, too_long in _numbered(physical):
        if too_long:
            yield _too_long(line_no, offset, data, max_line_bytes)
            continue
        text = _decode(line_no, offset, data)
        if isinstance(text, BadRecord):
            yield text
        elif text.strip():
            yield Record(line_no, line_no, offset, text, text.split())
        else:
            yield Blank(line_no)


def ends_inside_quotes(text: str, in_quote: bool) -> bool:
    """Whether a CSV line leaves a quoted field open, given whether it started inside one.

    Per RFC 4180 a quote opens a quoted field only at the start of a field; a quote in the
    middle of an unquoted field is a literal character and opens nothing.
    """
    pos, n = 0, len(text)
    while True:
        q = text.find('"', pos)
        if q < 0:
            return in_quote
        if in_quote:
            if q + 1 < n and text[q + 1] == '"':  # an escaped quote
                pos = q + 2
                continue
            in_quote = False
        elif q == 0 or text[q - 1] == ",":
            in_quote = True
        pos = q + 1


def _csv_records(
    physical: Iterator[tuple[int, bytes, bool]], max_line_bytes: int, expected_fields: list[int] | None
) -> Iterator[Record | BadRecord | Blank]:
    """RFC 4180 records with physical line numbers.

    A quoted field that never closes into a valid record (end of file, over the maximum size, an
    undecodable line inside it, or a record that does not parse or has the wrong field count)
    rejects only the line that opened it; the lines after it are read again on their own, so
    one stray quote never swallows the good rows that follow.
    """
    numbered = _numbered(physical)
    replay: deque[_Line] = deque()
    pending: list[tuple[int, int, str]] = []  # (line, offset, text) of an open multi-line record
    pending_bytes = 0

    def unwind(error_type: str, why: str) -> BadRecord:
        line, offset, text = pending[0]
        replay.extendleft(reversed([(ln, off, t.encode("utf-8"), False) for ln, off, t in pending[1:]]))
        last = pending[-1][0]
        pending.clear()
        return BadRecord(line, offset, text, error_type,
                         f"a quoted field opened on this line {why} (lines {line}-{last}); "
                         "the lines after it are read on their own")

    while True:
        for line_no, offset, data, too_long in _replay_then(replay, numbered):
            if too_long:
                if pending:
                    replay.appendleft((line_no, offset, data, too_long))
                    yield unwind("LINE_TOO_LONG", f"runs into line {line_no}, longer than {max_line_bytes} bytes")
                    continue
                yield _too_long(line_no, offset, data, max_line_bytes)
                continue
            text = _decode(line_no, offset, data)
            if isinstance(text, BadRecord):
                if pending:
                    replay.appendleft((line_no, offset, data, too_long))
                    yield unwind("UNTERMINATED_QUOTE", f"runs into line {line_no}, which is not valid UTF-8")
                    continue
                yield text
                continue
            if not pending:
                if not text.strip():
                    yield Blank(line_no)
                    continue
                # Fast path: an even number of quotes closes on this line (a stray quote pair that
                # really leaves a field open makes the CSV parse fail, rejecting this line alone).
                if text.count('"') % 2 == 0 or not ends_inside_quotes(text, False):
                    yield _parse_csv_record(text, line_no, line_no, offset)
                    continue
                pending.append((line_no, offset, text))
                pending_bytes = len(data) + 1
                continue
            pending.append((line_no, offset, text))
            pending_bytes += len(data) + 1
            if ends_inside_quotes(text, True):
                if pending_bytes > max_line_bytes:
                    yield unwind("LINE_TOO_LONG", f"is still open after {max_line_bytes} bytes")
                continue
            first_line, first_offset, _ = pending[0]
            rec = _parse_csv_record("\n".join(t for _, _, t in pending), first_line, line_no, first_offset)
            if isinstance(rec, BadRecord):
                yield unwind("UNTERMINATED_QUOTE", f"closes into an unparsable record ({rec.message})")
                continue
            if expected_fields and len(rec.fields) != expected_fields[0]:
                yield unwind("UNTERMINATED_QUOTE", f"closes into a record of {len(rec.fields)} fields, "
                             f"not {expected_fields[0]}")
                continue
            pending.clear()
            yield rec
        if not pending:
            return
        yield unwind("UNTERMINATED_QUOTE", "is never closed before the end of the file")


def _replay_then(replay: deque[_Line], numbered: Iterator[_Line]) -> Iterator[_Line]:
    """Lines queued for re-reading first, then the file's next lines (re-checking the queue each time)."""
    while True:
        if replay:
            yield replay.popleft()
            continue
        nxt = next(numbered, None)
        if nxt is None:
            return
        yield nxt


def _parse_csv_record(text: str, line: int, end_line: int, offset: int) -> Record | BadRecord:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        return BadRecord(line, offset, text, "CSV_PARSE", str(exc))
    if len(rows) != 1:
        return BadRecord(line, offset, text, "CSV_PARSE", "not exactly one CSV record")
    return Record(line, end_line, offset, text, rows[0])
