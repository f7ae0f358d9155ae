"""Generic Parquet inputs under exactly the reader policies of CSV.

Rows are never parsed one by one in Python, but every value rule is the CSV reader's own function
(:mod:`spendlab.io.parsing`, :mod:`spendlab.io.lineitems`), applied once per distinct value and
joined back in DuckDB as a lookup table. Checks run in the CSV reader's order, so a row with several
problems has the same error type in both formats; unsupported column types fail the file. The
lookup tables travel with the SQL in :class:`ParquetScan`. Rules and reasons: ``docs/reading-data.md``.
"""
# long: the Parquet half of the one reader policy (footers, lookups, one scan statement); the CSV half is io/generic.py and io/parsing.py

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.config import GenericMapping, ReaderConfig
from spendlab.errors import ConfigError, InputFileError
from spendlab.io.attributes import value_rule
from spendlab.io.collect import RowReject
from spendlab.io.lineitems import kept, line_amount, order_key
from spendlab.io.lookups import LookupTable
from spendlab.io.parsing import (
    TS_UNITS,
    UTC,
    FieldError,
    localize,
    normalise_user_id,
    parse_amount,
    timestamp_parser,
    zone_info,
)
from spendlab.io.rejects import FileReport, LoadReport, RejectRecord
from spendlab.sqltext import literal, quote

_EPOCH = dt.datetime(1970, 1, 1)
_HOUR_US = 3_600_000_000
_TOKENS = itertools.count()


class MappingColumnError(InputFileError, ConfigError):
    """The generic mapping names a column the file does not have: a file error and a config error.

    Raised from the header or the Parquet footer, before any row is read or any SQL runs.
    """


# --- the footer check: which Arrow types each role accepts --------------------------------------

def _arrow_kind(t: pa.DataType) -> str | None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
        return "string"
    if pa.types.is_null(t):
        return "string"  # an all-null column: every row is an empty field
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_timestamp(t):
        return "aware" if t.tz is not None else "naive"
    if pa.types.is_date(t):
        return "date"
    return None


#: Which kinds each role accepts. Booleans, structs, lists, maps and bytes are never coerced.
_ALLOWED = {
    "user": ("string", "int"),
    "ts": ("string", "aware", "naive", "date"),
    "numeric ts": ("string", "int", "float", "decimal"),
    "amount": ("string", "int", "float", "decimal"),
    "order": ("string", "int"),
    "rule": ("string", "int"),
    "category": ("string", "int"),
}
_WHAT = {
    "user": "a string or an integer",
    "ts": "a timestamp, a date or a string",
    "numeric ts": "a number or a string (reader.generic.ts_unit is set)",
    "amount": "a number (integer, float, decimal) or a string",
    "order": "a string or an integer",
    "rule": "a string or an integer",
    "category": "a string or an integer",
}


def _roles(mapping: GenericMapping) -> dict[str, str]:
    """Role -> column for every column a file must have (line-item columns and rule columns too)."""
    roles = {"user": mapping.user_col, "ts": mapping.ts_col}
    if mapping.amount_col is not None:
        roles["amount"] = mapping.amount_col
    else:
        roles["quantity"], roles["unit price"] = mapping.quantity_col, mapping.unit_price_col  # type: ignore[assignment]
    if mapping.order_col is not None:
        roles["order"] = mapping.order_col
    for col in (*mapping.include, *mapping.exclude):
        if col not in roles.values():
            roles[f"rule {col}"] = col
    for name, spec in mapping.attributes.items():
        if spec.column not in roles.values():
            roles[f"{spec.type} attribute {name}"] = spec.column
    for name, lookup in mapping.lookups.items():
        if lookup.line_column not in roles.values():
            roles[f"lookup {name} key"] = lookup.line_column
    return roles



