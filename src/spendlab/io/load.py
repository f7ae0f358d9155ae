"""One entry point from an INPUT string and a format to the canonical transaction table."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from spendlab.config import ReaderConfig
from spendlab.errors import ConfigError, InputFileError, RowError, SpendlabError
from spendlab.io.attributes import attribute_fields as attribute_fields_of
from spendlab.io.cdnow import read_cdnow
from spendlab.io.collect import RowBuilder
from spendlab.io.discover import resolve_input
from spendlab.io.generic import read_generic_csv
from spendlab.io.hashing import update_with_file
from spendlab.io.lineitems import OrderBook
from spendlab.io.lookups import load_lookups
from spendlab.io.millions import read_millions
from spendlab.io.parquet import RANGE_HI, RANGE_LO, check_parquet_files, scan_parquet
from spendlab.io.rejects import FileReport, LoadReport, Mode, RejectSink, finish_load, with_report
from spendlab.io.users import UserTable, users_view
from spendlab.schema import CANONICAL_SCHEMA
from spendlab.settings import parse_memory_limit
from spendlab.sqltext import literal, quote

#: A text reader: ``reader(path, config, sink, rows)`` appends each valid row of one file to ``rows``
#: (:meth:`RowBuilder.add`) and reports each invalid one to ``sink`` (:meth:`RejectSink.reject`).
FileReader = Callable[[Path, ReaderConfig, RejectSink, RowBuilder], None]

#: The input formats, by the name ``--format`` and ``dataset.format`` take: adding a format is one
#: entry here. ``generic`` also reads Parquet and line items (:mod:`spendlab.io.parquet`, an order book).
READERS: dict[str, FileReader] = {"millions": read_millions, "cdnow": read_cdnow, "generic": read_generic_csv}
#: The built-in format names (for help texts); :data:`READERS` is what a load checks against.
FORMATS: tuple[str, ...] = tuple(READERS)


def connect(threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with spendlab's session settings (UTC, bounded memory).

    ``memory_limit`` is checked by :func:`spendlab.settings.parse_memory_limit` (``4GB``, ``none``).
    """
    memory_limit = parse_memory_limit(memory_limit)
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute("SET memory_limit = ?", [memory_limit])
        _LIMITS[con] = memory_limit
    return con


