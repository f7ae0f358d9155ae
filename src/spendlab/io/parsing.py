"""Field parsers shared by the readers: exact amounts and timestamps with explicit policies.

Each parser returns a value or raises :class:`FieldError` carrying the catalogue's error type.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = dt.UTC

# Every pattern is ASCII-only and anchored with \Z: Python's \d would accept Arabic-Indic or
# full-width digits ("١٢.٠٠"), which int() and Decimal() then happily read.
_PLAIN = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?\Z")
_NON_FINITE = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE)
_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]{1,9})?)?)?"
    r"[ ]*(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"
)
#: The largest UTC offset in use anywhere (Kiribati, +14:00); minutes must be below 60.
MAX_OFFSET = dt.timedelta(hours=14)
_CENT = Decimal("0.01")


class FieldError(ValueError):
    """A field value that cannot become a canonical value."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(message)


def parse_amount(
    value: str | Decimal | int | float,
    *,
    thousands: str | None = None,
    max_abs: float = 1e7,
    sub_cent: str = "reject",
) -> float:
    """Parse a money amount exactly (Decimal), check its policy, and return it as float64.

    Currency symbols, codes and unexpected separators are rejected, never stripped.
    """
    return as_float(parse_decimal(value, thousands=thousands, max_abs=max_abs, sub_cent=sub_cent))


def parse_decimal(
    value: str | Decimal | int | float,
    *,
    thousands: str | None = None,
    max_abs: float = 1e7,
    sub_cent: str = "reject",
    what: str = "amount",
) -> Decimal:
    """:func:`parse_amount` without the float conversion (for exact products and sums)."""
    if isinstance(value, bool):
        raise FieldError("AMOUNT_FORMAT", f"{what} {value!r} is not a number")
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise FieldError("EMPTY_FIELD", f"{what} is empty")
        if _NON_FINITE.match(text):
            raise FieldError("NON_FINITE", f"{what} {value!r} is not a finite number")
        if thousands == "," and _THOUSANDS.match(text):
            text = text.replace(",", "")
        elif not _PLAIN.match(text):
            raise FieldError("AMOUNT_FORMAT", f"{what} {value!r} is not a plain decimal number")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise FieldError("AMOUNT_FORMAT", f"{what} {value!r} is not a plain decimal number") from None
    return check_decimal(value, max_abs=max_abs, sub_cent=sub_cent, what=what)


def check_decimal(value: Decimal, *, max_abs: float = 1e7, sub_cent: str = "reject", what: str = "amount") -> Decimal:
    """Apply the amount policy to an exact value: finite, within ``max_abs``, cents.

    ``sub_cent``: ``reject`` (``SUB_CENT``), ``keep`` (the value as written), or ``round`` (to whole cents,
    half to even, on the exact decimal: a double's float noise such as ``1.776357e-15`` becomes ``0.00``).
    """
    if not value.is_finite():
        raise FieldError("NON_FINITE", f"{what} {value} is not a finite number")
    as_float(value, what)
    limit = Decimal(repr(max_abs))
    if sub_cent == "round" and abs(value) <= limit + 1:  # beyond, it is out of range rounded or not
        value = value.quantize(_CENT, rounding="ROUND_HALF_EVEN")  # the range applies to the value kept
    if abs(value) > limit:
        raise FieldError("OUT_OF_RANGE", f"{what} {value} is beyond the maximum magnitude {max_abs:g}")
    if sub_cent == "reject" and value != value.quantize(_CENT, rounding="ROUND_HALF_EVEN"):
        raise FieldError("SUB_CENT", f"{what} {value} has more precision than cents")
    return value


def as_float(value: Decimal, what: str = "amount") -> float:
    """``value`` as float64 (``-0.0`` normalised to ``0.0``); an overflow is ``NON_FINITE``."""
    out = float(value)
    if out != out or out in (float("inf"), float("-inf")):
        raise FieldError("NON_FINITE", f"{what} {value} overflows a float")
    return out + 0.0