def check_parquet_files(files: list[Path], mapping: GenericMapping, strict: bool) -> dict[str, Any]:
    """Read every footer; fail a corrupt file, a missing or unsupported column; list schema drift.

    Returns the Arrow type of each mapped column (the first file's) and ``"_drift"``, the drift
    lines. ``user_id`` stored as an integer in some files is read as a string with a warning
    (strict mode fails); a ``ts`` column of different kinds across files (string vs timestamp,
    aware vs naive) fails in every mode: no reading of it is right for both.
    """
    roles = _roles(mapping)
    types: dict[str, dict[str, pa.DataType]] = {}
    for f in files:
        try:
            schema = pq.read_schema(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFileError(str(f), "CORRUPT_PARQUET", f"not a readable Parquet file: {exc}") from None
        missing = [c for c in roles.values() if c not in schema.names]
        if missing:
            raise MappingColumnError(str(f), "SCHEMA_MISSING_COLUMN",
                                     f"missing column(s) {missing}; found {schema.names} "
                                     "(check reader.generic in the config)", column=missing[0])
        for role, col in roles.items():
            t = schema.field(col).type
            kind = role.split()[0] if role.startswith(("rule", "category ")) else role
            kind = kind if kind in _ALLOWED else "amount"
            if kind == "ts" and mapping.ts_unit is not None:
                kind = "numeric ts"  # numbers of days, s, ms, ... since ts_origin
            if _arrow_kind(t) not in _ALLOWED[kind]:
                raise InputFileError(str(f), "UNSUPPORTED_TYPE",
                                     f"column {col!r} is {t}; the {role} column must be {_WHAT[kind]} "
                                     "(never coerced)", column=col)
        types[str(f)] = {c: schema.field(c).type for c in roles.values()}
    drift = schema_drift(types, tuple(roles.values()))
    ts_kinds = {_arrow_kind(t[mapping.ts_col]) for t in types.values()}
    if len(ts_kinds) > 1:
        lines = [d for d in drift if repr(mapping.ts_col) in d]
        raise InputFileError(str(files[0].parent), "SCHEMA_DRIFT",
                             f"{'; '.join(lines)}: a timestamp column must have one kind in every file")
    if drift and strict:
        raise InputFileError(str(files[0].parent), "SCHEMA_DRIFT", "; ".join(drift))
    first = next(iter(types.values()))
    return {**first, "_drift": drift}


def schema_drift(types: dict[str, dict[str, pa.DataType]], columns: tuple[str, ...]) -> list[str]:
    """One line per mapped column whose Arrow type differs across files, listing every file's type."""
    drift: list[str] = []
    for col in columns:
        kinds = {str(t[col]) for t in types.values()}
        if len(kinds) > 1:
            per_file = ", ".join(f"{Path(f).name}: {t[col]}" for f, t in types.items())
            drift.append(f"column {col!r} differs across files ({per_file})")
    return drift


# --- distinct-value lookups: the CSV rules, once per value ---------------------------------------

def _duck_kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t in ("VARCHAR", '"NULL"', "NULL"):
        return "string"
    if t in ("FLOAT", "DOUBLE"):
        return "float"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "TIMESTAMP WITH TIME ZONE":
        return "aware"
    if t.startswith("TIMESTAMP"):
        return "naive"
    if t == "DATE":
        return "date"
    if t.endswith("INT") or t in ("INTEGER", "UINTEGER"):
        return "int"
    raise InputFileError("(parquet)", "UNSUPPORTED_TYPE", f"column type {duck_type} is not supported")


def _outcome(fn: Callable[[Any], Any], value: Any) -> tuple[Any, str | None, str | None]:
    try:
        return fn(value), None, None
    except FieldError as exc:
        return None, exc.error_type, str(exc)


def _lookup(con: duckdb.DuckDBPyConnection, values_sql: str, fn: Callable[[Any], Any],
            out_type: pa.DataType, raw_type: pa.DataType | None = None) -> pa.Table:
    """``raw -> (value, err, msg)`` for every distinct non-null value that ``values_sql`` yields."""
    raws = con.sql(f"SELECT DISTINCT v FROM ({values_sql}) WHERE v IS NOT NULL").to_arrow_table().column(0)
    values, errs, msgs = [], [], []
    for raw in raws.to_pylist():
        value, err, msg = _outcome(fn, raw)
        values.append(value)
        errs.append(err)
        msgs.append(msg)
    return pa.table({"raw": raws if raw_type is None else raws.cast(raw_type),
                     "value": pa.array(values, out_type), "err": pa.array(errs, pa.string()),
                     "msg": pa.array(msgs, pa.string())})


def _epoch_us(ts: dt.datetime) -> int:
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _naive_from_us(us: int) -> dt.datetime:
    try:
        return _EPOCH + dt.timedelta(microseconds=us)
    except OverflowError:
        raise FieldError("OUT_OF_WINDOW", f"timestamp ({us} us since 1970) is beyond year 9999") from None


def _hour_offset_us(zone: str) -> Callable[[int], int | None]:
    """Return the UTC offset (us) of a local hour that holds no DST change; None for one that does."""
    tz = zone_info(zone)

    def offset(hour_us: int) -> int | None:
        start = _naive_from_us(hour_us)
        end = start + dt.timedelta(microseconds=_HOUR_US - 1)
        offsets = {t.replace(tzinfo=tz, fold=fold).utcoffset() for t in (start, end) for fold in (0, 1)}
        if len(offsets) != 1:
            return None
        (off,) = offsets
        return off // dt.timedelta(microseconds=1)  # type: ignore[operator]

    return offset


_EXACT_INT = 2**53  # integers below it are exact doubles


def _fast_amount(kind: str, config: ReaderConfig) -> str:
    """Return a SQL predicate true only for values :func:`parse_amount` accepts unchanged.

    A format string over the column: those values skip Python (typed floats and integers, the bulk of
    large inputs).

    A float ``x`` below 1e12 with ``round(x * 100) / 100 = x`` is the double nearest to ``k/100``
    for an integer ``k``, so ``repr(x)`` has at most two decimals (no ``SUB_CENT``); comparing
    doubles orders them as their ``repr`` decimals do (the ``OUT_OF_RANGE`` check). Everything
    else (strings, decimals, NaN, sub-cent or huge values) goes through Python; the differential
    test in ``tests/io/test_reader_parity.py`` checks both paths against CSV.
    """
    limit = repr(float(config.max_abs_amount))
    if kind == "float":
        cents = "" if config.sub_cent == "keep" else " AND round({0} * 100) / 100 = {0}"
        return "(isfinite({0}) AND abs({0}) <= " + limit + " AND abs({0}) < 1e12" + cents + ")"
    if kind == "int":
        return ("(abs(CAST({0} AS DOUBLE)) < " + str(_EXACT_INT) + " AND abs(CAST({0} AS DOUBLE)) <= " + limit + ")")
    return "(false AND {0} IS NULL)"


@dataclass
class ParquetScan:
    """The canonical-row SQL of some Parquet files and the lookup tables it joins."""

    sql: str  # every row read (not excluded): canonical columns plus error, error_col, message, raw
    lookups: dict[str, pa.Table] = field(default_factory=dict)
    valid_sql: str = ""  # the canonical rows (one per order for line items)
    excluded_sql: str = ""  # rows dropped by include/exclude: source_file, excluded (rule column), n
    #: The canonical rows with ``ts`` in [:data:`RANGE_LO`, :data:`RANGE_HI`) (two ``DATE`` parameters), whose
    #: raw timestamps are also compared with those days, widened by one, inside the scan, so that Parquet
    #: row groups whose statistics lie outside are skipped; "" where that is not exact (line items, parsed
    #: or local-time timestamps): see :func:`range_sql`.
    range_sql: str = ""
    #: ``(rows, ts_min, ts_max)`` of every row group (naive UTC ``datetime``), when :attr:`range_sql` is set
    #: and every row group has timestamp statistics; else empty.
    row_groups: list[tuple[int, dt.datetime, dt.datetime]] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)  # category attribute -> lookup whose ``value`` holds its values

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Register the lookup tables on ``con`` so that :attr:`sql` can join them."""
        for name, table in self.lookups.items():
            con.register(name, table)


def _amount_column(kind: str, amount_of: Callable[[Any], float], null_amount: tuple[Any, str | None, str | None],
                   add: Callable[..., str], raw: str, config: ReaderConfig) -> tuple[str, str, str]:
    """Return SQL of an amount column's value, error and message: the fast path, else a lookup."""
    a_raw = "CAST(r.a AS VARCHAR)" if kind == "string" else "r.a"
    fast = _fast_amount(kind, config)  # a SQL predicate over {0}: values parse_amount surely accepts as is
    lk = add("amount", f"SELECT {a_raw.replace('r.a', 'a')} AS v FROM {raw} WHERE NOT coalesce({fast.format('a')}, false)",
             amount_of, pa.float64(), a_raw)
    if lk:
        is_fast = f"coalesce({fast.format('r.a')}, false)"
        amount = f"CASE WHEN {is_fast} THEN CAST(r.a AS DOUBLE) + 0.0 ELSE {lk}.value END"
        amount_err = f"CASE WHEN {is_fast} THEN NULL ELSE {lk}.err END"
        amount_msg = f"CASE WHEN {is_fast} THEN NULL ELSE {lk}.msg END"
    else:
        amount, amount_err, amount_msg = "CAST(r.a AS DOUBLE) + 0.0", "NULL", "NULL"
    amount_err = f"CASE WHEN r.a IS NULL THEN {literal(null_amount[1])} ELSE {amount_err} END"
    amount_msg = f"CASE WHEN r.a IS NULL THEN {literal(null_amount[2])} ELSE {amount_msg} END"
    return amount, amount_err, amount_msg


