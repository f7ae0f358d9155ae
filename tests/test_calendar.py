"""Holiday and retail-event flags against known dates, and the period helpers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from spendlab.calendar import (
    CalendarConfig,
    CustomEvent,
    calendar_events,
    next_period_start,
    period_calendar,
    period_end,
    period_index,
    period_start,
    period_starts,
    shift_period,
    target_period_label,
)
from spendlab.config import parse_config
from spendlab.errors import ConfigError

D = dt.date


def _names_on(events: pd.DataFrame, day: str, kind: str) -> set[str]:
    sel = events[(events["date"] == pd.Timestamp(day)) & (events["kind"] == kind)]
    return set(sel["name"])


@pytest.fixture(scope="module")
def us_2021() -> pd.DataFrame:
    return calendar_events(D(2021, 1, 1), D(2021, 12, 31))


def test_calendar_events_has_documented_columns_and_dtypes(us_2021: pd.DataFrame) -> None:
    assert list(us_2021.columns) == ["date", "name", "kind"]
    assert us_2021["date"].dtype == "datetime64[ns]"
    assert set(us_2021["kind"]) == {"holiday", "retail_event"}
    assert us_2021["date"].is_monotonic_increasing


def test_thanksgiving_2021_is_a_holiday_on_nov_25(us_2021: pd.DataFrame) -> None:
    assert "Thanksgiving Day" in _names_on(us_2021, "2021-11-25", "holiday")


def test_black_friday_and_cyber_monday_2021_follow_thanksgiving(us_2021: pd.DataFrame) -> None:
    assert _names_on(us_2021, "2021-11-26", "retail_event") == {"Black Friday"}
    assert _names_on(us_2021, "2021-11-29", "retail_event") == {"Cyber Monday"}


def test_christmas_2021_is_observed_on_friday_dec_24(us_2021: pd.DataFrame) -> None:
    assert _names_on(us_2021, "2021-12-24", "holiday") == {"Christmas Day (observed)"}
    assert _names_on(us_2021, "2021-12-24", "retail_event") == {"Christmas Eve"}
    assert _names_on(us_2021, "2021-12-25", "holiday") == {"Christmas Day"}


def test_new_year_2022_observed_day_falls_in_previous_year() -> None:
    ev = calendar_events(D(2021, 12, 31), D(2021, 12, 31))
    assert _names_on(ev, "2021-12-31", "holiday") == {"New Year's Day (observed)"}


def test_fixed_and_rule_based_retail_events_on_known_dates(us_2021: pd.DataFrame) -> None:
    assert _names_on(us_2021, "2021-02-14", "retail_event") == {"Valentine's Day"}
    assert _names_on(us_2021, "2021-05-09", "retail_event") == {"Mother's Day"}  # 2nd Sunday of May
    assert _names_on(us_2021, "2021-12-26", "retail_event") == {"Boxing Day"}
    # Default Prime-style window: 2nd Tuesday of July 2021 (13th) and the day after.
    prime = us_2021[us_2021["name"] == "Prime Day"]["date"].dt.date.tolist()
    assert prime == [D(2021, 7, 13), D(2021, 7, 14)]


def test_custom_events_replace_the_default_window() -> None:
    sale = CustomEvent(name="Summer Sale", month=6, day=30, days=3)
    ev = calendar_events(D(2021, 6, 1), D(2021, 7, 31), custom_events=[sale])
    assert ev[ev["name"] == "Summer Sale"]["date"].dt.date.tolist() == [D(2021, 6, 30), D(2021, 7, 1), D(2021, 7, 2)]
    assert "Prime Day" not in set(ev["name"])
    none = calendar_events(D(2021, 7, 1), D(2021, 7, 31), custom_events=[])
    assert set(none["name"]) == {"Independence Day", "Independence Day (observed)"}


def test_other_country_uses_its_own_holidays() -> None:
    ev = calendar_events(D(2021, 12, 1), D(2021, 12, 31), country="GB", custom_events=[])
    hol = set(ev.loc[ev["kind"] == "holiday", "date"].dt.date)
    assert D(2021, 12, 27) in hol and D(2021, 12, 28) in hol  # Christmas and Boxing Day substitutes
    assert D(2021, 11, 25) not in hol


def test_calendar_config_rejects_unknown_country_and_bad_event_rule() -> None:
    with pytest.raises(ConfigError, match="country"):
        parse_config(CalendarConfig, {"country": "XX"}, "cal.yaml")
    with pytest.raises(ConfigError, match="either day, or weekday and nth"):
        parse_config(CalendarConfig, {"custom_events": [{"name": "x", "month": 7}]}, "cal.yaml")


def test_iso_week_spanning_new_year_is_one_week_starting_monday() -> None:
    # 2021-12-27 is a Monday; 2022-01-02 a Sunday: ISO week 2021-W52.
    for d in (D(2021, 12, 27), D(2021, 12, 31), D(2022, 1, 1), D(2022, 1, 2)):
        assert period_start(d, "week") == D(2021, 12, 27)
        assert period_end(d, "week") == D(2022, 1, 2)
    assert next_period_start(D(2022, 1, 2), "week") == D(2022, 1, 3)


def test_month_helpers_cross_year_end() -> None:
    assert period_start(D(2021, 12, 15), "month") == D(2021, 12, 1)
    assert period_end(D(2021, 12, 15), "month") == D(2021, 12, 31)
    assert next_period_start(D(2021, 12, 15), "month") == D(2022, 1, 1)
    assert period_end(D(2024, 2, 3), "month") == D(2024, 2, 29)
    assert shift_period(D(2022, 1, 20), "month", -13) == D(2020, 12, 1)
    assert shift_period(D(2022, 1, 2), "week", 1) == D(2022, 1, 3)
    assert period_index(D(2022, 1, 1), "month") - period_index(D(2021, 12, 31), "month") == 1
    assert period_index(D(2022, 1, 3), "week") - period_index(D(2022, 1, 2), "week") == 1
    assert period_index(D(2022, 1, 2), "week") == period_index(D(2021, 12, 27), "week")
    assert period_starts(D(2021, 11, 30), D(2022, 1, 1), "month") == [D(2021, 11, 1), D(2021, 12, 1), D(2022, 1, 1)]


def test_unknown_freq_is_rejected() -> None:
    with pytest.raises(ValueError, match="freq must be one of"):
        period_start(D(2021, 1, 1), "day")  # type: ignore[arg-type]


def test_period_calendar_counts_holidays_events_weekends_by_hand() -> None:
    ev = calendar_events(D(2021, 11, 1), D(2022, 1, 31))
    cal = period_calendar([D(2021, 12, 1), D(2021, 11, 22), D(2021, 12, 27)], "week", ev).set_index("period_start")
    # Week of Mon 2021-11-22: Thanksgiving (holiday), Black Friday (event); weekend 27, 28.
    assert cal.loc[D(2021, 11, 22)].tolist() == [1.0, 1.0, 2.0, 7.0]
    # Week of Mon 2021-11-29: Cyber Monday only.
    assert cal.loc[D(2021, 11, 29)].tolist() == [0.0, 1.0, 2.0, 7.0]
    # Week of Mon 2021-12-27 (crosses New Year): New Year observed 12-31 and New Year's Day 1-1.
    assert cal.loc[D(2021, 12, 27)].tolist() == [2.0, 0.0, 2.0, 7.0]
    month = period_calendar([D(2021, 12, 1)], "month", ev).iloc[0]
    # December 2021 holidays: 24 (observed), 25, 31 (New Year observed); events: 24, 26; 8 weekend days.
    assert month[["n_holidays", "n_retail_events", "weekend_days", "days_in_period"]].tolist() == [3.0, 2.0, 8.0, 31.0]


@pytest.mark.parametrize("as_of,freq,label", [
    (dt.date(2021, 12, 31), "month", "2022-01"),  # December -> next year's January
    (dt.date(2024, 2, 10), "month", "2024-03"),
    (dt.date(2024, 12, 29), "week", "2025-W01"),  # ISO week 1 of 2025 starts Monday 2024-12-30
    (dt.date(2020, 12, 27), "week", "2020-W53"),  # 2020 has 53 ISO weeks
])
def test_target_period_label_names_the_period_after_the_cutoff(as_of: dt.date, freq: str, label: str) -> None:
    assert target_period_label(as_of, freq) == label


@pytest.mark.parametrize("as_of,freq,horizon,label", [
    (dt.date(2023, 11, 12), "week", 4, "2023-W46/2023-W49"),
    (dt.date(2024, 12, 22), "week", 2, "2024-W52/2025-W01"),  # across the ISO year
    (dt.date(2024, 11, 30), "month", 3, "2024-12/2025-02"),
    (dt.date(2024, 11, 30), "month", 1, "2024-12"),
])
def test_a_target_of_several_periods_is_labelled_as_an_iso_interval(as_of: dt.date, freq: str, horizon: int,
                                                                      label: str) -> None:
    assert target_period_label(as_of, freq, horizon) == label


def test_the_target_calendar_covariates_cover_every_period_of_the_horizon_by_hand() -> None:
    from spendlab.features import FeatureConfig
    from spendlab.features.sql import calendar_tables

    # Sunday 2023-11-12 ends ISO week 45; the target is weeks 46-49 (Mon 11-13 .. Sun 12-10): 28 days,
    # 8 weekend days, Thanksgiving (11-23) the one holiday; Black Friday and Cyber Monday the events.
    _, cov = calendar_tables(D(2023, 11, 12), "week", FeatureConfig(), horizon=4)
    row = cov.iloc[0]
    assert (row["target_days_in_period"], row["target_weekend_days"], row["target_n_holidays"]) == (28.0, 8.0, 1.0)
    assert row["target_n_retail_events"] >= 2.0
    assert row["asof_days_in_period"] == 7.0
    # 2024-01-31: February (leap year, 29) + March (31) + April (30).
    _, cov = calendar_tables(D(2024, 1, 31), "month", FeatureConfig(), horizon=3)
    assert cov.iloc[0]["target_days_in_period"] == 90.0
    with pytest.raises(ValueError, match="horizon"):
        calendar_tables(D(2024, 1, 31), "month", FeatureConfig(), horizon=0)


@pytest.mark.parametrize("freq", ["week", "month"])
@pytest.mark.parametrize("horizon", [2, 3, 5])
@pytest.mark.parametrize("as_of", [D(2021, 11, 28), D(2022, 12, 25), D(2023, 6, 30)])
def test_the_target_window_covariates_are_the_sum_of_its_periods_own(freq: str, horizon: int, as_of: dt.date) -> None:
    """Oracle by composition: the window's covariates = the one-period covariates of each of its periods."""
    from spendlab.features import FeatureConfig
    from spendlab.features.sql import calendar_tables

    as_of = period_end(as_of, freq)
    _, window = calendar_tables(as_of, freq, FeatureConfig(), horizon=horizon)
    cutoffs = [period_end(shift_period(as_of, freq, k), freq) for k in range(horizon)]
    singles = pd.concat([calendar_tables(c, freq, FeatureConfig(), horizon=1)[1] for c in cutoffs])
    for col in ("n_holidays", "n_retail_events", "weekend_days", "days_in_period"):
        assert window.iloc[0][f"target_{col}"] == singles[f"target_{col}"].sum()
    assert window.iloc[0]["asof_days_in_period"] == singles.iloc[0]["asof_days_in_period"]
