"""A known change of behaviour in a synthetic world: ``MONTH:rate=0.5,basket=1.2``.

From the given month on (1-based: month 1 is the data's first month; or ``YYYY-MM``), every user's
purchase rate is multiplied by ``rate`` and every basket by ``basket``. Monitoring is tested on such a
world: the change happens at a month the test knows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spendlab.errors import SpendlabError

_KEYS = ("rate", "basket")


@dataclass(frozen=True)
class Shift:
    """A change of behaviour from ``month`` (0-based index into the world's months) on."""

    month: int
    rate: float = 1.0
    basket: float = 1.0

    def factors(self, n_months: int, which: str) -> np.ndarray:
        """Multiplier per month (1 before the shift, ``rate`` or ``basket`` from it on)."""
        value = self.rate if which == "rate" else self.basket
        return np.where(np.arange(n_months) >= self.month, value, 1.0)


def parse_shift(text: str, *, start: str = "2023-01-01") -> Shift:
    """Read ``MONTH:rate=R,basket=B`` (either factor may be left out; both positive).

    Parameters
    ----------
    text : str
        ``18:rate=0.5`` (the 18th month of data) or ``2024-06:basket=1.2``.
    start : str
        The world's first day (a ``YYYY-MM`` month is counted from it).

    Returns
    -------
    Shift
        With a 0-based month.

    Raises
    ------
    SpendlabError
        A malformed text, an unknown key, a month before the start or a factor that is not positive.
    """
    head, sep, tail = text.partition(":")
    if not sep or not tail:
        raise SpendlabError(f"--shift {text!r}: expected MONTH:rate=R,basket=B (e.g. 18:rate=0.5)")
    try:
        if "-" in head:
            y, m = (int(p) for p in head.split("-")[:2])
            first = np.datetime64(start[:7], "M")
            month = int((np.datetime64(f"{y:04d}-{m:02d}", "M") - first).astype(int))
        else:
            month = int(head) - 1
    except ValueError:
        raise SpendlabError(f"--shift {text!r}: month {head!r} is neither a number nor YYYY-MM") from None
    if month < 0:
        raise SpendlabError(f"--shift {text!r}: month {head} is before the first month of data")
    factors: dict[str, float] = {}
    for part in tail.split(","):
        key, eq, value = part.partition("=")
        if key.strip() not in _KEYS or not eq:
            raise SpendlabError(f"--shift {text!r}: {part!r} is not one of {', '.join(k + '=X' for k in _KEYS)}")
        try:
            factors[key.strip()] = float(value)
        except ValueError:
            raise SpendlabError(f"--shift {text!r}: {key.strip()} must be a number, got {value!r}") from None
        if not (math.isfinite(factors[key.strip()]) and factors[key.strip()] > 0):
            raise SpendlabError(f"--shift {text!r}: {key.strip()} must be a positive number")
    return Shift(month=month, **factors)