def _line_amounts(con: duckdb.DuckDBPyConnection, raw: str, m: GenericMapping, config: ReaderConfig,
                  scan: ParquetScan, joins: list[str], token: str) -> tuple[str, str, str, str]:
    """``quantity x unit_price`` per distinct pair through :func:`~spendlab.io.lineitems.line_amount`."""
    pairs = con.sql(f"SELECT DISTINCT q, p FROM {raw}").to_arrow_table()
    values, errs, msgs, cols = [], [], [], []
    for q, p in zip(pairs.column(0).to_pylist(), pairs.column(1).to_pylist(), strict=True):
        try:
            value, err, msg, col = float(line_amount("" if q is None else q, "" if p is None else p, m, config)), \
                None, None, None
        except RowReject as exc:
            value, err, msg, col = None, exc.error_type, str(exc), exc.column
        values.append(value)
        errs.append(err)
        msgs.append(msg)
        cols.append(col)
    name = f"{token}_line"
    scan.lookups[name] = pa.table({"q": pairs.column(0), "p": pairs.column(1), "value": pa.array(values, pa.float64()),
                                   "err": pa.array(errs, pa.string()), "msg": pa.array(msgs, pa.string()),
                                   "col": pa.array(cols, pa.string())})
    con.register(name, scan.lookups[name])
    joins.append(f"LEFT JOIN {name} ON {name}.q IS NOT DISTINCT FROM r.q AND {name}.p IS NOT DISTINCT FROM r.p")
    return f"{name}.value", f"{name}.err", f"{name}.msg", f"{name}.col"


@dataclass
class _ScanParts:
    """What every part of one scan statement shares: the raw rows, the column kinds, the lookups."""

    con: duckdb.DuckDBPyConnection
    config: ReaderConfig
    token: str
    raw: str  # the files' rows: source_file, file_row_number, u, t, a and the extra columns by key
    extra: dict[str, str | None]  # key in ``raw`` -> mapped column (line items, order, rules)
    kinds: dict[str, str]  # mapped column -> _duck_kind
    scan: ParquetScan
    joins: list[str] = field(default_factory=list)

    @property
    def mapping(self) -> GenericMapping:
        """Return the generic mapping the scan reads by."""
        return self.config.generic

    def add(self, role: str, values_sql: str, fn: Callable[[Any], Any], out_type: pa.DataType, on: str,
            raw_type: pa.DataType | None = None) -> str:
        """Join the lookup of ``fn`` over ``values_sql`` on ``on``; return its name ("" when not needed)."""
        name = f"{self.token}_{role}"
        table = _lookup(self.con, values_sql, fn, out_type, raw_type)
        if table.num_rows == 0 and role in ("user", "amount"):
            return ""  # every value took the fast path: no join, no per-row test (clean large inputs)
        self.scan.lookups[name] = table
        self.con.register(name, self.scan.lookups[name])
        self.joins.append(f"LEFT JOIN {name} ON {name}.raw = {on}")
        return name


