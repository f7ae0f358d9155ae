"""``validation: auto`` resolved against the data when a job starts (the plan is made before the data are read)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import MappingProxyType

from spendlab.forecast.protocol import resolve_validation
from spendlab.jobs.plan import ExperimentPlan


def resolve_plan(plan: ExperimentPlan, first_cutoff: dt.date) -> ExperimentPlan:
    """Give ``plan`` explicit validation origins (a plan whose experiment names them is returned as is).

    Tuned per-origin parameters that do not cover every resolved validation origin are dropped,
    so those models are scored in sample on validation and their runs say so.

    Parameters
    ----------
    plan : ExperimentPlan
        The frozen plan.
    first_cutoff : datetime.date
        The end of the data's first period.

    Returns
    -------
    ExperimentPlan
        A new frozen plan whose experiment lists its validation dates.
    """
    if plan.experiment.validation != "auto":
        return plan
    cfg = resolve_validation(plan.experiment, first_cutoff)
    val = set(cfg.origins("validation"))
    models = {k: m if val <= set(m.fold_params) else dataclasses.replace(m, fold_params=MappingProxyType({}))
              for k, m in plan.models.items()}
    return dataclasses.replace(plan, experiment=cfg, models=MappingProxyType(models))
