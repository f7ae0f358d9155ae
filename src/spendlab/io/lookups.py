"""Lookup tables of a generic input (``reader.generic.lookups``): attributes joined to each line by key.

A line-item export often carries only a product id; a product table maps it to a department. Each
lookup is read once (CSV or Parquet), checked whole before any line is read, and joined to every line
by its key, in the CSV reader (a dict) and in the Parquet scan (a DuckDB join of the same table):

- the key is compared as trimmed text (an integer key ``7`` and the text ``"7"`` are the same key);
- a key empty or repeated in the lookup fails the load with one line naming file, line and column
  (``NULL_KEY``, ``DUPLICATE_KEY``): a product in two departments has no right answer;
- a lookup value goes through the category rule (:func:`spendlab.io.attributes.category_value`);
- a line whose key the table lacks keeps every lookup column missing (null) and is counted as
  ``unmatched_lines``; the line is never dropped, so ``rows_in = accepted + rejected + excluded`` holds;
- keys no accepted line uses are counted as ``unused_keys``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from spendlab.config import GenericMapping, LookupSpec
from spendlab.errors import InputFileError
from spendlab.io.attributes import category_value
from spendlab.io.parsing import FieldError
from spendlab.io.side_tables import read_side_table


def lookup_key(raw: object) -> str | None:
    """Return a key as trimmed text; ``None`` for an empty value."""
    text = "" if raw is None else str(raw).strip()
    return text or None


@dataclass
class LookupTable:
    """One lookup, read and checked: key -> values of its columns, and its use by the load."""

    name: str
    spec: LookupSpec
    values: dict[str, tuple[str | None, ...]]
    used: set[str] = field(default_factory=set)
    unmatched_lines: int = 0

    def line(self, raw_key: object) -> tuple[dict[str, str | None], str | None]:
        """Return one line's lookup attributes (all ``None`` when the key is absent) and its key."""
        key = lookup_key(raw_key)
        found = self.values.get(key) if key is not None else None
        return {n: (None if found is None else found[i]) for i, n in enumerate(self.spec.columns)}, key

    def count(self, key: str | None) -> None:
        """Record the key of one accepted line (``None`` or an absent key counts as unmatched)."""
        if key is not None and key in self.values:
            self.used.add(key)
        else:
            self.unmatched_lines += 1

    def arrow(self) -> pa.Table:
        """Return the table for the Parquet scan's join: ``key``, ``hit`` (true) and ``c0``, ``c1``, ..."""
        keys = list(self.values)
        cols = {f"c{i}": pa.array([self.values[k][i] for k in keys], pa.string()) for i in range(len(self.spec.columns))}
        return pa.table({"key": pa.array(keys, pa.string()), "hit": pa.array([True] * len(keys), pa.bool_()), **cols})

    def as_dict(self) -> dict[str, Any]:
        """Return the lookup's part of the load report."""
        return {"input": self.spec.input, "keys": len(self.values), "used_keys": len(self.used),
                "unused_keys": len(self.values) - len(self.used), "unmatched_lines": self.unmatched_lines}


def load_lookup(name: str, spec: LookupSpec) -> LookupTable:
    """Read and check lookup ``name``.

    Raises
    ------
    InputFileError
        The file is unreadable, lacks a declared column, has an empty or repeated key, or a value that
        is not a category; the message names file, line, column and reason.
    """
    path = Path(spec.input)
    sources = list(spec.columns.values())
    table, first = read_side_table(path, list(dict.fromkeys([spec.key, *sources])), what="the lookup table",
                                   setting="reader.generic.lookups")
    rows = table.to_pylist()
    values: dict[str, tuple[str | None, ...]] = {}
    lines: dict[str, int] = {}
    for i, row in enumerate(rows):
        line = first + i
        key = lookup_key(row[spec.key])
        if key is None:
            raise InputFileError(str(path), "NULL_KEY", f"lookup {name!r} has an empty key", line=line, column=spec.key)
        if key in values:
            raise InputFileError(str(path), "DUPLICATE_KEY", f"lookup {name!r} has key {key!r} twice (first at line "
                                 f"{lines[key]}); one key must map to one row", line=line, column=spec.key)
        out = []
        for col in sources:
            try:
                out.append(category_value(row[col]))
            except FieldError as exc:
                raise InputFileError(str(path), exc.error_type, str(exc), line=line, column=col) from None
        values[key], lines[key] = tuple(out), line
    return LookupTable(name, spec, values)


def load_lookups(mapping: GenericMapping) -> list[LookupTable]:
    """Read every lookup the mapping declares, in declaration order."""
    return [load_lookup(name, spec) for name, spec in mapping.lookups.items()]


def line_lookups(row: dict[str, str], tables: list[LookupTable]) -> tuple[dict[str, str | None], list[str | None]]:
    """Return one CSV line's lookup attributes and, per table, its key (for :meth:`LookupTable.count`)."""
    attrs: dict[str, str | None] = {}
    keys: list[str | None] = []
    for table in tables:
        values, key = table.line(row[table.spec.line_column])
        attrs.update(values)
        keys.append(key)
    return attrs, keys
