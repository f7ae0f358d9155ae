"""Holiday and retail-event flags, and the calendar periods (months, ISO weeks) everything is cut into.

Holidays come from the ``holidays`` package (country configurable, observed days included, also an
observed day that falls in the previous year: New Year 2022 is observed on 2021-12-31). Retail events
are computed by rule, because no package lists them: Black Friday and Cyber Monday follow US
Thanksgiving (fourth Thursday of November), Mother's Day is the second Sunday of May (US rule),
Christmas Eve, Boxing Day and Valentine's Day are fixed dates, and a Prime-style sale window is a
configurable :class:`CustomEvent` (default: the second Tuesday of July and the day after).

Periods: ``month`` is the calendar month; ``week`` is the ISO week, Monday to Sunday, so a week that
crosses New Year is one week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Literal

import pandas as pd
from pydantic import field_validator, model_validator

from spendlab.config import StrictModel
from spendlab.errors import ConfigError
from spendlab.settings import check_country

Freq = Literal["month", "week"]
FREQS: tuple[str, ...] = ("month", "week")
EventKind = Literal["holiday", "retail_event"]


# ---------------------------------------------------------------------------------------------
# Periods
# ---------------------------------------------------------------------------------------------


def _as_date(d: dt.date | dt.datetime | pd.Timestamp | str) -> dt.date:
    if isinstance(d, str):
        return dt.date.fromisoformat(d[:10])
    if isinstance(d, pd.Timestamp):
        return d.date()
    if isinstance(d, dt.datetime):
        return d.date()
    return d


def check_freq(freq: str) -> str:
    """Return ``freq`` if it is ``month`` or ``week``; raise ``ValueError`` naming the choices otherwise."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {list(FREQS)}, got {freq!r}")
    return freq


def period_start(d: dt.date | dt.datetime | pd.Timestamp | str, freq: Freq) -> dt.date:
    """First day of the period containing ``d``: the 1st of the month, or the Monday of the ISO week."""
    day = _as_date(d)
    if check_freq(freq) == "month":
        return day.replace(day=1)
    return day - dt.timedelta(days=day.weekday())


def next_period_start(d: dt.date | dt.datetime | pd.Timestamp | str, freq: Freq) -> dt.date:
    """First day of the period after the one containing ``d``."""
    start = period_start(d, freq)
    if freq == "week":
        return start + dt.timedelta(days=7)
    return (start.replace(year=start.year + 1, month=1) if start.month == 12
            else start.replace(month=start.month + 1))


def target_period_label(as_of: dt.date, freq: Freq, horizon: int = 1) -> str:
    """``2024-04`` for months, ``2024-W15`` for ISO weeks: the period after the one holding ``as_of``.

    A target of ``horizon`` > 1 periods is the ISO 8601 interval of its first and last period,
    e.g. ``2024-W15/2024-W18``.
    """
    first = next_period_start(as_of, freq)
    labels = [_period_label(first, freq)]
    if horizon > 1:
        labels.append(_period_label(shift_period(as_of, freq, horizon), freq))
    return "/".join(labels)


def _period_label(start: dt.date, freq: Freq) -> str:
    if freq == "month":
        return start.strftime("%Y-%m")
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def period_end(d: dt.date | dt.datetime | pd.Timestamp | str, freq: Freq) -> dt.date:
    """Last day (inclusive) of the period containing ``d``."""
    return next_period_start(d, freq) - dt.timedelta(days=1)


