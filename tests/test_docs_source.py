"""The source carries the current reason for each rule, never its history.

History (which issue asked for a rule, which catalogue row a guard answers) belongs in git and
``CHANGELOG.md``; a comment or docstring that names an issue number or a catalogue row goes stale
as soon as the rule moves on. Every file under ``src/spendlab`` is scanned, templates included.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import spendlab

SRC = Path(spendlab.__file__).parent

#: "issue 15", "issue #15", "issues 3 and 4", "catalogue row 57", "row 12 of the catalogue", "GH-7"
HISTORY = re.compile(
    r"\bissues?\s*#?[0-9]+|\bcatalogue\s+rows?\s*[0-9]+|\brows?\s+[0-9]+\s+of\s+the\s+catalogue|\bGH-[0-9]+",
    re.IGNORECASE,
)


def history_refs(text: str) -> list[tuple[int, str]]:
    """Return ``(line number, matched text)`` for each issue or catalogue-row reference in ``text``."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(0)) for m in HISTORY.finditer(text)]


def _source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.is_file() and p.suffix in {".py", ".html", ".md", ".j2", ".sql"})


def test_the_source_tree_is_scanned() -> None:
    files = _source_files()
    assert any(p.name == "__init__.py" for p in files)
    assert any(p.suffix == ".html" for p in files), "templates are scanned too"


def test_no_issue_numbers_or_catalogue_rows_in_src() -> None:
    found = [f"{p.relative_to(SRC)}:{n}: {hit!r}" for p in _source_files()
             for n, hit in history_refs(p.read_text(encoding="utf-8"))]
    assert not found, "history belongs in CHANGELOG.md, not the code:\n" + "\n".join(found)


@pytest.mark.parametrize("text", [
    "Validators for settings (issue 15 item 6).",
    "# race on alembic_version (catalogue row 57)",
    "stays RUNNING (seen in CI: catalogue\n    row 58)",
    "see Issue #12",
    "as row 4 of the catalogue says",
    "fixed in issue19",
    "see GH-7",
])
def test_the_check_catches_a_history_reference(text: str) -> None:
    assert history_refs(text)


@pytest.mark.parametrize("text", [
    "The contract (``shared/reliability-catalogue.md`` section 0)",
    "a row 3 of the rejects file",
    "color: #222; background: #1f77b4",
    "we re-run this check before we close the issue.",
    "an issue with 3 rows",
])
def test_the_check_leaves_current_reasons_alone(text: str) -> None:
    assert not history_refs(text)