#: The memory limit each connection of :func:`connect` was opened with, as given: DuckDB shows it
#: rounded (``1GB`` as ``953.6 MiB``), so it could not be set back exactly from its own setting.
_LIMITS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, str] = weakref.WeakKeyDictionary()


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Hand back to the system the memory DuckDB keeps after its tables are dropped, keeping the limit.

    DuckDB keeps freed buffers for reuse until the connection closes: at 1M users about 0.77 GB after
    the feature build has dropped its temporary tables, which ``duckdb_memory()`` no longer counts.
    Lowering the memory limit to what DuckDB still holds makes it let them go; the limit is then set back
    to the one :func:`connect` was given. A connection opened elsewhere, or without a limit, is left as it is.
    """
    limit = _LIMITS.get(con)
    if limit is None:
        return
    held = con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()[0][0]
    try:
        con.execute(f"SET memory_limit = '{int(held) + (64 << 20)}B'")
    except duckdb.Error:  # it could not come down that far: nothing to hand back
        pass
    finally:
        con.execute("SET memory_limit = ?", [limit])


#: The most values a category attribute may have to be held as a DuckDB ``ENUM`` when the rows are
#: materialised (:meth:`Transactions.register`); one byte a value.
MAX_ENUM_LEVELS = 255


@dataclass
class Transactions:
    """The canonical transactions of one load, with its report.

    Small text inputs hold an Arrow table; Parquet inputs hold a SQL query over the files so
    the raw rows never need to fit in pandas. Inside DuckDB, ``ts`` is a UTC ``TIMESTAMP``.
    """

    name: str
    report: LoadReport
    table: pa.Table | None = None
    sql: str | None = None
    files: tuple[str, ...] = ()
    config: ReaderConfig | None = None
    lookups: dict[str, pa.Table] = field(default_factory=dict)  # tables ``sql`` joins (Parquet)
    users: UserTable | None = None  # the user attribute table (``dataset.users``), registered beside the rows
    range_sql: str = ""  # the rows of a time range, row groups pruned (Parquet; :func:`spendlab.io.parquet.range_sql`)
    row_groups: list[tuple[int, dt.datetime, dt.datetime]] = field(default_factory=list)  # rows, ts min, max
    levels: dict[str, str] = field(default_factory=dict)  # category attribute -> lookup holding its values (Parquet)

    def register(self, con: duckdb.DuckDBPyConnection, view: str = "transactions", *,
                 native_ids: bool = False, materialise: bool = False) -> None:
        """Expose the rows as view ``view`` on ``con`` (user_id, ts, amount, n_items, source_file, line).

        ``user_id`` is text (the canonical schema) unless ``native_ids``: then integer ids of a
        Parquet input keep their stored type, which the feature build groups and joins several times
        faster and writes out as text itself (:func:`spendlab.features.build_features_arrow`). A user
        table goes beside it as ``{view}__users`` (:func:`spendlab.io.users.users_view`). A Parquet
        input whose row groups carry timestamp statistics also gets the table macro
        ``{view}__between(lo, hi)`` (the view's rows with ``lo <= ts < hi``, two dates; row groups
        outside skipped) and the table ``{view}__row_groups`` (``n_rows``, ``ts_min``, ``ts_max``):
        :func:`spendlab.features.build_features_arrow` reads them. Any other input drops those two, so
        a view registered again under the same name never keeps another input's.
        ``materialise`` (a Parquet input) reads the rows once into a table; there a category attribute
        with at most :data:`MAX_ENUM_LEVELS` values is a DuckDB ``ENUM`` (a set of them a list of it):
        the same text, ordered the same, but compared and grouped as small integers (the covariates).
        """
        con.execute(f'DROP MACRO TABLE IF EXISTS "{view}__between"')
        con.execute(f'DROP TABLE IF EXISTS "{view}__row_groups"')
        if self.users is not None:
            con.register(f"{users_view(view)}__arrow", self.users.table)
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{users_view(view)}" AS SELECT * FROM "{users_view(view)}__arrow"')
        if self.table is not None:
            naive = self.table.set_column(1, "ts", self.table.column("ts").cast(pa.timestamp("us")))
            con.register(f"{view}__arrow", naive)
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT * FROM "{view}__arrow"')
            return
        for name, lookup in self.lookups.items():
            con.register(name, lookup)
        rows = self.sql
        if materialise:
            con.execute(f'CREATE OR REPLACE TEMP TABLE "{view}__rows" AS SELECT *{self._enum_casts(con)} '
                        f"FROM ({self.sql})")
            rows = f'SELECT * FROM "{view}__rows"'
        text = "" if native_ids else " REPLACE (CAST(user_id AS VARCHAR) AS user_id)"
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT *{text} FROM ({rows})')
        if self.range_sql and self.row_groups and not materialise:
            lo, hi = RANGE_LO, RANGE_HI
            con.execute(f'CREATE OR REPLACE TEMP MACRO "{view}__between"({lo}, {hi}) AS TABLE '
                        f"SELECT *{text} FROM ({self.range_sql})")
            con.register(f"{view}__row_groups__arrow", pa.table({
                "n_rows": pa.array([r[0] for r in self.row_groups], pa.int64()),
                "ts_min": pa.array([r[1] for r in self.row_groups], pa.timestamp("us")),
                "ts_max": pa.array([r[2] for r in self.row_groups], pa.timestamp("us"))}))
            con.execute(f'CREATE OR REPLACE TEMP TABLE "{view}__row_groups" AS SELECT * FROM "{view}__row_groups__arrow"')
            con.unregister(f"{view}__row_groups__arrow")

    def _enum_casts(self, con: duckdb.DuckDBPyConnection) -> str:
        """Return `` REPLACE (...)``: each category attribute with at most :data:`MAX_ENUM_LEVELS` values as an ENUM.

        The values are the attribute's lookup's (every distinct raw value read, so a superset of the
        accepted rows'), sorted by DuckDB as it sorts text, so an ``ORDER BY`` of the ENUM is the text's.
        """
        types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM ({self.sql})").fetchall()}
        casts = []
        for name, lookup in self.levels.items():
            if types.get(name) not in ("VARCHAR", "VARCHAR[]"):
                continue
            rows = con.execute(f'SELECT DISTINCT value FROM "{lookup}" WHERE value IS NOT NULL ORDER BY value '
                               f"LIMIT {MAX_ENUM_LEVELS + 1}").fetchall()
            if not rows or len(rows) > MAX_ENUM_LEVELS:
                continue
            enum = "ENUM(" + ", ".join(literal(v) for (v,) in rows) + ")"
            suffix = "[]" if types[name] == "VARCHAR[]" else ""
            casts.append(f"CAST({quote(name)} AS {enum}{suffix}) AS {quote(name)}")
        return f" REPLACE ({', '.join(casts)})" if casts else ""

    def to_arrow(self, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
        """Return the accepted transactions as an Arrow table (read on ``con``, default a new connection)."""
        if self.table is not None:
            return self.table
        con = con or connect()
        self.register(con)
        out = con.sql("SELECT * FROM transactions ORDER BY source_file, line").to_arrow_table()
        return out.set_column(1, "ts", out.column("ts").cast(pa.timestamp("us", tz="UTC")))

    def to_pandas(self) -> pd.DataFrame:
        """Return the accepted transactions as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def content_hash(self) -> str:
        """SHA-256 over the input files' bytes (a dataset's identity for MLflow)."""
        h = hashlib.sha256()
        for f in sorted(self.files):
            h.update(Path(f).name.encode())
            update_with_file(h, f)
        return h.hexdigest()


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it names a registered reader.

    Raises
    ------
    SpendlabError
        ``fmt`` is not a key of :data:`READERS`; the message lists the formats.
    """
    if fmt not in READERS:
        raise SpendlabError(f"unknown format {fmt!r}; choose one of {', '.join(READERS)}")
    return fmt


def _is_parquet(path: Path) -> bool:
    if path.name.lower().endswith((".gz", ".csv", ".txt")):
        return False
    if path.suffix.lower() in {".parquet", ".pq"}:
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def load_transactions(
    source: str | os.PathLike[str],
    fmt: str,
    *,
    config: ReaderConfig | None = None,
    mode: Mode = Mode.QUARANTINE,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Transactions:
    """Read INPUT in format ``fmt`` into canonical transactions, applying the validation mode.

    File-level problems (empty, wrong header, wrong encoding, corrupt Parquet) raise
    :class:`InputFileError`; row problems are handled by ``mode``. ``con`` is the DuckDB
    connection Parquet inputs are scanned on (default: a new one from :func:`connect`).
    """
    check_format(fmt)
    config = config or ReaderConfig()
    found = resolve_input(os.fspath(source), fmt)  # a pathlib.Path is as good as its text
    name, files = found.name, found.files
    report = LoadReport(skipped=found.skipped, duplicates=found.duplicates)
    parquet = [f for f in files if fmt == "generic" and _is_parquet(f)]
    lookups = load_lookups(config.generic) if fmt == "generic" else []
    if parquet:
        if len(parquet) != len(files):
            raise SpendlabError(f"{source}: mixes Parquet and CSV files; give one kind at a time")
        types = check_parquet_files(parquet, config.generic, strict=mode is Mode.STRICT)  # no SQL before this
        con = con or connect()
        scan = scan_parquet(con, parquet, config, report, strict=mode is Mode.STRICT, types=types, lookups=lookups)
        report.lookups = {t.name: t.as_dict() for t in lookups}
        if mode is Mode.STRICT and report.rejects:
            raise with_report(RowError(f"strict mode: {report.rejects[0].describe()}"), report)
        finish_load(report, mode)
        return Transactions(name, report, sql=scan.sql, files=tuple(str(f) for f in files), config=config, lookups=scan.lookups,
                            range_sql=scan.range_sql, row_groups=scan.row_groups, levels=scan.levels)
    book = OrderBook(config.generic) if fmt == "generic" and config.generic.order_col else None
    attribute_fields = attribute_fields_of(config.generic) if fmt == "generic" else []
    reader = READERS[fmt] if book is None else functools.partial(READERS[fmt], orders=book)
    if lookups:
        reader = functools.partial(reader, lookups=lookups)
    tables = []
    for f in files:
        file_report = FileReport(str(f))
        report.files.append(file_report)
        rows = RowBuilder(attribute_fields)
        sink = RejectSink(mode, report, file_report)
        if f.stat().st_size == 0 and config.empty_file == "accept":
            continue
        try:
            reader(f, config, sink, rows)
        except InputFileError as exc:
            if exc.error_type == "EMPTY_FILE" and config.empty_file == "accept":
                continue
            raise
        tables.append(rows.table(str(f)))
    report.lookups = {t.name: t.as_dict() for t in lookups}
    finish_load(report, mode)
    if book is not None:  # line items: one canonical row per order
        tables = [book.table()]
    empty = pa.schema([*CANONICAL_SCHEMA, *attribute_fields]).empty_table()
    table = pa.concat_tables(tables) if tables else empty
    return Transactions(name, report, table=table, files=tuple(str(f) for f in files), config=config)


def date_span(tx: Transactions) -> tuple[dt.date | None, dt.date | None]:
    """Return the UTC days of the first and the last accepted transaction (None, None when there is none)."""
    con = connect()
    tx.register(con)
    first, last = con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM transactions").fetchall()[0]
    return first, last


def validation_summary(tx: Transactions, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, object]:
    """Users, spend and refunds of a load, beside its per-file counters.

    ``total_spend`` is always gross (sum of positive amounts); ``net_spend`` subtracts refunds;
    ``spend`` is the figure the load's ``reader.refunds`` policy asks for (gross for ``separate``).
    ``con`` is the DuckDB connection to count on (default: a new one from :func:`connect`).
    """
    con = con or connect()
    tx.register(con)
    users, spend, refunds, refund_amount = con.execute(
        "SELECT count(DISTINCT user_id), "
        "coalesce(sum(CAST(amount AS DECIMAL(38, 6))) FILTER (amount > 0), 0), "
        "count(*) FILTER (amount < 0), "
        "coalesce(-sum(CAST(amount AS DECIMAL(38, 6))) FILTER (amount < 0), 0) FROM transactions"
    ).fetchall()[0]
    gross = round(float(spend), 2)
    net = round(float(spend - refund_amount), 2)
    policy = tx.config.refunds if tx.config is not None else "separate"
    return {
        "files": [f.as_dict() for f in tx.report.files],
        "skipped": list(tx.report.skipped),
        "duplicates": list(tx.report.duplicates),
        "users": int(users),
        "total_spend": gross,
        "net_spend": net,
        "spend": net if policy == "net" else gross,
        "refunds": int(refunds),
        "refund_amount": round(float(refund_amount), 2),
    }
