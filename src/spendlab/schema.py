"""The canonical transaction table, in one place.

Every reader produces this schema; every later stage reads it. Column roles are keyword
arguments with these defaults throughout the package.
"""

from __future__ import annotations

import pyarrow as pa

USER_COL = "user_id"
TS_COL = "ts"
AMOUNT_COL = "amount"
FILE_COL = "source_file"
LINE_COL = "line"
ITEMS_COL = "n_items"

#: Canonical columns. ``amount`` is positive for spend and negative for a refund/credit.
CANONICAL_SCHEMA = pa.schema(
    [
        pa.field(USER_COL, pa.string(), nullable=False),
        pa.field(TS_COL, pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(AMOUNT_COL, pa.float64(), nullable=False),
        pa.field(ITEMS_COL, pa.int64()),
        pa.field(FILE_COL, pa.string(), nullable=False),
        pa.field(LINE_COL, pa.int64(), nullable=False),
    ]
)


def empty_table() -> pa.Table:
    """Make a zero-row table with the canonical schema."""
    return CANONICAL_SCHEMA.empty_table()
