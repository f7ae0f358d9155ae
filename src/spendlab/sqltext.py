"""SQL text: quoted identifiers and string literals, the one place spendlab escapes them.

Both follow the SQL standard, which DuckDB and Spark SQL (through sqlglot) read alike: an identifier in
double quotes with each ``"`` doubled, a string in single quotes with each ``'`` doubled.
"""

from __future__ import annotations


def quote(name: str) -> str:
    """Return ``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str | None) -> str:
    """Return ``text`` as a SQL string literal (``NULL`` for ``None``)."""
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"