@lru_cache(maxsize=64)
def zone_info(name: str) -> dt.tzinfo:
    """Return the tzinfo of an IANA zone name (``datetime.timezone.utc`` for UTC), cached."""
    return UTC if name == "UTC" else ZoneInfo(name)


def localize(naive: dt.datetime, zone: str, dst_policy: str = "reject") -> dt.datetime:
    """Attach ``zone`` to a naive local time, applying the DST policy, and convert to UTC."""
    tz = zone_info(zone)
    if tz is UTC:
        return naive.replace(tzinfo=UTC)
    early = naive.replace(tzinfo=tz, fold=0)
    late = naive.replace(tzinfo=tz, fold=1)
    roundtrip = early.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if roundtrip != naive:  # falls in a DST gap: the local time never existed
        if dst_policy == "shift_forward":
            return early.astimezone(UTC)
        raise FieldError("DST_NONEXISTENT", f"{naive} does not exist in {zone} (DST gap)")
    if early.utcoffset() != late.utcoffset():
        if dst_policy == "shift_forward":
            return early.astimezone(UTC)
        raise FieldError("DST_AMBIGUOUS", f"{naive} is ambiguous in {zone} (DST overlap)")
    return early.astimezone(UTC)


def parse_timestamp(text: str, *, zone: str = "UTC", dst_policy: str = "reject") -> tuple[dt.datetime, bool]:
    """Parse ``YYYY-MM-DD[ H:MM[:SS[.f]]][Z|±HH:MM]`` into an aware UTC datetime.

    Returns the datetime and whether the text carried its own offset. The hour need not be
    zero-padded (the millions format writes ``3:40:03``).
    """
    text = text.strip()
    m = _TS.match(text) if text.isascii() else None
    if not m:
        raise FieldError("DATE_PARSE", f"timestamp {text!r} is not YYYY-MM-DD H:MM:SS")
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        naive = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro)
    except ValueError as exc:
        raise FieldError("DATE_PARSE", f"timestamp {text!r} is impossible: {exc}") from None
    if off is None:
        return localize(naive, zone, dst_policy), False
    if off == "Z":
        return naive.replace(tzinfo=UTC), True
    sign = 1 if off[0] == "+" else -1
    digits = off[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    offset = dt.timedelta(hours=hours, minutes=minutes)
    if minutes >= 60 or offset > MAX_OFFSET:
        raise FieldError("DATE_PARSE", f"timestamp {text!r} has an impossible UTC offset {off} "
                                       "(minutes below 60, at most 14 hours)")
    return naive.replace(tzinfo=dt.timezone(sign * offset)).astimezone(UTC), True


#: Microseconds per unit of a numeric timestamp (``reader.generic.ts_unit``); ``day`` counts calendar days.
TS_UNITS: dict[str, int] = {"day": 86_400_000_000, "s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}
_MAX_MICROS = Decimal(10) ** 18  # ~31,700 years: past the last datetime


def numeric_timestamp_parser(unit: str, origin: dt.date, *, zone: str = "UTC",
                             dst_policy: str = "reject") -> Callable[[str], dt.datetime]:
    """Return the parser of numeric timestamps: ``origin + value x unit``.

    ``day`` counts whole calendar days from ``origin`` (day 1 of an export numbered from 1 is
    ``origin + 1``): the day starts at midnight local time, read in ``zone`` under ``dst_policy``.
    ``s``, ``ms``, ``us`` and ``ns`` count time since ``origin`` at midnight UTC (the Unix epoch
    by default): instants, whatever the zone. Fractions of a second are kept to the microsecond
    (rounded down); ``day`` takes whole numbers only (``12`` or ``12.0``). The text is the field as written (a Parquet
    number column is read through its text form, so CSV and Parquet agree).
    """
    base = dt.datetime(origin.year, origin.month, origin.day)
    per = TS_UNITS[unit]

    def parse(text: str) -> dt.datetime:
        text = text.strip()
        if not _PLAIN.match(text):
            raise FieldError("DATE_PARSE", f"timestamp {text[:40]!r} is not a number (ts_unit: {unit})")
        try:
            number = Decimal(text)
            if unit == "day" and number != number.to_integral_value():
                raise FieldError("DATE_PARSE", f"timestamp {text!r} is not a whole number of days (ts_unit: day)")
            value = number * (per if per else Decimal("0.001"))  # microseconds
            if abs(value) > _MAX_MICROS:  # beyond any datetime; keeps int() off a 1e999999 exponent
                raise OverflowError
            stamp = base + dt.timedelta(microseconds=int(value.to_integral_value(rounding=ROUND_FLOOR)))
        except (OverflowError, ArithmeticError):
            raise FieldError("DATE_PARSE", f"timestamp {text[:40]!r} ({unit} from {origin}) is out of range") from None
        return localize(stamp, zone, dst_policy) if unit == "day" else stamp.replace(tzinfo=UTC)

    return parse


def timestamp_parser(
    ts_format: str | None, *, zone: str = "UTC", dst_policy: str = "reject", unit: str | None = None,
    origin: dt.date = dt.date(1970, 1, 1),
) -> Callable[[str], dt.datetime]:
    """Return the timestamp parser of a generic mapping: ISO 8601, a strptime format, or numbers of a unit.

    ``ts_format=None`` reads ISO 8601; a strptime format reads that; ``unit`` (``day``, ``s``, ``ms``,
    ``us``, ``ns``) reads numbers counted from ``origin`` (:func:`numeric_timestamp_parser`). Text is
    ASCII only; an offset in the text wins over ``zone``; a naive value is read in ``zone`` under
    ``dst_policy``. CSV fields and Parquet string and number columns all go through it.
    """
    if unit is not None:
        return numeric_timestamp_parser(unit, origin, zone=zone, dst_policy=dst_policy)
    if ts_format is None:
        return lambda text: parse_timestamp(text, zone=zone, dst_policy=dst_policy)[0]

    def parse(text: str) -> dt.datetime:
        text = text.strip()
        if not text.isascii():
            raise FieldError("DATE_PARSE", f"timestamp {text!r} holds non-ASCII characters")
        try:
            value = dt.datetime.strptime(text, ts_format)
        except ValueError as exc:
            raise FieldError("DATE_PARSE", f"timestamp {text!r} does not match {ts_format!r}: {exc}") from None
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return localize(value, zone, dst_policy)

    return parse


def normalise_user_id(text: str | None) -> str:
    """Normalise a user id: the one policy of every reader and format (CSV, CDNOW, Parquet strings and integers).

    Surrounding whitespace is trimmed as ``str.strip`` does (Unicode White_Space, so a
    non-breaking space or a unit separator goes too); what remains is kept exactly ("007" stays
    "007"). An empty id is ``NULL_KEY``. An id that still holds a character that does not print as
    itself (``str.isprintable``: control and format characters such as NUL, ESC, a zero-width
    space or a bidi override, and every space other than the ASCII one) is ``INVALID_KEY``: two
    such ids print alike but join apart.
    """
    user = (text or "").strip()
    if not user:
        raise FieldError("NULL_KEY", "user id is empty")
    if not user.isprintable():
        bad = next(ch for ch in user if not ch.isprintable())
        raise FieldError("INVALID_KEY", f"user id {user!r} contains U+{ord(bad):04X} "
                                        f"({unicodedata.name(bad, unicodedata.category(bad))}), which does not print as itself")
    return user


def check_window(ts: dt.datetime, start: dt.date, end: dt.date) -> None:
    """Reject timestamps outside ``[start, end]`` (UTC dates)."""
    day = ts.astimezone(UTC).date()
    if day < start or day > end:
        raise FieldError("OUT_OF_WINDOW", f"timestamp {ts.isoformat()} is outside {start} .. {end}")
