"""Row validation of delta and summary files: every check in SQL, a row's first failing one recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from spendlab.io.parsing import FieldError, normalise_user_id

if TYPE_CHECKING:
    from spendlab.reconcile.inputs import LoadedFile


DELTA_COLUMNS: tuple[str, ...] = ("user_id", "total_spend", "count_saved_items", "loyalty_credits", "batch_id")
VALUE_COLUMNS: tuple[str, ...] = DELTA_COLUMNS[1:]
MONEY_COLUMNS: tuple[str, ...] = ("total_spend", "loyalty_credits")  # compared with a tolerance
COUNT_COLUMNS: tuple[str, ...] = ("count_saved_items", "batch_id")  # compared exactly

#: Money is exact: DECIMAL(38, 12) holds 20 digits before the point and 12 after, and a sum of a
#: million such values still fits; a value with more digits is rejected, never rounded.
MONEY_SQL_TYPE = "DECIMAL(38, 12)"
_NUMBER = r"[0-9]{1,20}(\.[0-9]{1,12})?"
_INTEGER = r"[0-9]+"


def key_error(user: str | None) -> str | None:
    """Return why ``user`` breaks the transaction readers' id rule (a character that does not print), or None."""
    if not user or not user.strip():
        return None  # empty keys are NULL_KEY, checked first
    try:
        normalise_user_id(user)
    except FieldError as exc:
        return str(exc)
    return None


def register_key_check(con: duckdb.DuckDBPyConnection) -> None:
    """Make :func:`key_error` callable in SQL as ``spendlab_key_error`` (once per connection)."""
    known = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'spendlab_key_error'").fetchall()
    if not known[0][0]:
        con.create_function("spendlab_key_error", key_error, ["VARCHAR"], "VARCHAR", null_handling="special",
                            side_effects=False)


def _check(cond: str, error: str, column: str, message: str) -> tuple[str, str, str, str]:
    return cond, error, column, message


def _checks(kind: str) -> list[tuple[str, str, str, str]]:
    """List (SQL condition, error_type, column, SQL message) in the order a row is checked."""
    nullable = kind == "summary"
    out = [
        _check("pre_error IS NOT NULL", "pre_error", "''", "pre_message"),
        _check("nf > __H__", "'TOO_MANY_COLUMNS'", "''", "'expected __H__ fields, found ' || nf"),
        _check("nf < __H__", "'MISSING_COLUMNS'", "''", "'expected __H__ fields, found ' || nf"),
        _check("coalesce(user_id, '') = ''", "'NULL_KEY'", "'user_id'", "'user_id is empty'"),
        _check("NOT regexp_full_match(user_id, '[ -~]*') AND spendlab_key_error(user_id) IS NOT NULL",
               "'INVALID_KEY'", "'user_id'", "spendlab_key_error(user_id)"),
    ]
    for col in VALUE_COLUMNS:
        v = f"c_{col}"
        empty = f"{v} = ''"
        skip = f"NOT ({empty}) AND " if nullable else ""
        if col == "batch_id":
            err = "'INVALID_BATCH_ID'"
            # 0 is a batch like any other (real client exports start at 0): only a sign, a fraction,
            # anything but ASCII digits, or a value above int64 is an invalid batch id.
            out.append(_check(f"{skip}NOT regexp_full_match({v}, '{_INTEGER}')", err, f"'{col}'",
                              f"'batch_id must be a non-negative integer, got ''' || {v} || ''''"))
            out.append(_check(f"{skip}TRY_CAST({v} AS BIGINT) IS NULL", err, f"'{col}'",
                              f"'batch_id ' || {v} || ' is above the int64 maximum'"))
        else:
            rx = _NUMBER if col in MONEY_COLUMNS else _INTEGER
            typ = MONEY_SQL_TYPE if col in MONEY_COLUMNS else "BIGINT"
            out.append(_check(f"{skip}(NOT regexp_full_match({v}, '{rx}') OR TRY_CAST({v} AS {typ}) IS NULL)",
                              "'INVALID_NUMBER'", f"'{col}'",
                              f"'{col} must be a non-negative {'number (at most 20 digits, 12 decimals)' if typ != 'BIGINT' else 'integer'}, "
                              f"got ''' || {v} || ''''"))
    return out


def _validate_sql(kind: str, n_header: int, stage_sql: str, raw_expr: str = "raw") -> str:
    """Each row's first failing check, evaluated once; its error type, column and message looked up."""
    checks = [tuple(part.replace("__H__", str(n_header)) for part in c) for c in _checks(kind)]
    first = " ".join(f"WHEN {c[0]} THEN {i}" for i, c in enumerate(checks))

    def pick(i: int) -> str:
        return "CASE e " + " ".join(f"WHEN {j} THEN {c[i]}" for j, c in enumerate(checks)) + " END"

    return (f"SELECT line, CASE WHEN e IS NOT NULL THEN {raw_expr} END AS raw, user_id, c_total_spend, "
            "c_count_saved_items, c_loyalty_credits, c_batch_id, "
            f"{pick(1)} AS error_type, {pick(2)} AS err_column, {pick(3)} AS message "
            f"FROM (SELECT *, CASE {first} END AS e FROM ({stage_sql}))")


def stage_fast_sql(positions: dict[str, int]) -> str:
    """Return SQL that splits each staged raw line into trimmed fields at the header's ``positions``."""
    cols = ", ".join(f"trim(f[{positions[c] + 1}], ' \t') AS c_{c}" for c in VALUE_COLUMNS)
    return (f"SELECT line, raw, len(f) AS nf, trim(f[{positions['user_id'] + 1}], ' \t') AS user_id, {cols}, "
            "CAST(NULL AS VARCHAR) AS pre_error, CAST(NULL AS VARCHAR) AS pre_message "
            "FROM (SELECT line, raw, string_split(raw, ',') AS f FROM batch WHERE NOT regexp_full_match(raw, '\\s*'))")


class CheckedWriter:
    """Validates staged rows of one file and appends them to the target and ``rejects`` tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, kind: str, target: str, loaded: LoadedFile, dataset: str):
        self.con, self.kind, self.target, self.loaded, self.dataset = con, kind, target, loaded, dataset

    def write(self, stage_sql: str, n_header: int, raw_expr: str = "raw") -> None:
        """Validate the staged rows of the file and append them to the target and ``rejects`` tables."""
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS "
                    f"{_validate_sql(self.kind, n_header, stage_sql, raw_expr)}")
        vals = ", ".join(
            f"TRY_CAST(nullif(c_{c}, '') AS {MONEY_SQL_TYPE if c in MONEY_COLUMNS else 'BIGINT'})" for c in VALUE_COLUMNS
        )
        prefix = f"{self.loaded.idx}, " if self.target == "deltas" else ""
        con.execute(f"INSERT INTO {self.target} SELECT {prefix}line, user_id, {vals} FROM checked "
                    "WHERE error_type IS NULL")
        con.execute("INSERT INTO rejects SELECT ?, ?, ?, line, err_column, error_type, raw, message, user_id FROM checked "
                    "WHERE error_type IS NOT NULL", [self.dataset, self.loaded.name, self.loaded.idx])
        rep = self.loaded.report
        for et, n in con.execute("SELECT error_type, count(*) FROM checked GROUP BY 1").fetchall():
            rep.count(et, n)
        con.execute("DROP TABLE checked")
