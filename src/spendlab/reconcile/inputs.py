"""Read and validate delta exports and user-summary tables into DuckDB (formats.md section 4).

Every row keeps its physical line (header = line 1); per file ``rows_in = accepted + rejected``, and
every rejected row is recorded with file, line, column, error type, raw text and message. Keys stay
``VARCHAR``: ``"007"`` is never ``7``. Three readers (pyarrow's column reader for plain files, a line
reader split in DuckDB, :func:`spendlab.io.records.iter_records` for anything else) stage the same
columns for one SQL validation; tests check they give the same rows, lines and rejects. Why three:
``docs/reconcile.md``.
"""

from __future__ import annotations

import codecs
import csv
import glob as globlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError, SpendlabError
from spendlab.io.collect import check_header
from spendlab.io.records import BadRecord, Blank, Record, check_file_start, iter_records
from spendlab.io.rejects import FileReport
from spendlab.reconcile.validate import (
    DELTA_COLUMNS,
    MONEY_SQL_TYPE,
    VALUE_COLUMNS,
    CheckedWriter,
    register_key_check,
    stage_fast_sql,
)

#: File names the delta glob may pick: ``delta3.csv``, ``delta_10.csv``, ``acme_delta-2_2024.csv``.
#: Hidden files, Office lock files (``~$x.csv``) and anything else the glob matches are ignored (listed).
DEFAULT_DELTA_PATTERN = r"(?i)^(?![.~])[^/\\]*delta[_-]?\d+[^/\\]*\.csv$"

_BLOCK = 1 << 24
#: Compression suffixes: a delta export so named is refused by name, never ignored.
_COMPRESSED = re.compile(r"(?i)\.(gz|gzip|zst|zstd|bz2|xz|lz4|zip|7z|tgz)$")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``delta2`` before ``delta10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in parts)


def delta_sort_key(path: Path) -> tuple:
    """Order deltas by the number after ``delta`` (``acme_delta-2`` before ``delta_10``), then naturally by name."""
    m = re.search(r"(?i)delta[_-]?(\d+)", path.name)
    return (int(m.group(1)) if m else -1, natural_key(path.name))


def discover_deltas(pattern_glob: str, name_pattern: str = DEFAULT_DELTA_PATTERN) -> tuple[list[Path], list[str]]:
    """Files matched by ``pattern_glob`` (or inside it, for a directory) in delta order, and the ignored ones.

    Returns ``(deltas, ignored)``: delta files whose name matches ``name_pattern``, sorted by their
    delta number, then naturally by name (``delta2`` before ``delta10``); every other matched path
    (summary files, ``.DS_Store``, ``~$x.csv``) is listed as ignored.
    """
    p = Path(pattern_glob)
    if p.is_dir():
        matched = [str(f) for f in p.iterdir()]
    else:
        matched = globlib.glob(pattern_glob, recursive=True, include_hidden=True)
    rx = re.compile(name_pattern)
    deltas, ignored = [], []
    for m in matched:
        path = Path(m)
        if path.is_file() and rx.search(path.name):
            deltas.append(path)
        elif path.is_file() and rx.search(_COMPRESSED.sub("", path.name)):
            raise SpendlabError(f"{path}: a compressed delta export ({_COMPRESSED.search(path.name).group(0)}); "
                                "decompress it next to the others (spendlab reads plain CSV deltas) rather than "
                                "leave it out of the rebuild")
        else:
            ignored.append(path.name)
    if not deltas:
        raise SpendlabError(f"{pattern_glob}: no delta file matches the pattern {name_pattern!r}"
                            + (f" (ignored: {', '.join(sorted(ignored))})" if ignored else ""))
    names = [d.name for d in deltas]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpendlabError(f"{pattern_glob}: several delta files share the name(s) {dupes}; give one folder")
    deltas.sort(key=delta_sort_key)
    return deltas, sorted(ignored, key=natural_key)