@dataclass
class _AttributeSql:
    """The SQL of the declared attributes inside :func:`build_scan` (empty strings when there are none)."""

    values: str = ""  # ", <value> AS __a_<name>, <err> AS __e<i>, <msg> AS __m<i>" for the base select
    errors: str = ""  # ", __e0, __e1" for the first-error coalesce
    column: str = "NULL"  # the column of a row's first attribute error
    message: str = "NULL"  # that error's message
    names: str = ""  # ", __a_<name>" carried through to the checked lines
    valid: str = ""  # ", __a_<name> AS "<name>"" (one row per line)
    orders: str = ""  # the per-order aggregates: sums of amounts, sorted sets of categories
    levels: dict[str, str] = field(default_factory=dict)  # category attribute -> its lookup table's name


def _attribute_sql(m: GenericMapping, config: ReaderConfig, add: Callable[..., str], raw: str) -> _AttributeSql:
    """Return every attribute's value, error and message, and how lines and orders carry them.

    Values go through :func:`spendlab.io.attributes.value_rule` per distinct value, joined back.
    """
    out = _AttributeSql()
    cols, msgs = [], []
    for i, (name, spec) in enumerate(m.attributes.items()):
        out_type = pa.float64() if spec.type == "amount" else pa.string()
        lk = add(f"attr{i}", f"SELECT at{i} AS v FROM {raw}", value_rule(spec, config), out_type, f"r.at{i}")
        out.values += f", {lk}.value AS __a_{name}, {lk}.err AS __e{i}, {lk}.msg AS __m{i}"
        out.errors += f", __e{i}"
        cols.append(f"WHEN __e{i} IS NOT NULL THEN {literal(spec.column)}")
        msgs.append(f"__m{i}")
        out.names += f", __a_{name}"
        out.valid += f', __a_{name} AS {quote(name)}'
        if spec.type == "category":
            out.levels[name] = lk  # every value of the attribute is one of the lookup's values
        out.orders += (f", CAST(sum(CAST(__a_{name} AS DECIMAL(38, 9))) AS DOUBLE) + 0.0 AS {quote(name)}"
                       if spec.type == "amount" else
                       f", coalesce(list_sort(list_distinct(list(__a_{name}) FILTER (WHERE __a_{name} IS NOT NULL))), "
                       f"CAST([] AS VARCHAR[])) AS {quote(name)}")
    if cols:
        out.column, out.message = f"CASE {' '.join(cols)} END", f"coalesce({', '.join(msgs)})"
    return out


def _lookup_sql(p: _ScanParts, lookups: list[LookupTable], out: _AttributeSql) -> None:
    """Join each lookup table on its trimmed text key; add its columns to ``out`` as category attributes.

    Each line also carries its key (``__k<i>``) and whether the table has it (``__h<i>``), so
    :func:`scan_parquet` can count unused keys and unmatched lines; neither reaches the canonical rows.
    """
    for i, table in enumerate(lookups):
        name = f"{p.token}_lookup{i}"
        p.scan.lookups[name] = table.arrow()
        p.con.register(name, p.scan.lookups[name])
        key = f"nullif(trim(CAST(r.lk{i} AS VARCHAR)), '')"
        p.joins.append(f"LEFT JOIN {name} ON {name}.key = {key}")
        out.values += f", {key} AS __k{i}, {name}.hit AS __h{i}"
        out.names += f", __k{i}, __h{i}"
        for j, attr in enumerate(table.spec.columns):
            out.values += f", {name}.c{j} AS __a_{attr}"
            out.names += f", __a_{attr}"
            out.valid += f", __a_{attr} AS {quote(attr)}"
            out.orders += (f", coalesce(list_sort(list_distinct(list(__a_{attr}) FILTER (WHERE __a_{attr} IS NOT NULL)))"
                           f", CAST([] AS VARCHAR[])) AS {quote(attr)}")


def _count_lookups(con: duckdb.DuckDBPyConnection, lines: str, lookups: list[LookupTable]) -> None:
    """Set each table's used keys and unmatched lines from the accepted lines of ``lines``."""
    for i, table in enumerate(lookups):
        rows = con.execute(f"SELECT DISTINCT __k{i} FROM ({lines}) WHERE error IS NULL AND __h{i}").fetchall()
        table.used = {k for (k,) in rows}
        (unmatched,) = con.execute(
            f"SELECT count(*) FROM ({lines}) WHERE error IS NULL AND __h{i} IS NULL").fetchall()[0]
        table.unmatched_lines = int(unmatched)




