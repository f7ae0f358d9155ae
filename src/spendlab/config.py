"""YAML at the edges: the schema of every config section, strictly validated.

Library code takes keyword arguments; only the CLI calls :func:`load_config`. Unknown keys are
errors, and a YAML tag that would build a Python object is refused (``yaml.safe_load``). Reading
and hashing config files lives in :mod:`spendlab.config_files`; its functions are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spendlab.config_files import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES  # re-exported: spendlab.config's API
from spendlab.config_files import config_hash as config_hash
from spendlab.config_files import load_config as load_config
from spendlab.config_files import load_yaml as load_yaml
from spendlab.config_files import parse_config as parse_config

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,127}\Z")


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def safe_identifier(name: str) -> str:
    """Allow-list a column name that will reach SQL; it is still quoted where used."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"column name {name!r} is not allowed (letters, digits, _ . - and space only)")
    return name


_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
#: Column names of the canonical table: an attribute may not take one.
RESERVED_NAMES = frozenset({"user_id", "ts", "amount", "n_items", "source_file", "line"})


class AttributeSpec(StrictModel):
    """One line-level attribute of a generic input (``department: {column: DEPARTMENT, type: category}``).

    A ``category`` is trimmed text (an order keeps the set of its lines' categories); an ``amount`` is a
    money value under the reader's amount policy (an order keeps the sum of its lines'). An empty value
    is missing, never a reject; a malformed amount rejects its row naming the column.
    """

    column: str
    type: Literal["category", "amount"] = "category"

    @field_validator("column")
    @classmethod
    def _identifier(cls, v: str) -> str:
        return safe_identifier(v)