@dataclass
class LoadedFile:
    """One input file as loaded: its counters and status (``ok``, ``EMPTY_DELTA``, ``HEADER_ONLY``)."""

    name: str
    path: str
    idx: int
    status: str
    report: FileReport
    reader: str = "columns"


@dataclass
class ReconcileInputs:
    """Everything the reconciliation reads, as DuckDB tables on ``con`` plus per-file counters.

    Tables: ``deltas(file_idx, line, user_id, total_spend, count_saved_items, loyalty_credits,
    batch_id)`` (accepted rows only), ``platform`` and ``source`` (same columns without
    ``file_idx``; values may be NULL) and ``rejects(dataset, file, file_idx, line, column,
    error_type, raw, message, user_id)``.
    """

    con: duckdb.DuckDBPyConnection
    deltas: list[LoadedFile]
    ignored: list[str]
    platform: LoadedFile
    source: LoadedFile
    warnings: list[str] = field(default_factory=list)


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    register_key_check(con)
    con.execute("CREATE OR REPLACE TABLE deltas (file_idx INTEGER, line BIGINT, user_id VARCHAR, total_spend "
                f"{MONEY_SQL_TYPE}, count_saved_items BIGINT, loyalty_credits {MONEY_SQL_TYPE}, batch_id BIGINT)")
    for side in ("platform", "source"):
        con.execute(f"CREATE OR REPLACE TABLE {side} (line BIGINT, user_id VARCHAR, total_spend "
                    f"{MONEY_SQL_TYPE}, count_saved_items BIGINT, loyalty_credits {MONEY_SQL_TYPE}, batch_id BIGINT)")
    con.execute("CREATE OR REPLACE TABLE rejects (dataset VARCHAR, file VARCHAR, file_idx INTEGER, line BIGINT,"
                ' "column" VARCHAR, error_type VARCHAR, raw VARCHAR, message VARCHAR, user_id VARCHAR)')


