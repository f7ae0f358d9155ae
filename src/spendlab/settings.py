"""Validators for the settings that arrive as command-line options.

Config files are validated by the pydantic models in :mod:`spendlab.config`; options that are
not part of a config (``--memory-limit``, ``--country``, ``--pattern``, ``--tolerance``,
``--as-of``) are checked here, at the edge, so the CLI and the Python API share one rule each.
Every function raises :class:`~spendlab.errors.ConfigError` with one line that names the
setting, the value and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re

from spendlab.errors import ConfigError

_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE | re.ASCII)
_UNIT = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
#: Below this DuckDB cannot run spendlab's queries at all (a scan needs its buffers).
MIN_MEMORY_BYTES = 64 * 2**20
#: DuckDB memory limit of describe, features and score unless one is given (keeps 1M users within
#: 2 GB of peak RSS; docs/performance.md).
DEFAULT_MEMORY_LIMIT = "1GB"

#: A tuning study's trial heartbeat interval and the grace after which a silent trial is failed and
#: retried, seconds (``spendlab tune`` and the pipeline's tune stage; the environment can shorten them).
DEFAULT_HEARTBEAT: tuple[int, int] = (5, 15)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the host's count)."""
    return len(os.sched_getaffinity(0))


def parse_memory_limit(value: str | None, *, setting: str = "--memory-limit") -> str | None:
    """Parse a DuckDB memory limit such as ``4GB`` or ``512MiB``; ``None``/``none`` = DuckDB's default.

    Returns the value as DuckDB reads it. Words (``lots``), negative or non-finite numbers and
    limits under 64 MiB are errors.
    """
    if value is None or value.strip().lower() == "none":
        return None
    m = _MEMORY.fullmatch(value.strip())
    if not m:
        raise ConfigError(f"{setting} {value!r} is not a memory size: give a number and a unit "
                          "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 4GB, or 'none'")
    size = float(m.group(1)) * _UNIT[m.group(2).upper()]
    if size < MIN_MEMORY_BYTES:
        raise ConfigError(f"{setting} {value!r} is below the minimum of 64MiB spendlab's queries need")
    return f"{m.group(1)}{m.group(2).upper().replace('IB', 'iB')}"


def check_country(code: str, *, setting: str = "--country") -> str:
    """Check a country code the ``holidays`` package has a calendar for (``US``, ``GB``, ``DE``, ...)."""
    import holidays

    supported = holidays.list_supported_countries()
    if code not in supported:
        close = sorted(c for c in supported if c.upper() == code.upper() or c[:1] == code[:1].upper())[:8]
        hint = f"; did you mean one of {', '.join(close)}?" if close else ""
        raise ConfigError(f"{setting} {code!r} is not a country the holidays package knows (ISO 3166 alpha-2 "
                          f"codes such as US, GB, DE){hint}")
    return code


def compile_pattern(pattern: str | None, *, setting: str = "--pattern") -> re.Pattern[str] | None:
    """Compile a user regex once, here, so a bad one is a one-line error and not a traceback later."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{setting} {pattern!r} is not a valid regular expression: {exc}") from None


def check_tolerance(value: float, *, setting: str = "--tolerance") -> float:
    """Check a finite, non-negative tolerance."""
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{setting} must be a finite number >= 0, got {value!r}")
    return value


def check_as_of(
    as_of: dt.date, first: dt.date | None, last: dt.date | None, *, freq: str = "month", setting: str = "--as-of"
) -> list[str]:
    """Check a cutoff day against the data's first and last transaction days; return warnings.

    An as-of day before the first transaction, or more than a year after the last, is an error
    (nothing to score from, or no meaningful forecast: ``9999-12-31``). More than one period
    (``freq``) after the last transaction is allowed with a warning: every user then looks
    inactive for the gap.
    """
    if first is None or last is None:
        raise ConfigError(f"{setting} {as_of}: the input holds no accepted transaction")
    if as_of < first:
        raise ConfigError(f"{setting} {as_of} is before the first transaction ({first}); it must lie "
                          f"within the data ({first} .. {last})")
    if (as_of - last).days > 366:
        raise ConfigError(f"{setting} {as_of} is more than a year after the last transaction ({last}); it must "
                          f"lie within the data ({first} .. {last})")
    period = 7 if freq == "week" else 31
    if (as_of - last).days > period:
        return [f"{setting} {as_of} is more than one {freq} after the last transaction ({last}): every user "
                "looks inactive for the gap"]
    return []