class LookupSpec(StrictModel):
    """A table joined to every line by key (``lookups: {product: {input, key, columns}}``).

    ``key`` is the key column of the lookup table and, unless ``column`` names another, of the lines.
    ``columns`` lists the lookup columns each line gains as a category attribute (a list keeps the
    names; a mapping renames ``{attribute: column}``). A line whose key the table lacks gets the
    missing value (null) for each of them and is counted, never dropped.
    """

    input: str
    key: str
    column: str | None = None
    columns: dict[str, str]

    @field_validator("columns", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return {c: c for c in v} if isinstance(v, (list, tuple)) else v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("columns needs at least one lookup column")
        for name, col in v.items():
            if not _ATTRIBUTE_NAME.match(name) or name in RESERVED_NAMES:
                raise ValueError(f"lookup attribute name {name!r} must be lower-case letters, digits and _ "
                                 f"and not one of {sorted(RESERVED_NAMES)}")
            safe_identifier(col)
        return v

    @field_validator("key", "column")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        return None if v is None else safe_identifier(v)

    @property
    def line_column(self) -> str:
        """Return the column of the lines that holds the key."""
        return self.column or self.key


class GenericMapping(StrictModel):
    """How a generic CSV/Parquet input maps onto the canonical columns.

    Line-item exports (one row per product line) map ``order_col``: the lines of one order form
    one transaction (its first line's user and time, the sum of its lines' amounts). Without an
    amount column, ``quantity_col`` x ``unit_price_col`` is each line's amount. ``include`` and
    ``exclude`` keep or drop rows by a column's value (``status: [Completed]``); dropped rows are
    counted as excluded, so ``rows_in = accepted + rejected + excluded``.
    """

    user_col: str = "user_id"
    ts_col: str = "ts"
    amount_col: str | None = "amount"
    quantity_col: str | None = None
    unit_price_col: str | None = None
    order_col: str | None = None
    include: dict[str, tuple[str, ...]] = {}
    exclude: dict[str, tuple[str, ...]] = {}
    spend_is: Literal["positive", "negative"] = "positive"
    ts_format: str | None = None  # strptime format; None = ISO 8601
    ts_unit: Literal["day", "s", "ms", "us", "ns"] | None = None  # numeric timestamps: units since ts_origin
    ts_origin: dt.date | None = None  # day 0 of ts_unit (default 1970-01-01, the Unix epoch)
    attributes: dict[str, AttributeSpec] = {}  # name -> source column and type, kept beside the canonical columns
    lookups: dict[str, LookupSpec] = {}  # name -> a table joined by key that adds category attributes

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, v: dict[str, AttributeSpec]) -> dict[str, AttributeSpec]:
        for name in v:
            if not _ATTRIBUTE_NAME.match(name) or name in RESERVED_NAMES:
                raise ValueError(f"attribute name {name!r} must be lower-case letters, digits and _ "
                                 f"and not one of {sorted(RESERVED_NAMES)}")
        cols = [a.column for a in v.values()]
        if len(set(cols)) != len(cols):
            raise ValueError(f"two attributes read the same column: {cols}")
        return v

    @field_validator("user_col", "ts_col", "amount_col", "quantity_col", "unit_price_col", "order_col")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        return None if v is None else safe_identifier(v)

    @field_validator("include", "exclude")
    @classmethod
    def _rules(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for col, values in v.items():
            safe_identifier(col)
            if not values:
                raise ValueError(f"column {col!r} needs at least one value")
        return v

    @model_validator(mode="before")
    @classmethod
    def _amount_or_line_price(cls, data: Any) -> Any:
        # quantity x unit price replaces the default amount column unless one is named explicitly
        if isinstance(data, dict) and (data.get("quantity_col") or data.get("unit_price_col")):
            if data.get("amount_col") is not None and "amount_col" in data:
                raise ValueError("give amount_col, or quantity_col and unit_price_col, not both")
            data = {**data, "amount_col": None}
        return data

    @model_validator(mode="after")
    def _one_timestamp_reading(self) -> GenericMapping:
        if self.ts_unit is not None and self.ts_format is not None:
            raise ValueError("give ts_format (text timestamps) or ts_unit (numbers of days, s, ms, us or ns), not both")
        if self.ts_origin is not None and self.ts_unit is None:
            raise ValueError("ts_origin needs ts_unit (the unit the numbers count from it)")
        return self

    @property
    def epoch(self) -> dt.date:
        """Day 0 of a numeric timestamp column (``ts_origin``, else 1970-01-01)."""
        return self.ts_origin or dt.date(1970, 1, 1)

    @model_validator(mode="after")
    def _distinct_roles(self) -> GenericMapping:
        if self.amount_col is None and not (self.quantity_col and self.unit_price_col):
            raise ValueError("without amount_col, both quantity_col and unit_price_col are needed")
        cols = self.value_columns()
        if len(set(cols)) != len(cols):
            roles = [r for r in ("user_col", "ts_col", "amount_col", "quantity_col", "unit_price_col", "order_col")
                     if getattr(self, r)]
            count = {3: "three", 4: "four", 5: "five"}[len(cols)]
            raise ValueError(f"{', '.join(roles[:-1])} and {roles[-1]} must be {count} different columns, got {cols}")
        taken = sorted({a.column for a in self.attributes.values()} & set(cols))
        if taken:
            raise ValueError(f"attribute column(s) {taken} are already mapped to a role")
        names = [*self.attributes, *(n for lk in self.lookups.values() for n in lk.columns)]
        if len(set(names)) != len(names):
            raise ValueError(f"an attribute name is declared twice (attributes and lookups): {names}")
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ValueError(f"column(s) {both} are in both include and exclude; keep one rule per column")
        return self

    def value_columns(self) -> list[str]:
        """Return the mapped role columns, in role order (user, ts, amount or quantity and price, order)."""
        amount = [self.amount_col] if self.amount_col else [self.quantity_col, self.unit_price_col]
        return [c for c in (self.user_col, self.ts_col, *amount, self.order_col) if c is not None]

    def required_columns(self) -> list[str]:
        """Every column a file must have: the roles, then the include/exclude columns."""
        cols = self.value_columns()
        cols += [c for c in (*self.include, *self.exclude) if c not in cols]
        cols += [a.column for a in self.attributes.values() if a.column not in cols]
        return cols + list(dict.fromkeys(lk.line_column for lk in self.lookups.values() if lk.line_column not in cols))

    def line_items(self) -> bool:
        """Whether any line-item option is set (orders, quantity x price, include/exclude)."""
        return bool(self.order_col or self.quantity_col or self.include or self.exclude)


class UserColumnSpec(StrictModel):
    """One user-table column read under another name: ``{column: AGE_DESC, type: category}``."""

    column: str
    type: Literal["category", "number"]

    @field_validator("column")
    @classmethod
    def _identifier(cls, v: str) -> str:
        return safe_identifier(v)


class UserTableSpec(StrictModel):
    """A table of user attributes beside the transactions (``dataset.users``).

    One row per user and ``valid_from`` (a date or timestamp from which the row holds; empty = always).
    ``columns`` maps each attribute to ``category`` (text levels) or ``number`` (the column of that
    name), or to ``{column, type}`` to read a column named otherwise (``age: {column: AGE_DESC, type:
    category}``). Features at a cutoff read, per user, the latest row valid on or before it
    (:mod:`spendlab.io.users`).
    """

    input: str
    key: str = "user_id"
    columns: dict[str, Literal["category", "number"] | UserColumnSpec]
    valid_from: str | None = None

    @field_validator("key", "valid_from")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        return None if v is None else safe_identifier(v)

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("columns needs at least one attribute column")
        for name in v:
            if not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"user column {name!r} must be lower-case letters, digits and _ (it names "
                                 f"features); read a column named otherwise with {{{name.lower()}: "
                                 f"{{column: {name}, type: category}}}}")
        return v

    @property
    def kinds(self) -> dict[str, str]:
        """Attribute name -> ``category`` or ``number``."""
        return {n: c if isinstance(c, str) else c.type for n, c in self.columns.items()}

    @property
    def sources(self) -> dict[str, str]:
        """Attribute name -> the column of the user table it is read from."""
        return {n: n if isinstance(c, str) else c.column for n, c in self.columns.items()}

    @model_validator(mode="after")
    def _distinct(self) -> UserTableSpec:
        roles = [self.key, *([self.valid_from] if self.valid_from else []), *self.sources.values()]
        if len(set(roles)) != len(roles):
            raise ValueError(f"key, valid_from and columns must be different columns, got {roles}")
        return self

