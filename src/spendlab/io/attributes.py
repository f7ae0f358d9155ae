"""Line-level attributes of a generic input: one value rule for CSV and Parquet, and the order rule.

``reader.generic.attributes`` names extra columns a line carries (a product department, a discount,
a store). Each becomes a column of the canonical table under its attribute name, after the canonical
columns. The value rules live here once, so CSV fields and Parquet values (per distinct value) go
through the same function:

- ``category``: the text, trimmed; empty is missing (null); a character that does not print as itself
  is ``INVALID_ATTRIBUTE``.
- ``amount``: a money value under the reader's amount policy (``thousands``, ``max_abs_amount``,
  ``sub_cent``), read as written (a discount keeps its sign); empty is missing.

With ``order_col`` an order keeps the **sum** of its lines' amounts and the **sorted set** of its lines'
categories (a list column); missing values do not count.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa

from spendlab.config import AttributeSpec, GenericMapping, ReaderConfig
from spendlab.io.collect import field
from spendlab.io.parsing import FieldError, as_float, parse_decimal

#: Longest category text kept; longer is ``INVALID_ATTRIBUTE`` (a free-text column is not a category).
MAX_CATEGORY_CHARS = 200


def category_value(raw: object) -> str | None:
    """Return a category as trimmed text; ``None`` for an empty value.

    Raises
    ------
    FieldError
        ``INVALID_ATTRIBUTE`` for text that does not print as itself or is longer than
        :data:`MAX_CATEGORY_CHARS`.
    """
    text = ("" if raw is None else str(raw)).strip()
    if not text:
        return None
    if not text.isprintable():
        raise FieldError("INVALID_ATTRIBUTE", f"category {text!r} holds a character that does not print as itself")
    if len(text) > MAX_CATEGORY_CHARS:
        raise FieldError("INVALID_ATTRIBUTE", f"category is {len(text)} characters long (at most {MAX_CATEGORY_CHARS})")
    return text


def amount_decimal(raw: object, config: ReaderConfig) -> Decimal | None:
    """Return an amount attribute, exact, under the reader's amount policy; ``None`` for an empty value."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return parse_decimal(raw, thousands=config.thousands, max_abs=config.max_abs_amount,  # type: ignore[arg-type]
                         sub_cent=config.sub_cent, what="attribute amount")


def value_rule(spec: AttributeSpec, config: ReaderConfig) -> Callable[[object], Any]:
    """Return the function that reads one raw value of attribute ``spec`` (float, text or ``None``)."""
    if spec.type == "category":
        return category_value

    def amount(raw: object) -> float | None:
        value = amount_decimal(raw, config)
        return None if value is None else as_float(value, "attribute amount")

    return amount


def arrow_type(spec: AttributeSpec, *, orders: bool = False) -> pa.DataType:
    """Return the attribute's column type in the canonical table (a list of text for an order's categories)."""
    if spec.type == "amount":
        return pa.float64()
    return pa.list_(pa.string()) if orders else pa.string()


def declared_attributes(mapping: GenericMapping) -> dict[str, AttributeSpec]:
    """Return every attribute a line carries: the declared ones, then each lookup's columns (categories)."""
    looked_up = {name: AttributeSpec(column=col, type="category")
                 for lookup in mapping.lookups.values() for name, col in lookup.columns.items()}
    return {**mapping.attributes, **looked_up}


def attribute_fields(mapping: GenericMapping) -> list[pa.Field]:
    """Return the canonical table's attribute fields, in declaration order (lookup columns last)."""
    orders = mapping.order_col is not None
    return [pa.field(name, arrow_type(spec, orders=orders)) for name, spec in declared_attributes(mapping).items()]


class OrderAttributes:
    """The running aggregate of one order's attributes: sums of amounts, sets of categories."""

    def __init__(self, specs: dict[str, AttributeSpec]) -> None:
        self.specs = specs
        self.values: dict[str, Any] = {n: (set() if s.type == "category" else None) for n, s in specs.items()}

    def add(self, line: dict[str, Any]) -> None:
        """Fold one line's values (exact ``Decimal`` amounts, text categories, ``None`` = missing)."""
        for name, value in line.items():
            if value is None:
                continue
            if self.specs[name].type == "category":
                self.values[name].add(value)
            else:
                self.values[name] = value if self.values[name] is None else self.values[name] + value

    def row(self) -> dict[str, Any]:
        """Return the order's values: float sums (``None`` when no line had one) and sorted category lists."""
        return {n: (sorted(v) if isinstance(v, set) else (None if v is None else as_float(v, "attribute amount")))
                for n, v in self.values.items()}


def line_values(row: dict[str, str], mapping: GenericMapping, config: ReaderConfig, *,
                exact: bool = False) -> dict[str, Any]:
    """Every attribute of one CSV row, each through its rule; a bad value rejects naming its column.

    With ``exact``, amounts stay ``Decimal`` (an order sums them exactly).
    """
    out: dict[str, Any] = {}
    for name, spec in mapping.attributes.items():
        raw = row[spec.column]
        if spec.type == "amount" and exact:
            out[name] = field(spec.column, lambda raw=raw: amount_decimal(raw, config))
        else:
            out[name] = field(spec.column, lambda raw=raw, spec=spec: value_rule(spec, config)(raw))
    return out

