"""Monitoring and replay plans: options resolved once, unknown keys and bad values refused."""

from __future__ import annotations

import datetime as dt

import pytest

from spendlab.errors import ConfigError
from spendlab.jobs.monitor import MonitorInputError, check_complete, plan_monitor, version_uri
from spendlab.jobs.monitor_report import period_step
from spendlab.jobs.replay import POLICIES, plan_replay


def test_monitor_plan_reads_the_config_section() -> None:
    plan = plan_monitor("s.parquet", "x.csv", format="generic",
                        config={"model": "m", "n_boot": 50, "thresholds": {"bias_retrain": 0.7}})
    assert (plan.model, plan.n_boot, plan.thresholds.bias_retrain, plan.thresholds.psi_warn) == ("m", 50, 0.7, 0.1)
    with pytest.raises(ConfigError, match="unknown keys \\['colour'\\]"):
        plan_monitor("s", "x", format="generic", config={"colour": 1})
    with pytest.raises(ConfigError, match="thresholds: unknown keys \\['bias'\\]"):
        plan_monitor("s", "x", format="generic", config={"thresholds": {"bias": 1}})


def test_an_alias_is_pinned_to_the_scored_version() -> None:
    lineage = {"model_uri": "models:/spendlab-next-month@champion", "model_name": "spendlab-next-month",
               "model_version": "7"}
    assert version_uri(lineage) == "models:/spendlab-next-month/7"
    assert version_uri({**lineage, "model_uri": "/models/dir"}) == "/models/dir"


def test_a_period_is_complete_only_when_the_input_reaches_its_last_day() -> None:
    lineage = {"as_of": "2024-01-31", "freq": "month", "target_period": "2024-02"}
    assert check_complete(lineage, dt.date(2024, 2, 29), input="x") == dt.date(2024, 2, 29)
    with pytest.raises(MonitorInputError, match="last day seen is 2024-02-28, the period ends 2024-02-29"):
        check_complete(lineage, dt.date(2024, 2, 28), input="x")


def test_period_steps_read_as_dates() -> None:
    assert period_step(dt.date(1998, 7, 1), "month") == 199807
    assert period_step(dt.date(2024, 1, 8), "week") == 20240108


def test_replay_plan() -> None:
    plan = plan_replay("e.yaml", first="1998-01", last="1998-06")
    assert (plan.first, plan.last, plan.policies) == (dt.date(1998, 1, 1), dt.date(1998, 6, 1), POLICIES)
    assert plan_replay("e.yaml", first="1998-01", last="1998-01", policies="monthly").policies == ("monthly",)
    with pytest.raises(ConfigError, match="before --from"):
        plan_replay("e.yaml", first="1998-06", last="1998-01")
    with pytest.raises(ConfigError, match="choose from never"):
        plan_replay("e.yaml", first="1998-01", last="1998-02", policies="sometimes")
    with pytest.raises(ConfigError, match="not a month"):
        plan_replay("e.yaml", first="Jan", last="1998-02")
