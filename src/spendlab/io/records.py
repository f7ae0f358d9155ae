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
) -> Iterator[Record | BadRecord | Blank]:
    """Read ``path`` into records.

    ``quoted=True`` reads RFC 4180 CSV (comma separated, a quoted field may span lines);
    ``quoted=False`` splits each line on runs of whitespace (the CDNOW format).
    """
    with open(path, "rb") as fh:
        check_file_start(path, fh)
        start = fh.tell()
        pending: list[str] = []
        pending_line = pending_offset = 0
        pending_bytes = 0
        line_no = 0
        for offset, data, too_long in _physical_lines(fh, start, max_line_bytes):
            line_no += 1
            if too_long:
                prefix = data.decode("utf-8", errors="backslashreplace") + "..."
                if pending:
                    yield BadRecord(pending_line, pending_offset, "\n".join(pending)[:_RAW_PREFIX] + "...",
                                    "LINE_TOO_LONG", f"record exceeds the maximum of {max_line_bytes} bytes "
                                    f"(line {line_no} alone is longer)")
                    pending = []
                else:
                    yield BadRecord(line_no, offset, prefix, "LINE_TOO_LONG",
                                    f"line exceeds the maximum of {max_line_bytes} bytes")
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raw = data.decode("utf-8", errors="backslashreplace")
                if pending:  # the bad line belongs to an open quoted record: reject the record
                    yield BadRecord(pending_line, pending_offset, "\n".join([*pending, raw]),
                                    "INVALID_ENCODING", f"invalid UTF-8 byte at line {line_no}: {exc.reason}")
                    pending = []
                else:
                    yield BadRecord(line_no, offset, raw, "INVALID_ENCODING",
                                    f"invalid UTF-8 at byte {exc.start} of the line: {exc.reason}")
                continue
            if not quoted:
                if text.strip():
                    yield Record(line_no, line_no, offset, text, text.split())
                else:
                    yield Blank(line_no)
                continue
            if not pending:
                if not text.strip():
                    yield Blank(line_no)
                    continue
                pending_line, pending_offset, pending_bytes = line_no, offset, 0
            pending.append(text)
            pending_bytes += len(data) + 1
            joined = "\n".join(pending)
            if joined.count('"') % 2 == 1:  # inside a quoted field: the record continues
                if pending_bytes > max_line_bytes:
                    yield BadRecord(pending_line, pending_offset, joined[:_RAW_PREFIX] + "...", "LINE_TOO_LONG",
                                    f"record exceeds the maximum of {max_line_bytes} bytes")
                    pending = []
                continue
            pending = []
            yield _parse_csv_record(joined, pending_line, line_no, pending_offset)
        if pending:
            yield BadRecord(pending_line, pending_offset, "\n".join(pending), "UNTERMINATED_QUOTE",
                            "a quoted field is never closed before the end of the file")


def _parse_csv_record(text: str, line: int, end_line: int, offset: int) -> Record | BadRecord:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        return BadRecord(line, offset, text, "CSV_PARSE", str(exc))
    if len(rows) != 1:
        return BadRecord(line, offset, text, "CSV_PARSE", "not exactly one CSV record")
    return Record(line, end_line, offset, text, rows[0])