def shift_period(d: dt.date, freq: Freq, n: int) -> dt.date:
    """Start of the period ``n`` periods after (negative: before) the period containing ``d``."""
    start = period_start(d, freq)
    if freq == "week":
        return start + dt.timedelta(days=7 * n)
    months = start.year * 12 + (start.month - 1) + n
    return dt.date(months // 12, months % 12 + 1, 1)


def period_index(d: dt.date, freq: Freq) -> int:
    """Return an integer that increases by one per period (months since year 0, or ISO-week Mondays / 7)."""
    start = period_start(d, freq)
    if freq == "week":
        return start.toordinal() // 7  # Mondays have ordinal = 0 mod 7 (0001-01-01 is a Monday)
    return start.year * 12 + start.month - 1


def period_starts(first: dt.date, last: dt.date, freq: Freq) -> list[dt.date]:
    """Every period start from the period of ``first`` to the period of ``last``, inclusive."""
    out: list[dt.date] = []
    cur, stop = period_start(first, freq), period_start(last, freq)
    while cur <= stop:
        out.append(cur)
        cur = next_period_start(cur, freq)
    return out


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


class CustomEvent(StrictModel):
    """A yearly event by rule: a fixed ``month``/``day``, or the ``nth`` ``weekday`` of ``month``.

    ``weekday`` is 0 = Monday .. 6 = Sunday; ``nth`` is 1..5 or -1 for the last one. The event lasts
    ``days`` consecutive days from that date.
    """

    name: str
    month: int
    day: int | None = None
    weekday: int | None = None
    nth: int | None = None
    days: int = 1
    kind: EventKind = "retail_event"

    @field_validator("month")
    @classmethod
    def _month(cls, v: int) -> int:
        if not 1 <= v <= 12:
            raise ValueError(f"month must be 1..12, got {v}")
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: int) -> int:
        if not 1 <= v <= 31:
            raise ValueError(f"days must be 1..31, got {v}")
        return v

    @model_validator(mode="after")
    def _rule(self) -> CustomEvent:
        fixed = self.day is not None
        by_weekday = self.weekday is not None and self.nth is not None
        if fixed == by_weekday:
            raise ValueError(f"event {self.name!r}: give either day, or weekday and nth")
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise ValueError(f"event {self.name!r}: weekday must be 0 (Mon) .. 6 (Sun)")
        if self.nth is not None and self.nth not in (-1, 1, 2, 3, 4, 5):
            raise ValueError(f"event {self.name!r}: nth must be 1..5 or -1 (last)")
        if fixed:
            dt.date(2000, self.month, self.day)  # 2000 is a leap year: Feb 29 allowed, Feb 30 not
        return self

    def first_day(self, year: int) -> dt.date | None:
        """Return the first day of the event in ``year`` (None when Feb 29 or a 5th weekday does not exist)."""
        if self.day is not None:
            try:
                return dt.date(year, self.month, self.day)
            except ValueError:
                return None
        return nth_weekday(year, self.month, self.weekday, self.nth)  # type: ignore[arg-type]


#: The default Prime-style mid-July sale: the second Tuesday of July and the day after.
PRIME_DAY = CustomEvent(name="Prime Day", month=7, weekday=1, nth=2, days=2)
PRIME_DAY_DEFAULT: tuple[CustomEvent, ...] = (PRIME_DAY,)


class CalendarConfig(StrictModel):
    """Which holidays and events flag a day."""

    country: str = "US"
    subdivision: str | None = None
    custom_events: tuple[CustomEvent, ...] = (PRIME_DAY,)

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        import holidays

        if v not in holidays.list_supported_countries():
            raise ValueError(f"country {v!r} is not supported by the holidays package")
        return v


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> dt.date | None:
    """Return the ``nth`` (1-based; -1 = last) ``weekday`` (0 = Monday) of ``month`` in ``year``."""
    if nth == -1:
        last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
        return last - dt.timedelta(days=(last.weekday() - weekday) % 7)
    first = dt.date(year, month, 1)
    day = first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    return day if day.month == month else None


def us_thanksgiving(year: int) -> dt.date:
    """Fourth Thursday of November."""
    day = nth_weekday(year, 11, 3, 4)
    assert day is not None
    return day


def retail_events(year: int) -> list[tuple[dt.date, str]]:
    """Return the rule-based retail events of ``year`` (US retail calendar; see the module docstring)."""
    thanksgiving = us_thanksgiving(year)
    mothers_day = nth_weekday(year, 5, 6, 2)
    assert mothers_day is not None
    return [
        (dt.date(year, 2, 14), "Valentine's Day"),
        (mothers_day, "Mother's Day"),
        (thanksgiving + dt.timedelta(days=1), "Black Friday"),
        (thanksgiving + dt.timedelta(days=4), "Cyber Monday"),
        (dt.date(year, 12, 24), "Christmas Eve"),
        (dt.date(year, 12, 26), "Boxing Day"),
    ]