#: The largest ``max_abs_amount``: cents stay exact in float64 and in every fixed-point sum.
AMOUNT_CEILING = 1e10
#: The days a timestamp can fall on end to end (pandas' nanosecond range, whole days).
TS_FIRST_DAY, TS_LAST_DAY = dt.date(1677, 9, 22), dt.date(2262, 4, 10)


class ReaderConfig(StrictModel):
    """Reader and validation policy (see docs/reading-data.md for why each default is what it is)."""

    timezone: str = "UTC"  # the zone of naive timestamps
    dst_policy: Literal["reject", "shift_forward"] = "reject"
    accepted_types: tuple[str, ...] = ("auth",)
    unknown_types: Literal["reject", "accept"] = "reject"
    thousands: Literal[",", None] = None
    max_abs_amount: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e7
    sub_cent: Literal["reject", "keep", "round"] = "reject"  # round: to whole cents, half to even
    refunds: Literal["separate", "net"] = "separate"
    zero_amounts: Literal["keep", "exclude"] = "keep"
    dedupe: bool = False
    empty_file: Literal["error", "accept"] = "error"
    extra_columns: Literal["warn", "error"] = "warn"
    max_line_bytes: Annotated[int, Field(gt=0, le=1 << 30)] = 1 << 20
    window_start: dt.date = dt.date(1970, 1, 1)
    window_end: dt.date | None = None  # None = the run date
    generic: GenericMapping = GenericMapping()

    @model_validator(mode="after")
    def _window(self) -> ReaderConfig:
        if self.window_end is not None and self.window_start >= self.window_end:
            raise ValueError(f"window_start ({self.window_start}) must be before window_end ({self.window_end})")
        for name, day in (("window_start", self.window_start), ("window_end", self.window_end)):
            if day is not None and not TS_FIRST_DAY <= day <= TS_LAST_DAY:
                raise ValueError(f"{name} {day} is outside {TS_FIRST_DAY} .. {TS_LAST_DAY}, the days every "
                                 "timestamp spendlab reads must lie in (nanosecond timestamps)")
        return self

    @field_validator("max_abs_amount")
    @classmethod
    def _amount_ceiling(cls, v: float) -> float:
        if v > AMOUNT_CEILING:
            raise ValueError(f"max_abs_amount {v:g} is above {AMOUNT_CEILING:g}, the largest amount spendlab "
                             "carries exactly (cents in float64, fixed-point sums)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v
