"""Backtests start costliest first (tuned, then registry.FIT_COST) and are yielded in the caller's order."""

from __future__ import annotations

import datetime as dt

import pytest

from spendlab.forecast.backtest import backtest_models
from spendlab.models import registry
from tests.forecast.test_backtest import experiment, store_for, tx_frame

D = dt.date
KEYS = ["zero", "last_period", "moving_average", "seasonal_naive", "per_user_linear"]


@pytest.mark.parametrize(("costs", "tuned", "started"), [
    # per_user_linear is unlisted: it counts as the costliest.
    ({"zero": 0, "last_period": 1, "moving_average": 3, "seasonal_naive": 2}, set(),
     ["zero", "per_user_linear", "moving_average", "seasonal_naive", "last_period"]),
    # A tuned model starts before every untuned one, whatever its cost.
    ({"zero": 0, "last_period": 1, "moving_average": 3, "seasonal_naive": 2, "per_user_linear": 5}, {"last_period"},
     ["zero", "last_period", "per_user_linear", "moving_average", "seasonal_naive"]),
    # The first key always runs first and alone (it builds the features), even when it is the cheapest.
    ({"zero": 9, "last_period": 0, "moving_average": 0, "seasonal_naive": 0, "per_user_linear": 0}, set(),
     ["zero", "last_period", "moving_average", "seasonal_naive", "per_user_linear"]),
])
def test_backtests_start_costliest_first_and_come_back_in_order(monkeypatch: pytest.MonkeyPatch,
                                                               costs: dict[str, float], tuned: set[str],
                                                               started: list[str]) -> None:
    monkeypatch.setattr(registry, "FIT_COST", costs)
    said: list[str] = []
    resolved = {k: ({}, k in tuned) for k in KEYS}
    # jobs=1: one worker runs the backtests in the order they were submitted.
    outcomes = list(backtest_models(store_for(tx_frame()), experiment([D(2024, 5, 31), D(2024, 6, 30)]), resolved,
                                    jobs=1, progress=said.append))
    assert [m.split("backtesting ")[1].split(" ")[0] for m in said] == started
    assert [o.key for o in outcomes] == KEYS
    assert all(o.error is None for o in outcomes)


def test_every_registry_model_has_a_cost() -> None:
    assert set(registry.FIT_COST) == set(registry.MODELS) - registry.COMBINERS
    assert all(c >= 0 for c in registry.FIT_COST.values())
