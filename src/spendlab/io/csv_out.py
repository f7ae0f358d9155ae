"""CSV outputs that a spreadsheet opens safely: text cells that start a formula are neutralised."""

from __future__ import annotations

from pathlib import Path

import duckdb

from spendlab.io.rejects import neutralise_formula

#: The first characters of a text cell that :func:`spendlab.io.rejects.neutralise_formula` may quote (SQL list).
FORMULA_START = "('=', '+', '-', '@', chr(9), chr(13))"


_UDF = "spendlab_neutralise_formula"


def _register_neutraliser(con: duckdb.DuckDBPyConnection) -> None:
    from duckdb.sqltypes import VARCHAR

    try:
        con.create_function(_UDF, neutralise_formula, [VARCHAR], VARCHAR, side_effects=False)
    except duckdb.Error as exc:  # already registered on this connection
        if "already" not in str(exc).lower():
            raise


def csv_select(con: duckdb.DuckDBPyConnection, sql: str, order_by: str, *,
               money_columns: frozenset[str] = frozenset(), round6_columns: frozenset[str] = frozenset(),
               drop: tuple[str, ...] = ()) -> str:
    """Wrap ``sql`` so every column is written as promised.

    Text that a spreadsheet would run as a formula is neutralised by
    :func:`spendlab.io.rejects.neutralise_formula` itself (one rule for every CSV spendlab writes),
    ``money_columns`` in cents, ``round6_columns`` to 6 decimals. ``drop``: columns of ``sql`` that
    only order the rows (``order_by`` may name them as ``src.<column>``) and are not written.
    """
    _register_neutraliser(con)
    cols = [(d[0], str(d[1])) for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    exprs = []
    for name, typ in cols:
        if name in drop:
            continue
        q = f'"{name}"'
        if name in money_columns:
            exprs.append(f"CAST(round({q}, 2) AS DECIMAL(38, 2)) AS {q}")
        elif typ in ("VARCHAR", "STRING", "str") or "VARCHAR" in typ.upper():
            exprs.append(f"CASE WHEN left({q}, 1) IN {FORMULA_START} THEN {_UDF}({q}) ELSE {q} END AS {q}")
        elif name in round6_columns:
            exprs.append(f"round({q}, 6) AS {q}")
        else:
            exprs.append(q)
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS src ORDER BY {order_by}"


def copy_csv(con: duckdb.DuckDBPyConnection, sql: str, path: Path, order_by: str, *,
             money_columns: frozenset[str] = frozenset(), round6_columns: frozenset[str] = frozenset(),
             drop: tuple[str, ...] = ()) -> int:
    """Write a (possibly huge) query result to CSV from DuckDB, in ``order_by`` order; return the row count."""
    literal = str(path).replace("'", "''")
    row = con.execute(f"COPY ({csv_select(con, sql, order_by, money_columns=money_columns, round6_columns=round6_columns, drop=drop)}) TO '{literal}' (FORMAT csv, HEADER true)").fetchall()[0]
    return int(row[0])
