"""The one private third-party API spendlab relies on, checked so an upgrade fails here, loudly.

Optuna has no public way to list RUNNING trials that never wrote a heartbeat (catalogue row 58):
``spendlab.jobs.tune._storage_class`` overrides ``RDBStorage._get_stale_trial_ids(study_id)`` and
reads ``TrialModel.heartbeats``. If Optuna renames either, the override would silently stop being
called and killed trials would stay RUNNING forever; these tests fail first.
"""

from __future__ import annotations

import inspect

from optuna.storages import RDBStorage
from optuna.storages._rdb import models

from spendlab.jobs.tune import _storage_class


def test_optuna_still_has_the_stale_trial_hook_spendlab_overrides() -> None:
    hook = getattr(RDBStorage, "_get_stale_trial_ids", None)
    assert hook is not None, "optuna.storages.RDBStorage._get_stale_trial_ids is gone: revisit jobs/tune.py"
    assert list(inspect.signature(hook).parameters) == ["self", "study_id"]
    assert _storage_class()._get_stale_trial_ids is not hook  # the override is in place


def test_optuna_trial_model_still_has_heartbeats() -> None:
    from sqlalchemy.orm import configure_mappers

    configure_mappers()  # the heartbeats relationship is a backref, set up when the mappers are configured
    assert hasattr(models.TrialModel, "heartbeats")
    assert hasattr(models.TrialModel, "datetime_start") and hasattr(models.TrialModel, "state")
