"""CSV outputs that a spreadsheet opens safely: text cells that start a formula are neutralised."""

from __future__ import annotations

from pathlib import Path

import duckdb

from spendlab.io.rejects import neutralise_formula

#: The first characters of a text cell that :func:`spendlab.io.rejects.neutralise_formula` may quote (SQL list).
FORMULA_START = "('=', '+', '-', '@', chr(9), chr(13))"


_UDF = "spendlab_neutralise_formula"

#: The exact type money is written as: two decimals, wide enough for any sum of DuckDB's decimals.
WIDE_MONEY = "DECIMAL(38, 2)"
#: The same digits in a 64-bit decimal (several times cheaper to round and print than the 128-bit one);
#: only for values known to stay below 10^16 in magnitude (:func:`money_type_for`).
NARROW_MONEY = "DECIMAL(18, 2)"
#: The largest magnitude :data:`NARROW_MONEY` is used for (a margin below its 10^16 bound).
NARROW_MONEY_BOUND = 1e15


def money_type_for(bound: float | None) -> str:
    """Choose the decimal type money is written as, given a bound on every written amount's magnitude.

    Both types print the same text (two decimals, no padding); the narrow one is cheaper, and is
    chosen only when ``bound`` (for example the sum of all absolute amounts, which bounds any
    partial sum, average or difference of partial sums) proves it cannot overflow.

    Parameters
    ----------
    bound : float or None
        An upper bound on the magnitude of every money value written; None when unknown.

    Returns
    -------
    str
        :data:`NARROW_MONEY` when ``0 <= 2 * bound < NARROW_MONEY_BOUND``, else :data:`WIDE_MONEY`.
    """
    if bound is None or bound != bound or not 0 <= 2 * bound < NARROW_MONEY_BOUND:
        return WIDE_MONEY
    return NARROW_MONEY


def _register_neutraliser(con: duckdb.DuckDBPyConnection) -> None:
    from duckdb.sqltypes import VARCHAR

    try:
        con.create_function(_UDF, neutralise_formula, [VARCHAR], VARCHAR, side_effects=False)
    except duckdb.Error as exc:  # already registered on this connection
        if "already" not in str(exc).lower():
            raise


def csv_select(con: duckdb.DuckDBPyConnection, sql: str, order_by: str | None, *,
               money_columns: frozenset[str] = frozenset(), round6_columns: frozenset[str] = frozenset(),
               drop: tuple[str, ...] = (), safe_text: frozenset[str] = frozenset(),
               money_type: str = WIDE_MONEY) -> str:
    """Wrap ``sql`` so every column is written as promised.

    Text that a spreadsheet would run as a formula is neutralised by
    :func:`spendlab.io.rejects.neutralise_formula` itself (one rule for every CSV spendlab writes),
    ``money_columns`` in cents (as ``money_type``, see :func:`money_type_for`), ``round6_columns`` to
    6 decimals. ``drop``: columns of ``sql`` that only order the rows (``order_by`` may name them as
    ``src.<column>``) and are not written. ``safe_text``: text columns the caller has proven never
    start like a formula (the check would leave them unchanged), written without the per-cell check.
    ``order_by`` None: no sort; the rows keep the order ``sql`` reads them in (for a plain
    ``SELECT`` from a table stored sorted, its stored order).
    """
    _register_neutraliser(con)
    cols = [(d[0], str(d[1])) for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    exprs = []
    for name, typ in cols:
        if name in drop:
            continue
        q = f'"{name}"'
        if name in money_columns:
            exprs.append(f"CAST(round({q}, 2) AS {money_type}) AS {q}")
        elif name in safe_text:
            exprs.append(q)
        elif typ in ("VARCHAR", "STRING", "str") or "VARCHAR" in typ.upper():
            exprs.append(f"CASE WHEN left({q}, 1) IN {FORMULA_START} THEN {_UDF}({q}) ELSE {q} END AS {q}")
        elif name in round6_columns:
            exprs.append(f"round({q}, 6) AS {q}")
        else:
            exprs.append(q)
    order = "" if order_by is None else f" ORDER BY {order_by}"
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS src{order}"


def copy_csv(con: duckdb.DuckDBPyConnection, sql: str, path: Path, order_by: str | None, *,
             money_columns: frozenset[str] = frozenset(), round6_columns: frozenset[str] = frozenset(),
             drop: tuple[str, ...] = (), safe_text: frozenset[str] = frozenset(),
             money_type: str = WIDE_MONEY) -> int:
    """Write a (possibly huge) query result to CSV from DuckDB, in ``order_by`` order; return the row count.

    The other parameters are those of :func:`csv_select`. The file is written where ``path`` says;
    callers write into their job's atomic output directory (:func:`spendlab.io.atomic.atomic_path`).
    """
    literal = str(path).replace("'", "''")
    select = csv_select(con, sql, order_by, money_columns=money_columns, round6_columns=round6_columns, drop=drop,
                        safe_text=safe_text, money_type=money_type)
    row = con.execute(f"COPY ({select}) TO '{literal}' (FORMAT csv, HEADER true)").fetchall()[0]
    return int(row[0])
