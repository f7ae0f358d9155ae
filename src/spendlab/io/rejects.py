"""Reject records, per-file counters and the three validation modes.

The contract (``shared/reliability-catalogue.md`` section 0): for every file
``rows_in = accepted + rejected (+ excluded, rows an include/exclude rule drops)``, counted by spendlab's own counter, and every rejected row has
a record with file, physical line, byte offset, column, error type, raw text and message.
"""

from __future__ import annotations

import csv
import enum
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spendlab.errors import RowError
from spendlab.io.atomic import atomic_path


class Mode(str, enum.Enum):
    """How bad rows are handled."""

    STRICT = "strict"  # stop at the first bad row
    COLLECT = "collect"  # list every bad row, then fail
    QUARANTINE = "quarantine"  # write rejects aside and go on (default)


#: The rejects CSV: the six documented columns first, then where the record starts in bytes and
#: its logical record number (CSV records, header = 1; DuckDB's ``reject_errors.line`` counts this).
REJECT_COLUMNS = ["file", "line", "column", "error_type", "raw", "message", "byte_offset", "record"]


@dataclass(frozen=True)
class RejectRecord:
    """One rejected row.

    ``line`` is the physical line (header = line 1) where the record starts; ``record`` is its
    logical record number (a quoted field spanning lines makes it smaller than ``line``);
    ``byte_offset`` is where the record starts in the file (after any BOM; -1 when unknown).
    """

    file: str
    line: int
    column: str
    error_type: str
    raw: str
    message: str
    byte_offset: int = -1
    record: int = -1

    def describe(self) -> str:
        """Return the record as one line naming file, line, column and reason."""
        return f"{self.file}, line {self.line}, column {self.column!r}: {self.error_type}: {self.message}"


@dataclass
class FileReport:
    """Counters for one input file."""

    file: str
    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    excluded: int = 0  # rows dropped by an include/exclude rule (not errors)
    blank_lines: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    exclusions: Counter[str] = field(default_factory=Counter)  # column of the rule -> rows excluded
    warnings: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what a warning refers to (columns, types, files)

    def count(self, error_type: str | None, n: int) -> None:
        """Add ``n`` rows read in bulk: accepted when ``error_type`` is None, else rejected as it."""
        self.rows_in += n
        if error_type is None:
            self.accepted += n
        else:
            self.rejected += n
            self.errors[error_type] += n

    def check_conservation(self) -> None:
        """Raise when ``rows_in`` is not ``accepted + rejected + excluded``."""
        if self.rows_in != self.accepted + self.rejected + self.excluded:
            raise AssertionError(
                f"{self.file}: rows_in={self.rows_in} != accepted={self.accepted} + rejected={self.rejected}"
                f" + excluded={self.excluded}"
            )

    def as_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "file": self.file,
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "excluded": self.excluded,
            "blank_lines": self.blank_lines,
            "errors": dict(sorted(self.errors.items())),
            "exclusions": dict(sorted(self.exclusions.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "notes": list(self.notes),
        }


@dataclass
class LoadReport:
    """Counters for a whole load, plus every reject record."""

    files: list[FileReport] = field(default_factory=list)
    rejects: list[RejectRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs not read, each "path: reason"
    duplicates: list[str] = field(default_factory=list)  # other names of a file read once
    lookups: dict[str, dict[str, object]] = field(default_factory=dict)  # per lookup table: keys, use

    @property
    def rows_in(self) -> int:
        """Return the rows read, over every file."""
        return sum(f.rows_in for f in self.files)

    @property
    def accepted(self) -> int:
        """Return the rows accepted, over every file."""
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        """Return the rows rejected, over every file."""
        return sum(f.rejected for f in self.files)

    @property
    def excluded(self) -> int:
        """Return the rows an include/exclude rule dropped, over every file."""
        return sum(f.excluded for f in self.files)

    def errors(self) -> Counter[str]:
        """Count the rejects by error type, over every file."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.errors)
        return total

    def warnings(self) -> Counter[str]:
        """Count the warnings by type, over every file."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.warnings)
        return total

    def as_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "files": [f.as_dict() for f in self.files],
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "excluded": self.excluded,
            "errors": dict(sorted(self.errors().items())),
            "warnings": dict(sorted(self.warnings().items())),
            "skipped": list(self.skipped),
            "duplicates": list(self.duplicates),
            **({"lookups": dict(self.lookups)} if self.lookups else {}),
        }


class RejectSink:
    """Receives rejects for one file and applies the validation mode.

    In strict mode the first reject raises :class:`RowError`; in collect and quarantine modes
    rejects are kept, and collect mode fails in :meth:`finish_load` once every file was read.
    """

    def __init__(self, mode: Mode, report: LoadReport, file_report: FileReport) -> None:
        self.mode = mode
        self.report = report
        self.file_report = file_report

    def reject(self, record: RejectRecord) -> None:
        """Count and record one rejected row."""
        self.file_report.rejected += 1
        self.file_report.errors[record.error_type] += 1
        self.report.rejects.append(record)
        if self.mode is Mode.STRICT:
            raise with_report(RowError(f"strict mode: {record.describe()}"), self.report)


def with_report(error: RowError, report: LoadReport) -> RowError:
    """Attach the load's report to a mode error, so a caller can still write the rejects it lists."""
    error.report = report  # type: ignore[attr-defined]
    return error


def finish_load(report: LoadReport, mode: Mode) -> None:
    """Check conservation for every file and fail a collect-mode load that found errors."""
    for f in report.files:
        f.check_conservation()
    if mode is Mode.COLLECT and report.rejects:
        lines = [r.describe() for r in report.rejects[:20]]
        more = len(report.rejects) - len(lines)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise with_report(RowError(
            f"collect mode: {len(report.rejects)} bad row(s):\n  " + "\n  ".join(lines) + tail,
            n_errors=len(report.rejects),
        ), report)


def write_rejects_csv(rejects: list[RejectRecord], path: Path) -> None:
    """Write reject records with the documented columns (atomically)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REJECT_COLUMNS)
        writer.writeheader()
        for r in rejects:
            writer.writerow({k: neutralise_formula(v) for k, v in asdict(r).items()})


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """Prefix a quote to a string a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        # A plain negative number is data, not a formula.
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