def _scan_parts(con: duckdb.DuckDBPyConnection, files: list[Path], config: ReaderConfig) -> _ScanParts:
    """Name the files' rows and read the mapped columns' kinds (no row is read yet)."""
    m = config.generic
    token = f"__spendlab_pq{next(_TOKENS)}"
    file_list = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    src = f"read_parquet({file_list}, filename=true, file_row_number=true, union_by_name=true)"
    u, t = quote(m.user_col), quote(m.ts_col)
    a = quote(m.amount_col) if m.amount_col else "NULL"
    extra = {"q": m.quantity_col, "p": m.unit_price_col, "o": m.order_col,
             **{f"x{i}": c for i, c in enumerate([*m.include, *m.exclude])},
             **{f"at{i}": a.column for i, a in enumerate(m.attributes.values())},
             **{f"lk{i}": lk.line_column for i, lk in enumerate(m.lookups.values())}}
    extra_sql = "".join(f", {quote(c)} AS {k}" for k, c in extra.items() if c)
    names = ", ".join(quote(c) for c in m.required_columns())
    kinds = {name: _duck_kind(typ) for name, typ, *_ in con.execute(f"DESCRIBE SELECT {names} FROM {src}").fetchall()}
    raw = (f"(SELECT filename AS source_file, file_row_number, {u} AS u, {t} AS t, {a} AS a{extra_sql} "
           f"FROM {src})")
    return _ScanParts(con, config, token, raw, extra, kinds, ParquetScan(""))


def _user_sql(p: _ScanParts) -> tuple[str, str, str]:
    """Return SQL of the user id, its error and message: integers as is, strings by the CSV id policy."""
    # Integers keep their type here (an int64 key groups and joins far faster than its text;
    # Transactions.register casts them to their decimal text unless asked for native ids).
    null_user = _outcome(normalise_user_id, "")
    if p.kinds[p.mapping.user_col] == "int":
        user, user_err, user_msg = "r.u", "NULL", "NULL"
    else:
        # Fast path, provably the same: printable ASCII without surrounding spaces is its own
        # normal form (nothing to strip, nothing unprintable); only other ids go to Python.
        fast = "regexp_full_match({0}, '[!-~]([ -~]*[!-~])?')"
        lk = p.add("user", f"SELECT CAST(u AS VARCHAR) AS v FROM {p.raw} WHERE NOT {fast.format('CAST(u AS VARCHAR)')}",
                   normalise_user_id, pa.string(), "CAST(r.u AS VARCHAR)")
        is_fast = fast.format("CAST(r.u AS VARCHAR)")
        if not lk:
            user, user_err, user_msg = "CAST(r.u AS VARCHAR)", "NULL", "NULL"
        else:
            user = f"CASE WHEN {is_fast} THEN CAST(r.u AS VARCHAR) ELSE {lk}.value END"
            user_err = f"CASE WHEN {is_fast} THEN NULL ELSE {lk}.err END"
            user_msg = f"CASE WHEN {is_fast} THEN NULL ELSE {lk}.msg END"
    user_err = f"CASE WHEN r.u IS NULL THEN {literal(null_user[1])} ELSE {user_err} END"
    user_msg = f"CASE WHEN r.u IS NULL THEN {literal(null_user[2])} ELSE {user_msg} END"
    return user, user_err, user_msg


def _amount_sql(p: _ScanParts) -> tuple[str, str, str, str]:
    """Return SQL of the amount, its error, message and column: the Python value through ``parse_amount``."""
    m, config = p.mapping, p.config

    def amount_of(value: Any) -> float:
        return parse_amount(value, thousands=config.thousands, max_abs=config.max_abs_amount,
                            sub_cent=config.sub_cent)

    null_amount = _outcome(amount_of, "")
    if m.amount_col is None:
        return _line_amounts(p.con, p.raw, m, config, p.scan, p.joins, p.token)
    amount, amount_err, amount_msg = _amount_column(p.kinds[m.amount_col], amount_of, null_amount, p.add, p.raw,
                                                    config)
    return amount, amount_err, amount_msg, literal(m.amount_col)


def _local_ts_sql(p: _ScanParts) -> tuple[str, str, str]:
    """Return SQL of a naive timestamp read in ``reader.timezone``: one offset per hour, DST hours one by one."""
    config, raw = p.config, p.raw
    local = "epoch_us(CAST(r.t AS TIMESTAMP))"
    hour = f"({local} - ((({local}) % {_HOUR_US}) + {_HOUR_US}) % {_HOUR_US})"  # floor, also before 1970
    hours = p.add("hour", f"SELECT ({hour.replace('r.t', 't')}) AS v FROM {raw}", _hour_offset_us(config.timezone),
                  pa.int64(), hour)
    # the few values inside an hour with a DST change: localize() one by one
    dirty = (f"SELECT {local.replace('r.t', 't')} AS v FROM {raw} WHERE ({hour.replace('r.t', 't')}) IN "
             f"(SELECT raw FROM {hours} WHERE value IS NULL AND err IS NULL)")

    def local_value(us: int) -> int:
        return _epoch_us(localize(_naive_from_us(us), config.timezone, config.dst_policy))

    lk = p.add("dst", dirty, local_value, pa.int64(), local)
    return f"coalesce({local} - {hours}.value, {lk}.value)", f"coalesce({hours}.err, {lk}.err)", \
        f"coalesce({hours}.msg, {lk}.msg)"