@lru_cache(maxsize=64)
def _holidays_for(country: str, subdivision: str | None, years: tuple[int, ...]) -> tuple[tuple[dt.date, str], ...]:
    import holidays

    check_country(country, setting="country")
    try:
        cal = holidays.country_holidays(country, subdiv=subdivision, years=list(years), observed=True)
    except NotImplementedError as exc:  # an unknown subdivision
        raise ConfigError(f"holiday calendar {country}/{subdivision}: {exc}") from None
    out: list[tuple[dt.date, str]] = []
    for day, names in sorted(cal.items()):
        for name in str(names).split("; "):  # the package joins names of one day with "; "
            out.append((day, name))
    return tuple(out)


def calendar_events(
    start: dt.date | str,
    end: dt.date | str,
    *,
    country: str = "US",
    subdivision: str | None = None,
    custom_events: Sequence[CustomEvent] | None = None,
) -> pd.DataFrame:
    """Every holiday and retail event from ``start`` to ``end`` (both inclusive).

    Parameters
    ----------
    start, end
        Date range, inclusive.
    country, subdivision
        Passed to ``holidays.country_holidays`` (observed days included). Years ``start.year - 1`` to
        ``end.year + 1`` are queried so that an observed day moved across New Year is kept.
    custom_events
        Extra yearly events; ``None`` means the default Prime-style window (:data:`PRIME_DAY`), an empty
        sequence means none.

    Returns
    -------
    pandas.DataFrame
        Columns ``date`` (datetime64[ns]), ``name`` (str), ``kind`` (``holiday`` | ``retail_event``),
        sorted by date, kind, name. One day can carry several rows (2021-12-24 is both Christmas Eve
        and Christmas Day (observed)).
    """
    lo, hi = _as_date(start), _as_date(end)
    if hi < lo:
        raise ValueError(f"calendar_events: end {hi} is before start {lo}")
    events = PRIME_DAY_DEFAULT if custom_events is None else tuple(custom_events)
    years = tuple(range(lo.year - 1, hi.year + 2))
    rows: list[tuple[dt.date, str, str]] = [(d, n, "holiday") for d, n in _holidays_for(country, subdivision, years)]
    for year in years:
        rows.extend((d, n, "retail_event") for d, n in retail_events(year))
        for ev in events:
            first = ev.first_day(year)
            if first is not None:
                rows.extend((first + dt.timedelta(days=i), ev.name, ev.kind) for i in range(ev.days))
    frame = pd.DataFrame(rows, columns=["date", "name", "kind"])
    frame = frame[(frame["date"] >= lo) & (frame["date"] <= hi)].drop_duplicates()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["name"] = frame["name"].astype(str)
    return frame.sort_values(["date", "kind", "name"], kind="stable").reset_index(drop=True)


def period_calendar(
    starts: Iterable[dt.date],
    freq: Freq,
    events: pd.DataFrame,
) -> pd.DataFrame:
    """Calendar covariates per period: known in advance, so they may describe a future period.

    Parameters
    ----------
    starts
        Period start dates (as returned by :func:`period_start`).
    freq
        ``month`` or ``week``.
    events
        Output of :func:`calendar_events` covering the periods.

    Returns
    -------
    pandas.DataFrame
        ``period_start`` (date), ``n_holidays`` (distinct days in the period with at least one holiday,
        observed days included), ``n_retail_events`` (distinct days with a retail event),
        ``weekend_days`` (Saturdays and Sundays), ``days_in_period``; all float64.
    """
    check_freq(freq)
    days = events.assign(day=events["date"].dt.date)
    hol = set(days.loc[days["kind"] == "holiday", "day"])
    ret = set(days.loc[days["kind"] == "retail_event", "day"])
    rows = []
    for s in sorted(set(starts)):
        s = period_start(s, freq)
        n = (next_period_start(s, freq) - s).days
        span = [s + dt.timedelta(days=i) for i in range(n)]
        rows.append((s, float(sum(d in hol for d in span)), float(sum(d in ret for d in span)),
                     float(sum(d.weekday() >= 5 for d in span)), float(n)))
    return pd.DataFrame(rows, columns=["period_start", "n_holidays", "n_retail_events", "weekend_days",
                                       "days_in_period"])


def target_window_end(cutoff: dt.date, freq: Freq, horizon: int) -> dt.date:
    """Last day of the ``horizon`` periods after the period ending at ``cutoff``."""
    return period_end(shift_period(cutoff, freq, horizon), freq)