def _is_plain(path: Path) -> bool:
    """Tell whether the fast reader gives the same records and lines as the physical-line reader."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry = b""
    first = True
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            body_start = 0
            if first:  # a quoted header line (as many exporters write it) is fine: it is parsed as CSV
                first = False
                body_start = chunk.find(b"\n") + 1 if b"\n" in chunk else len(chunk)
                if chunk[:body_start].count(b'"') % 2:
                    return False
            if b'"' in chunk[body_start:]:
                return False
            if b"\x1f" in chunk:  # the fast readers split lines on 0x1F: leave such files to the record reader
                return False
            data = carry + chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            body = data[:-1] if carry else data
            if b"\r" in body.replace(b"\r\n", b""):  # a lone CR: line numbers would differ
                return False
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _header_positions(path: Path, header: Record, report: FileReport) -> dict[str, int]:
    return check_header(path, header, DELTA_COLUMNS, ReaderConfig(), report)


def _load_columns(path: Path, writer: CheckedWriter) -> bool:
    """Load by the fastest path: pyarrow splits every data line into the header's fields (C++, streamed).

    Only taken when line numbers stay exact: the header on line 1 and every later line a record
    with the header's field count (a blank or ragged line makes pyarrow stop, and the file is read
    again by :func:`_load_fast`). Runs in one transaction so a fallback leaves nothing behind.
    """
    with open(path, "rb") as fh:
        first = fh.readline()
    text = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8")
    if not text.strip():
        return False
    report = writer.loaded.report
    fields = next(csv.reader([text]))
    positions = _header_positions(path, Record(1, 1, 0, text, fields), report)
    n = len(fields)
    names = [f"f{i}" for i in range(n)]
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=_BLOCK)
    parse = pacsv.ParseOptions(quote_char=False, escape_char=False, newlines_in_values=False,
                               ignore_empty_lines=False)
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in names}, strings_can_be_null=False)
    cols = ", ".join(f"trim(f{positions[c]}, ' \t') AS c_{c}" for c in VALUE_COLUMNS)
    stage = (f"SELECT line, {n} AS nf, trim(f{positions['user_id']}, ' \t') AS user_id, {cols}, "
             "CAST(NULL AS VARCHAR) AS pre_error, CAST(NULL AS VARCHAR) AS pre_message, " + ", ".join(names)
             + " FROM batch")
    raw = "concat_ws(',', " + ", ".join(names) + ")"
    con = writer.con
    con.execute("BEGIN TRANSACTION")
    try:
        next_line = 2
        for batch in pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert):
            if _has_empty_line(batch):  # pyarrow reads an empty line as a row of empty fields
                raise pa.ArrowInvalid("empty line")
            table = pa.Table.from_batches([batch]).append_column(
                "line", pa.array(range(next_line, next_line + batch.num_rows), pa.int64()))
            next_line += batch.num_rows
            con.register("batch", table)
            try:
                writer.write(stage, n, raw)
            finally:
                con.unregister("batch")
    except pa.ArrowInvalid:
        con.execute("ROLLBACK")
        writer.loaded.report = FileReport(str(path))
        return False
    con.execute("COMMIT")
    return True


def _has_empty_line(batch: pa.RecordBatch) -> bool:
    import pyarrow.compute as pc

    empty = None
    for col in batch.columns:
        this = pc.equal(pc.utf8_length(col), 0)
        empty = this if empty is None else pc.and_(empty, this)
    return bool(pc.any(empty).as_py()) if empty is not None else False


def _load_fast(path: Path, writer: CheckedWriter) -> bool:
    """Stream ``path`` line by line through pyarrow; return whether a header was found."""
    read = pacsv.ReadOptions(column_names=["raw"], block_size=_BLOCK)
    parse = pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                               newlines_in_values=False, ignore_empty_lines=False)
    convert = pacsv.ConvertOptions(column_types={"raw": pa.string()}, strings_can_be_null=False)
    positions: dict[str, int] | None = None
    n_header = 0
    next_line = 1
    report = writer.loaded.report
    for batch in pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert):
        raw = batch.column(0)
        lines = pa.array(range(next_line, next_line + len(raw)), pa.int64())
        next_line += len(raw)
        table = pa.table({"line": lines, "raw": raw})
        if positions is None:
            for i in range(len(raw)):
                text = raw[i].as_py()
                if text.strip():
                    fields = next(csv.reader([text]))
                    header = Record(i + next_line - len(raw), i + next_line - len(raw), 0, text, fields)
                    positions = _header_positions(path, header, report)
                    n_header = len(header.fields)
                    report.blank_lines += i
                    table = table.slice(i + 1)
                    break
            else:
                report.blank_lines += len(raw)
                continue
        report.blank_lines += _count_blank(table)
        writer.con.register("batch", table)
        try:
            writer.write(stage_fast_sql(positions), n_header)
        finally:
            writer.con.unregister("batch")
    return positions is not None


def _count_blank(table: pa.Table) -> int:
    import pyarrow.compute as pc

    stripped = pc.utf8_trim_whitespace(table.column("raw"))
    return int(pc.sum(pc.equal(stripped, "")).as_py() or 0)


def _load_records(path: Path, writer: CheckedWriter, max_line_bytes: int) -> bool:
    """Load by the physical-line reader, for files the fast path cannot take (quotes, odd line ends, bad bytes)."""
    report = writer.loaded.report
    cols: dict[str, list] = {k: [] for k in ("line", "raw", "nf", "user_id", *(f"c_{c}" for c in VALUE_COLUMNS),
                                            "pre_error", "pre_message")}
    positions: dict[str, int] | None = None
    n_header = 0
    for rec in iter_records(path, quoted=True, max_line_bytes=max_line_bytes):
        if isinstance(rec, Blank):
            report.blank_lines += 1
            continue
        if positions is None:
            if isinstance(rec, BadRecord):
                raise InputFileError(str(path), rec.error_type, f"cannot read the header: {rec.message}",
                                     line=rec.line)
            positions = _header_positions(path, rec, report)
            n_header = len(rec.fields)
            continue
        cols["line"].append(rec.line)
        cols["raw"].append(rec.raw)
        if isinstance(rec, BadRecord):
            cols["nf"].append(0)
            for c in DELTA_COLUMNS:
                cols["user_id" if c == "user_id" else f"c_{c}"].append(None)
            cols["pre_error"].append(rec.error_type)
            cols["pre_message"].append(rec.message)
            continue
        cols["nf"].append(len(rec.fields))
        for c in DELTA_COLUMNS:
            pos = positions[c]
            val = rec.fields[pos].strip(" \t") if pos < len(rec.fields) else None
            cols["user_id" if c == "user_id" else f"c_{c}"].append(val)
        cols["pre_error"].append(None)
        cols["pre_message"].append(None)
    if positions is None:
        return False
    table = pa.table({k: pa.array(v, pa.int64() if k in ("line", "nf") else pa.string()) for k, v in cols.items()})
    writer.con.register("batch", table)
    try:
        writer.write("SELECT * FROM batch", n_header)  # fields already split by the csv module
    finally:
        writer.con.unregister("batch")
    return True


def load_table_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    kind: str,
    target: str,
    idx: int,
    dataset: str,
    max_line_bytes: int = 1 << 20,
) -> LoadedFile:
    """Load one delta (``kind="delta"``) or summary (``kind="summary"``) file into ``target``.

    A 0-byte delta is listed as ``EMPTY_DELTA`` and a header-only one as ``HEADER_ONLY`` (both with 0
    rows); a 0-byte summary, a wrong header or a non-UTF-8 file raise :class:`InputFileError`.
    """
    loaded = LoadedFile(path.name, str(path), idx, "ok", FileReport(str(path)), reader="columns")
    with open(path, "rb") as fh:
        try:
            check_file_start(path, fh)
            if not fh.read(1):
                raise InputFileError(str(path), "EMPTY_FILE", "the file holds only a byte-order mark")
        except InputFileError as exc:
            if exc.error_type == "EMPTY_FILE" and kind == "delta":
                loaded.status = "EMPTY_DELTA"
                return loaded
            raise
    writer = CheckedWriter(con, kind, target, loaded, dataset)
    if _is_plain(path):
        loaded.reader = "columns"
        found = _load_columns(path, writer)
        if not found:
            loaded.reader = "lines"
            found = _load_fast(path, writer)
    else:
        loaded.reader = "records"
        found = _load_records(path, writer, max_line_bytes)
    if not found:
        if kind == "delta":
            loaded.status = "EMPTY_DELTA"
            return loaded
        raise InputFileError(str(path), "EMPTY_FILE", "the file has no header line")
    if loaded.report.rows_in == 0:
        loaded.status = "HEADER_ONLY"
    loaded.report.check_conservation()
    return loaded


def load_reconcile_inputs(
    con: duckdb.DuckDBPyConnection,
    deltas: str,
    platform: Path,
    source: Path,
    *,
    name_pattern: str = DEFAULT_DELTA_PATTERN,
    max_line_bytes: int = 1 << 20,
) -> ReconcileInputs:
    """Load every delta matched by ``deltas`` (natural order) and both summaries into ``con``."""
    files, ignored = discover_deltas(deltas, name_pattern)
    for p in (platform, source):
        if not Path(p).is_file():
            raise SpendlabError(f"{p}: no such file")
    _create_tables(con)
    loaded = [load_table_file(con, f, kind="delta", target="deltas", idx=i, dataset="delta",
                              max_line_bytes=max_line_bytes) for i, f in enumerate(files)]
    plat = load_table_file(con, Path(platform), kind="summary", target="platform", idx=-1, dataset="platform",
                           max_line_bytes=max_line_bytes)
    src = load_table_file(con, Path(source), kind="summary", target="source", idx=-2, dataset="source",
                          max_line_bytes=max_line_bytes)
    return ReconcileInputs(con, loaded, ignored, plat, src)
