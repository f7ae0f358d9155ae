"""A user attribute table beside the transactions (``dataset.users``), validated like every input.

One row per user and ``valid_from``: a household's age band, income band or size, and the day from
which that row holds (empty = always). Rows are checked one by one with the readers' own rules (the
key is a user id under :func:`~spendlab.io.parsing.normalise_user_id`, a category under the attribute
rule, a number finite); a bad row is rejected naming file, line, column and reason, so
``rows_in = accepted + rejected``. Two rows of one user with the same ``valid_from`` are
``DUPLICATE_KEY`` (the later one). Features join the table **as of the cutoff**
(:mod:`spendlab.features.covariates`): a row valid from after the cutoff is not seen.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from spendlab.config import UserTableSpec
from spendlab.errors import RowError
from spendlab.io.attributes import category_value
from spendlab.io.parsing import FieldError, normalise_user_id
from spendlab.io.rejects import FileReport, Mode, RejectRecord
from spendlab.io.side_tables import read_side_table

#: Suffix of the view a :class:`UserTable` is registered under, beside its transactions view.
USERS_SUFFIX = "__users"


def users_view(view: str) -> str:
    """Return the name of the user table registered beside transactions view ``view``."""
    return f"{view}{USERS_SUFFIX}"


@dataclass
class UserTable:
    """The accepted rows of a user table (``user_id``, ``valid_from``, the columns) and its report.

    ``unused_keys`` (keys no transaction uses) and ``missing_users`` (transaction users without a
    row) are filled by :func:`link_counts`.
    """

    spec: UserTableSpec
    table: pa.Table
    report: FileReport
    rejects: list[RejectRecord] = field(default_factory=list)
    unused_keys: int | None = None
    missing_users: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the load report of the table, for ``--json`` output and MLflow."""
        return {**self.report.as_dict(), "unused_keys": self.unused_keys, "missing_users": self.missing_users}


def _valid_from(raw: Any) -> dt.datetime | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, dt.datetime):
        return raw.astimezone(dt.UTC).replace(tzinfo=None) if raw.tzinfo else raw
    if isinstance(raw, dt.date):
        return dt.datetime.combine(raw, dt.time())
    text = str(raw).strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FieldError("DATE_PARSE", f"valid_from {text!r} is not an ISO date or timestamp") from None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _number(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise FieldError("NUMBER_FORMAT", f"{raw!r} is not a number")
    try:
        value = float(str(raw).strip()) if isinstance(raw, str) else float(raw)
    except ValueError:
        raise FieldError("NUMBER_FORMAT", f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise FieldError("NON_FINITE", f"{raw!r} is not a finite number")
    return value


def _check_row(spec: UserTableSpec, row: dict[str, Any]) -> tuple[str, dt.datetime | None, dict[str, Any]]:
    """One row through the rules; a bad value raises ``(column, FieldError)``."""
    def checked(column: str, fn: Any, raw: Any) -> Any:
        try:
            return fn(raw)
        except FieldError as exc:
            raise _BadValue(column, exc) from None

    key = checked(spec.key, lambda v: normalise_user_id(None if v is None else str(v)), row[spec.key])
    since = checked(spec.valid_from, _valid_from, row[spec.valid_from]) if spec.valid_from else None
    values = {name: checked(spec.sources[name], category_value if kind == "category" else _number,
                            row[spec.sources[name]])
              for name, kind in spec.kinds.items()}
    return key, since, values


class _BadValue(Exception):
    def __init__(self, column: str, error: FieldError) -> None:
        self.column, self.error = column, error
        super().__init__(str(error))


def load_users(spec: UserTableSpec, *, mode: Mode = Mode.QUARANTINE) -> UserTable:
    """Read and validate ``spec.input`` (CSV or Parquet) into a :class:`UserTable`.

    Raises
    ------
    InputFileError
        The file is unreadable or lacks a declared column.
    RowError
        ``mode`` is strict and a row is bad (the message names file, line, column and reason).
    """
    path = Path(spec.input)
    columns = [spec.key, *([spec.valid_from] if spec.valid_from else []), *spec.sources.values()]
    raw, first_line = read_side_table(path, columns, what="the user table", setting="dataset.users")
    report, rejects = FileReport(str(path)), []
    keys: list[str] = []
    since: list[dt.datetime | None] = []
    values: dict[str, list[Any]] = {c: [] for c in spec.columns}
    seen: set[tuple[str, dt.datetime | None]] = set()
    for i, row in enumerate(raw.to_pylist()):
        report.rows_in += 1
        line = first_line + i
        try:
            key, valid, vals = _check_row(spec, row)
            if (key, valid) in seen:
                raise _BadValue(spec.key, FieldError("DUPLICATE_KEY", f"user {key!r} has two rows valid from {valid}"))
        except _BadValue as bad:
            reject = RejectRecord(str(path), line, bad.column, bad.error.error_type,
                                  ",".join("" if row[c] is None else str(row[c]) for c in columns), str(bad.error))
            if mode is Mode.STRICT:
                raise RowError(f"strict mode: {reject.describe()}") from None
            rejects.append(reject)
            report.rejected += 1
            report.errors[bad.error.error_type] += 1
            continue
        seen.add((key, valid))
        report.accepted += 1
        keys.append(key)
        since.append(valid)
        for c, v in vals.items():
            values[c].append(v)
    table = pa.table({"user_id": pa.array(keys, pa.string()), "valid_from": pa.array(since, pa.timestamp("us")),
                      **{c: pa.array(v, pa.string() if spec.kinds[c] == "category" else pa.float64())
                         for c, v in values.items()}})
    if mode is Mode.COLLECT and rejects:
        raise RowError(f"{len(rejects)} bad row(s) in the user table; first: {rejects[0].describe()}")
    return UserTable(spec, table, report, rejects)


def link_counts(users: UserTable, con: Any, view: str = "transactions") -> UserTable:
    """Fill ``unused_keys`` and ``missing_users`` from transactions view ``view`` on DuckDB ``con``.

    Returns
    -------
    UserTable
        ``users`` itself, its two counts set.
    """
    name = f"{users_view(view)}__keys"
    con.register(name, users.table.select(["user_id"]))
    try:
        unused, missing = con.execute(
            f"WITH k AS (SELECT DISTINCT user_id FROM {name}), "
            f't AS (SELECT DISTINCT CAST(user_id AS VARCHAR) AS user_id FROM "{view}") '
            "SELECT (SELECT count(*) FROM k WHERE user_id NOT IN (SELECT user_id FROM t)), "
            "(SELECT count(*) FROM t WHERE user_id NOT IN (SELECT user_id FROM k))").fetchall()[0]
    finally:
        con.unregister(name)
    users.unused_keys, users.missing_users = int(unused), int(missing)
    return users