def _epoch_int_sql(unit: str, origin: dt.date) -> tuple[str, str, str]:
    """Return SQL of an integer column of ``unit`` since ``origin`` as microseconds, its error and message.

    Exact integer arithmetic, rounding down as the text parser does; a value past the years 1 .. 9999
    is the parser's ``DATE_PARSE`` error with its message.
    """
    per = TS_UNITS[unit]
    base = _epoch_us(dt.datetime(origin.year, origin.month, origin.day, tzinfo=UTC))
    low = _epoch_us(dt.datetime(1, 1, 1, tzinfo=UTC)) - base
    high = _epoch_us(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) - base
    t = "CAST(r.t AS HUGEINT)"
    if per:
        lo_t, hi_t, micros = -(-low // per), high // per, f"{t} * {per}"
    else:  # nanoseconds: floor division by 1,000
        lo_t, hi_t, micros = low * 1000, high * 1000 + 999, f"({t} - (({t} % 1000) + 1000) % 1000) // 1000"
    inside = f"{t} BETWEEN {lo_t} AND {hi_t}"
    quote = "''"  # a quote inside an SQL string literal
    message = f"'timestamp {quote}' || CAST(r.t AS VARCHAR) || '{quote} ({unit} from {origin}) is out of range'"
    return (f"CASE WHEN {inside} THEN CAST({micros} + {base} AS BIGINT) END",
            f"CASE WHEN {inside} THEN NULL ELSE 'DATE_PARSE' END", f"CASE WHEN {inside} THEN NULL ELSE {message} END")


def _ts_sql(p: _ScanParts) -> tuple[str, str, str]:
    """Return SQL of the timestamp (us), its error and message.

    Strings go through the CSV parser; aware instants are kept; naive values are read in
    ``reader.timezone``.
    """
    m, config = p.mapping, p.config
    parse_ts = timestamp_parser(m.ts_format, zone=config.timezone, dst_policy=config.dst_policy, unit=m.ts_unit,
                                origin=m.epoch)
    null_ts = _outcome(parse_ts, "")
    t_kind = p.kinds[m.ts_col]
    if t_kind == "int" and m.ts_unit in ("s", "ms", "us", "ns"):
        ts_us, ts_err, ts_msg = _epoch_int_sql(m.ts_unit, m.epoch)
    elif t_kind == "string" or (m.ts_unit is not None and t_kind in ("int", "float", "decimal")):
        lk = p.add("ts", f"SELECT CAST(t AS VARCHAR) AS v FROM {p.raw}", lambda s: _epoch_us(parse_ts(s)),
                   pa.int64(), "CAST(r.t AS VARCHAR)")
        ts_us, ts_err, ts_msg = f"{lk}.value", f"{lk}.err", f"{lk}.msg"
    elif t_kind == "aware":
        ts_us, ts_err, ts_msg = "epoch_us(r.t)", "NULL", "NULL"
    elif config.timezone == "UTC":
        ts_us, ts_err, ts_msg = "epoch_us(CAST(r.t AS TIMESTAMP))", "NULL", "NULL"
    else:
        ts_us, ts_err, ts_msg = _local_ts_sql(p)
    ts_err = f"CASE WHEN r.t IS NULL THEN {literal(null_ts[1])} ELSE {ts_err} END"
    ts_msg = f"CASE WHEN r.t IS NULL THEN {literal(null_ts[2])} ELSE {ts_msg} END"
    return ts_us, ts_err, ts_msg


def _rules_sql(p: _ScanParts) -> tuple[str, bool]:
    """Return SQL naming the include/exclude rule that drops a row (the first one), and whether any exists."""
    m = p.mapping
    excluded = []
    for i, col in enumerate([*m.include, *m.exclude]):
        def keep(value: Any, col: str = col) -> bool:
            return kept(value, col, m)

        lk = p.add(f"rule{i}", f"SELECT x{i} AS v FROM {p.raw}", keep, pa.bool_(), f"r.x{i}")
        excluded.append(f"CASE WHEN (CASE WHEN r.x{i} IS NULL THEN {str(keep(None)).upper()} ELSE {lk}.value END) "
                        f"THEN NULL ELSE {literal(col)} END")
    return (f"coalesce({', '.join(excluded)})" if excluded else "CAST(NULL AS VARCHAR)"), bool(excluded)


def _order_sql(p: _ScanParts) -> tuple[str, str]:
    """Return SQL of the order key and the message of a line without one (NULL without ``order_col``)."""
    if not p.mapping.order_col:
        return "NULL", "NULL"
    lk = p.add("order", f"SELECT CAST(o AS VARCHAR) AS v FROM {p.raw}", order_key, pa.string(), "CAST(r.o AS VARCHAR)")
    return f"{lk}.value", f"coalesce({lk}.msg, 'order id is empty')"


def _window_us(config: ReaderConfig) -> tuple[int, int, dt.date]:
    """Return the accepted window as [lo, hi) in us since 1970, and its last day."""
    window_end = config.window_end or dt.date.today()
    lo = _epoch_us(dt.datetime.combine(config.window_start, dt.time(), UTC))
    hi = _epoch_us(dt.datetime.combine(window_end, dt.time(), UTC)) + 86_400 * 1_000_000
    return lo, hi, window_end


def _checked_sql(base: str, m: GenericMapping, lo: int, hi: int, attrs: _AttributeSql) -> tuple[str, str]:
    """Return the kept rows with their first error, and the SQL of an order conflict.

    An order belongs to its first valid line's user; other users' lines conflict.
    """
    outside = f"ts_us < {lo} OR ts_us >= {hi}"
    checked = (
        f"SELECT *, coalesce(user_err, amount_err, ts_err, window_err{attrs.errors}) AS error1 FROM "
        f"(SELECT *, CASE WHEN {outside} THEN 'OUT_OF_WINDOW' END AS window_err FROM ({base})) WHERE excluded IS NULL"
    )
    if not m.order_col:
        return checked, "NULL"
    checked = (
        f"WITH c AS ({checked}), f AS (SELECT source_file, row_number() OVER (ORDER BY source_file) AS file_idx "
        f"FROM (SELECT DISTINCT source_file FROM c)), "
        f"o AS (SELECT order_key, arg_min(user_id, file_idx * 1099511627776 + line) AS owner "
        f"FROM c JOIN f USING (source_file) "
        f"WHERE error1 IS NULL AND order_key IS NOT NULL GROUP BY order_key) "
        f"SELECT c.*, o.owner, f.file_idx FROM c JOIN f USING (source_file) LEFT JOIN o USING (order_key)"
    )
    return checked, "CASE WHEN order_key IS NULL THEN 'NULL_KEY' WHEN user_id <> owner THEN 'ORDER_CONFLICT' END"


def _lines_sql(checked: str, conflict: str, m: GenericMapping, config: ReaderConfig, window_end: dt.date,
               attrs: _AttributeSql) -> str:
    """Return every kept row as ``user_id, ts, amount, n_items, source_file, line, error, error_col, message``."""
    cols = (literal(m.user_col), literal(m.ts_col), literal(m.order_col) if m.order_col else "NULL")
    order_message = ("CASE WHEN order_key IS NULL THEN order_msg ELSE 'order ' || order_key || ' belongs to user '"
                     " || owner || ', not ' || user_id END") if m.order_col else "NULL"
    return (
        "SELECT user_id, CASE WHEN ts_us IS NULL THEN NULL ELSE make_timestamp(ts_us) END AS ts, amount, "
        "CAST(NULL AS BIGINT) AS n_items, source_file, line, "
        f"coalesce(error1, {conflict}) AS error, "
        f"CASE WHEN user_err IS NOT NULL THEN {cols[0]} WHEN amount_err IS NOT NULL THEN amount_col "
        f"WHEN coalesce(ts_err, window_err) IS NOT NULL THEN {cols[1]} "
        f"WHEN error1 IS NOT NULL THEN {attrs.column} ELSE {cols[2]} END AS error_col, "
        f"coalesce(user_msg, amount_msg, ts_msg, CASE WHEN window_err IS NOT NULL THEN "
        f"'timestamp is outside {config.window_start} .. {window_end}' END, {attrs.message}, "
        f"{order_message}) AS message, raw, "
        f"{'order_key, file_idx' if m.order_col else 'NULL AS order_key, NULL AS file_idx'}{attrs.names} "
        f"FROM ({checked})"
    )


def _valid_sql(lines: str, m: GenericMapping, attrs: _AttributeSql) -> str:
    """Return the canonical rows: the valid lines, or one row per order for line items (first line's user and time)."""
    if not m.order_col:
        return (f"SELECT user_id, ts, amount, n_items, source_file, line{attrs.valid} FROM ({lines}) "
                "WHERE error IS NULL")
    k = "(file_idx * 1099511627776 + line)"  # file order, then line
    return (
        f"SELECT arg_min(user_id, {k}) AS user_id, arg_min(ts, {k}) AS ts, "
        f"CAST(sum(CAST(amount AS DECIMAL(38, 9))) AS DOUBLE) + 0.0 AS amount, CAST(NULL AS BIGINT) AS n_items, "
        f"arg_min(source_file, {k}) AS source_file, arg_min(line, {k}) AS line{attrs.orders} "
        f"FROM ({lines}) WHERE error IS NULL GROUP BY order_key"
    )


def build_scan(con: duckdb.DuckDBPyConnection, files: list[Path], config: ReaderConfig,
               lookups: list[LookupTable] | None = None) -> ParquetScan:
    """Return SQL of every row as ``user_id, ts, amount, n_items, source_file, line, error, error_col, message``.

    One statement, its parts in the CSV reader's check order (rules, user, amount, timestamp,
    window, order), so a row with several problems gets the first; the parts share the lookup tables
    registered on ``con`` (and kept in the returned scan).
    """
    m = config.generic
    p = _scan_parts(con, files, config)
    user, user_err, user_msg = _user_sql(p)
    amount, amount_err, amount_msg, amount_col = _amount_sql(p)
    ts_us, ts_err, ts_msg = _ts_sql(p)
    excluded_sql, has_rules = _rules_sql(p)
    order_sql, order_msg = _order_sql(p)
    attrs = _attribute_sql(m, config, p.add, p.raw)
    _lookup_sql(p, lookups or [], attrs)
    lo, hi, window_end = _window_us(config)
    sign = "1.0" if m.spend_is == "positive" else "-1.0"
    raw_cols = ", ".join(f"CAST(r.{k} AS VARCHAR)" for k in ("u", "t", "a", *[k for k, c in p.extra.items() if c])
                         if k != "a" or m.amount_col)
    base = (
        f"SELECT {user} AS user_id, {ts_us} AS ts_us, {sign} * {amount} + 0.0 AS amount, "
        f"{user_err} AS user_err, {user_msg} AS user_msg, {amount_err} AS amount_err, {amount_msg} AS amount_msg, "
        f"{amount_col} AS amount_col, {ts_err} AS ts_err, {ts_msg} AS ts_msg, {excluded_sql} AS excluded, "
        f"{order_sql} AS order_key, {order_msg} AS order_msg{attrs.values}, "
        f"r.source_file, CAST(r.file_row_number + 1 AS BIGINT) AS line, concat_ws(',', {raw_cols}) AS raw "
        f"FROM {p.raw} AS r {' '.join(p.joins)}"
    )
    checked, conflict = _checked_sql(base, m, lo, hi, attrs)
    scan = p.scan
    scan.sql = _lines_sql(checked, conflict, m, config, window_end, attrs)
    scan.excluded_sql = (f"SELECT source_file, excluded, count(*) AS n FROM ({base}) WHERE excluded IS NOT NULL "
                         "GROUP BY ALL") if has_rules else ""
    scan.valid_sql = _valid_sql(scan.sql, m, attrs)
    scan.range_sql = range_sql(scan.valid_sql, p.raw, m, p.kinds[m.ts_col], config.timezone)
    if scan.range_sql:
        scan.row_groups = ts_row_groups(files, m.ts_col)
    scan.levels = attrs.levels
    return scan


#: The parameters of :attr:`ParquetScan.range_sql`: the first day in range and the first day after it.
RANGE_LO, RANGE_HI = "spendlab_range_lo", "spendlab_range_hi"


def range_sql(valid: str, raw: str, m: GenericMapping, ts_kind: str, timezone: str) -> str:
    """Return ``valid`` (the canonical rows) restricted to ``ts`` in [:data:`RANGE_LO`, :data:`RANGE_HI`).

    The exact condition is on the canonical ``ts``; a second, wider one (a day either side) on the raw
    column inside the scan is what DuckDB can push into the Parquet reader, which then skips row
    groups by their statistics. It only drops rows the exact condition drops: the raw value is the
    instant itself (an aware timestamp, or a naive one read as UTC) and the day of margin covers any
    session time zone the comparison of an aware value with a naive bound uses. "" where no such
    raw condition exists: timestamps parsed from text or numbers, naive times in another zone, and
    line items (an order's time is its first line's, so dropping lines would change orders).
    """
    if m.order_col or valid.count(raw) != 1 or not (ts_kind == "aware" or (ts_kind == "naive" and timezone == "UTC")):
        return ""
    kind = "TIMESTAMPTZ" if ts_kind == "aware" else "TIMESTAMP"
    t = quote(m.ts_col)
    wide = (f"{t} >= CAST(CAST({RANGE_LO} AS DATE) - INTERVAL 1 DAY AS {kind}) "
            f"AND {t} < CAST(CAST({RANGE_HI} AS DATE) + INTERVAL 1 DAY AS {kind})")
    assert raw.endswith(")")
    pruned = valid.replace(raw, f"{raw[:-1]} WHERE {wide})")
    return (f"SELECT * FROM ({pruned}) WHERE ts >= CAST(CAST({RANGE_LO} AS DATE) AS TIMESTAMP) "
            f"AND ts < CAST(CAST({RANGE_HI} AS DATE) AS TIMESTAMP)")


def ts_row_groups(files: list[Path], ts_col: str) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """Return ``(rows, min, max)`` of ``ts_col`` in every row group of ``files`` (naive UTC); [] if any lacks them."""
    out = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        idx = meta.schema.names.index(ts_col) if ts_col in meta.schema.names else -1
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            if rg.num_rows == 0:
                continue
            stats = rg.column(idx).statistics if idx >= 0 else None
            if stats is None or not stats.has_min_max or not isinstance(stats.min, dt.datetime):
                return []
            lo, hi = (v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v for v in (stats.min, stats.max))
            out.append((rg.num_rows, lo, hi))
    return out


def scan_parquet(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    config: ReaderConfig,
    report: LoadReport,
    strict: bool,
    types: dict[str, Any] | None = None,
    lookups: list[LookupTable] | None = None,
) -> ParquetScan:
    """Count rows and rejects per file in one pass; return the scan of the valid canonical rows.

    ``types`` is :func:`check_parquet_files`' result when the caller already checked the footers;
    ``lookups`` (:mod:`spendlab.io.lookups`) are joined to the lines and their use counted.
    """
    if types is None:
        types = check_parquet_files(files, config.generic, strict)
    scan = build_scan(con, files, config, lookups)
    every = scan.sql
    counts = con.execute(
        "SELECT source_file, error, count(*), count(*) FILTER (error IS NULL AND amount < 0) "
        f"FROM ({every}) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    by_file: dict[str, FileReport] = {str(f): FileReport(str(f)) for f in files}
    report.files.extend(by_file.values())
    for name, err, n, refunds in counts:
        fr = by_file.setdefault(name, FileReport(name))
        fr.count(err, n)
        if refunds:
            fr.warnings["REFUND"] += refunds
    drift = types.get("_drift") or []
    if drift:
        for fr in by_file.values():
            fr.warnings["SCHEMA_DRIFT"] += 1
            fr.notes.extend(drift)
    if any(fr.rejected for fr in by_file.values()):
        bad = con.execute(
            f"SELECT source_file, line, error, error_col, raw, message FROM ({every}) "
            "WHERE error IS NOT NULL ORDER BY source_file, line"
        ).fetchall()
        for name, line, err, column, raw, message in bad:
            report.rejects.append(RejectRecord(name, line, column, err, raw or "", message or err, -1, line))
    if scan.excluded_sql:
        for name, col, n in con.execute(scan.excluded_sql).fetchall():
            fr = by_file.setdefault(name, FileReport(name))
            fr.rows_in += n
            fr.excluded += n
            fr.exclusions[col] += n
    _count_lookups(con, every, lookups or [])
    scan.sql = scan.valid_sql
    return scan
