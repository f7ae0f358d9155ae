"""Exceptions that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class SpendlabError(Exception):
    """Base class: an error the user can act on; the CLI prints it without a traceback."""

    exit_code = 2


class ConfigError(SpendlabError):
    """A configuration file or option is invalid (raised before any data is read)."""


class InputFileError(SpendlabError):
    """A whole input file cannot be used (empty, wrong header, wrong encoding, corrupt).

    The message names the file and, where there is one, the first offending line and column.
    """

    def __init__(
        self,
        file: str,
        error_type: str,
        message: str,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.error_type = error_type
        self.line = line
        self.column = column
        where = file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {error_type}: {message}")


class RowError(SpendlabError):
    """A bad row in strict mode (or the first of many in collect mode)."""

    def __init__(self, message: str, n_errors: int = 1) -> None:
        self.n_errors = n_errors
        super().__init__(message)


class NoDataError(SpendlabError):
    """There is nothing to work on (for example a header-only input)."""
