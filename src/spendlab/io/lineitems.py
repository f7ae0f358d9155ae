"""Line-item exports: the lines of one order become one canonical transaction.

An order's transaction has the user and the time of its first line (in file order, files read in
sorted order) and the exact (Decimal) sum of its lines' amounts; ``source_file`` and ``line`` are
its first line's. A line whose user differs from its order's first line is rejected
``ORDER_CONFLICT`` when it is read; a line without an order id is ``NULL_KEY``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from spendlab.config import GenericMapping, ReaderConfig
from spendlab.io.attributes import OrderAttributes, arrow_type, declared_attributes
from spendlab.io.collect import field
from spendlab.io.parsing import UTC, FieldError, as_float, check_decimal, parse_decimal
from spendlab.schema import CANONICAL_SCHEMA

#: Quantities are exact decimals (weights allowed) up to this magnitude.
MAX_QUANTITY = 1e9


def line_amount(quantity: object, unit_price: object, mapping: GenericMapping, config: ReaderConfig) -> Decimal:
    """``quantity x unit_price`` of one line, exactly, under the amount policy.

    Raises :class:`~spendlab.io.collect.RowReject` naming the column: the quantity's, the unit
    price's, or the quantity's again for a product beyond ``max_abs_amount`` or below cents. CSV
    fields and Parquet values (text, numbers) both come here.
    """
    money = {"thousands": config.thousands, "max_abs": config.max_abs_amount, "sub_cent": config.sub_cent}
    qty = field(mapping.quantity_col, lambda: parse_decimal(quantity, max_abs=MAX_QUANTITY,  # type: ignore[arg-type]
                                                            sub_cent="keep", what="quantity"))
    price = field(mapping.unit_price_col, lambda: parse_decimal(unit_price, what="unit price", **money))  # type: ignore[arg-type]
    return field(mapping.quantity_col, lambda: check_decimal(qty * price, max_abs=config.max_abs_amount,  # type: ignore[operator,arg-type,return-value]
                                                             sub_cent=config.sub_cent, what="line amount"))


def order_key(value: object) -> str:
    """Read an order id as text, trimmed like a CSV field; empty is ``NULL_KEY``."""
    key = ("" if value is None else str(value)).strip()
    if not key:
        raise FieldError("NULL_KEY", "order id is empty")
    return key


def kept(value: object, column: str, mapping: GenericMapping) -> bool:
    """Whether ``value`` of rule column ``column`` passes its include or exclude rule."""
    text = ("" if value is None else str(value)).strip()
    if column in mapping.include:
        return text in mapping.include[column]
    return text not in mapping.exclude.get(column, ())

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Order:
    user: str
    ts: dt.datetime
    amount: Decimal
    file: str
    line: int
    lines: int = 1
    attributes: Any = None  # spendlab.io.attributes.OrderAttributes when the mapping declares attributes


class OrderBook:
    """Collects the accepted lines of a load, keyed by order id, in the order they are read."""

    def __init__(self, mapping: GenericMapping | None = None) -> None:
        self.orders: dict[str, _Order] = {}
        self.specs = declared_attributes(mapping) if mapping is not None else {}

    def add(self, order_id: str, user: str, ts: dt.datetime, amount: Decimal, file: str, line: int,
            attributes: dict[str, Any] | None = None) -> None:
        """Add one line; raises :class:`FieldError` for an empty order id or a user conflict.

        ``attributes`` are the line's attribute values (exact amounts, categories); an order keeps
        their sums and sets (:class:`spendlab.io.attributes.OrderAttributes`).
        """
        key = order_key(order_id)
        order = self.orders.get(key)
        if order is None:
            order = self.orders[key] = _Order(user, ts, amount, file, line)
            if self.specs:
                order.attributes = OrderAttributes(self.specs)
                order.attributes.add(attributes or {})
            return
        if order.user != user:
            raise FieldError("ORDER_CONFLICT", f"order {key!r} belongs to user {order.user!r} (line {order.line} "
                                               f"of {order.file}), not {user!r}")
        order.amount += amount
        order.lines += 1
        if order.attributes is not None:
            order.attributes.add(attributes or {})

    def table(self) -> pa.Table:
        """One canonical row per order (``n_items`` is left empty.

        Lines are not items), then the order's attributes (sums of amounts, sorted sets of categories).
        """
        orders = list(self.orders.values())
        ts_us = [(o.ts - _EPOCH) // dt.timedelta(microseconds=1) for o in orders]
        return pa.table(
            [
                pa.array([o.user for o in orders], pa.string()),
                pa.array(ts_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                pa.array([as_float(o.amount, "order amount") for o in orders], pa.float64()),
                pa.array([None] * len(orders), pa.int64()),
                pa.array([o.file for o in orders], pa.string()),
                pa.array([o.line for o in orders], pa.int64()),
                *(pa.array([o.attributes.row()[n] for o in orders], arrow_type(spec, orders=True))
                  for n, spec in self.specs.items()),
            ],
            schema=pa.schema([*CANONICAL_SCHEMA, *(pa.field(n, arrow_type(s, orders=True))
                                                   for n, s in self.specs.items())]),
        )
