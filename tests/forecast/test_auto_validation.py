"""``validation: auto`` and ``selection: {rule: ...}`` in the experiment config."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from spendlab.calendar import period_end, shift_period
from spendlab.errors import ConfigError
from spendlab.forecast.protocol import ExperimentConfig, auto_validation_cutoffs, resolve_validation
from spendlab.forecast.selection import DEFAULT_RULE
from spendlab.forecast.split import training_origins

D = dt.date


def cfg(**kw: object) -> ExperimentConfig:
    base = {"name": "x", "dataset": {"input": "builtin:cdnow", "format": "cdnow"}, "validation": "auto",
            "test": {"start": "2023-10-31", "end": "2023-12-31"}, "train_origins": 3}
    return ExperimentConfig.model_validate({**base, **kw})


def test_auto_monthly_by_hand() -> None:
    # data from January: 3 training origins need Jan, Feb, Mar targets known -> first origin 2023-04-30;
    # the last validation target (September's next month) is known before the first test cutoff 2023-10-31
    got = auto_validation_cutoffs(cfg(), D(2023, 1, 31))
    assert got == [D(2023, 4, 30), D(2023, 5, 31), D(2023, 6, 30), D(2023, 7, 31), D(2023, 8, 31), D(2023, 9, 30)]


@pytest.mark.parametrize("freq,horizon,train,test_start,first", [
    ("month", 1, 3, "2023-10-31", D(2023, 1, 31)),
    ("month", 2, 1, "2023-10-31", D(2023, 1, 31)),
    ("month", 1, "all", "2023-10-31", D(2023, 3, 31)),
    ("month", 1, "2023-05-31", "2023-10-31", D(2023, 1, 31)),
    ("week", 4, 4, "2023-12-03", D(2023, 9, 3)),
    ("week", 1, 2, "2023-12-03", D(2023, 9, 3)),
])
def test_auto_origins_are_exactly_those_with_a_full_training_window_and_a_known_target(
        freq: str, horizon: int, train: object, test_start: str, first: dt.date) -> None:
    test = {"dates": [test_start]}
    c = cfg(freq=freq, horizon=horizon, train_origins=train, test=test)
    got = auto_validation_cutoffs(c, first)
    assert got, "the data allow at least one origin here"
    want = train if isinstance(train, int) else 1

    def full(cut: dt.date) -> bool:  # the oracle: the one time split, asked directly
        return len(training_origins(cut, freq=freq, horizon=horizon, n=c.train_origins, first_cutoff=first)) >= want

    assert all(full(d) for d in got)
    before = period_end(shift_period(got[0], freq, -1), freq)
    assert not full(before)  # one period earlier has too few training origins
    # the last one's target ends before the first test cutoff; one later would not
    test0 = D.fromisoformat(test_start)
    assert period_end(shift_period(got[-1], freq, horizon), freq) <= test0
    assert period_end(shift_period(got[-1], freq, horizon + 1), freq) > test0
    resolved = resolve_validation(c, first)
    assert resolved.origins("validation") == got and resolved.validation != "auto"
    assert ExperimentConfig.model_validate(resolved.model_dump(mode="json")) == resolved  # a candidate can read it


def test_unresolved_auto_is_refused_and_no_room_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not been resolved"):
        cfg().origins("validation")
    assert cfg().origins("test")[0] == D(2023, 10, 31)
    with pytest.raises(ConfigError, match="leave no validation origin"):
        resolve_validation(cfg(), D(2023, 8, 31))


def test_selection_rule_defaults_and_is_validated() -> None:
    assert cfg().selection.rule == DEFAULT_RULE
    assert cfg(selection={"rule": "one_se"}).selection.rule == "one_se"
    with pytest.raises(ValidationError, match="unknown selection rule"):
        cfg(selection={"rule": "vibes"})
    with pytest.raises(ValidationError):
        cfg(selection={"rule": "one_se", "colour": 1})
