"""docs/reliability.md maps every catalogue row (1-66) to tests that exist.

Each table row of the map names tests as ``path::test`` (a following ``::test`` in the same cell
reuses the last path). Every named file must exist and define the named test function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
CATALOGUE_ROWS = range(1, 67)


def _rows() -> dict[int, str]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|", line)
        if m:
            rows[int(m.group(1))] = line
    return rows


def _references(text: str) -> list[tuple[str, str]]:
    refs, path = [], None
    for m in re.finditer(r"`(tests/[\w/]+\.py)?::(test_\w+)", text):
        path = m.group(1) or path
        assert path is not None, f"'::{m.group(2)}' has no file before it"
        refs.append((path, m.group(2)))
    return refs


def _defined(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_catalogue_row_is_mapped_with_a_test_and_a_status() -> None:
    rows = _rows()
    assert sorted(rows) == list(CATALOGUE_ROWS)
    for n, line in rows.items():
        assert _references(line), f"row {n} names no test"
        assert re.search(r"\|\s*(proven|partial|open)\b[^|]*\|\s*$", line), f"row {n} has no status"


def test_every_test_named_in_the_map_exists() -> None:
    refs = _references(DOC.read_text(encoding="utf-8"))
    missing = [f"{p}::{t}" for p, t in refs if not (ROOT / p).exists() or t not in _defined(p)]
    assert refs and missing == []
