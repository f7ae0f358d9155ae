"""DuckDB SQL to Spark SQL: sqlglot plus the one semantic difference its dialects do not cover.

The feature SQL is written once (:mod:`spendlab.features.sql`, DuckDB dialect) and transpiled here;
nothing about any feature is restated for Spark. sqlglot maps the syntax (``ARG_MIN`` to ``MIN_BY``,
``DATE_DIFF('day', a, b)`` to ``DATEDIFF(DAY, a, b)``, ``TIMESTAMP '...'`` to a ``TIMESTAMP_NTZ``
cast, quoting). What it leaves alone is the type of ``/``: DuckDB divides a ``DECIMAL`` (or an
integer) into a ``DOUBLE``, Spark into a rounded ``DECIMAL`` (a ``DECIMAL(38, 4)`` sum over an
integer count keeps scale 6 under Spark's defaults, 9 without precision loss), which moves a rolling
mean by up to 5e-7. :func:`to_spark_sql` therefore casts both operands of every division to ``DOUBLE``,
which is what DuckDB does. It also drops DuckDB's ``AS MATERIALIZED`` CTE hint (Spark has no syntax
for it; the rows are the same). Multiplications and sums stay exact decimals in both engines given
:data:`spendlab.spark.session.SEMANTIC_CONF`.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp


def _double_division(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Div):
        return exp.Div(this=exp.cast(node.this.copy(), exp.DataType.Type.DOUBLE),
                       expression=exp.cast(node.expression.copy(), exp.DataType.Type.DOUBLE))
    if isinstance(node, exp.IsInf):  # DuckDB isinf(x); Spark has no IS_INF
        arg = node.this.copy()
        return exp.EQ(this=exp.Abs(this=arg), expression=exp.cast(exp.Literal.string("Infinity"),
                                                                    exp.DataType.Type.DOUBLE))
    return node


def to_spark_sql(sql: str) -> str:
    """Transpile one DuckDB statement or expression to Spark SQL with DuckDB's division semantics.

    Raises
    ------
    sqlglot.errors.UnsupportedError
        If the statement uses a construct sqlglot cannot express in Spark (never silently dropped).
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    for cte in tree.find_all(exp.CTE):  # `AS MATERIALIZED` is a DuckDB planner hint Spark cannot parse;
        cte.set("materialized", None)   # dropping it changes how often a CTE is computed, not its rows
    # innermost first (reversed pre-order), so a division nested in another's operand is rewritten too
    for node in reversed(list(tree.find_all(exp.Div, exp.IsInf, bfs=False))):
        new = _double_division(node)
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
