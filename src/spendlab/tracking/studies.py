"""MLflow runs of Optuna studies: one parent run per study, a nested run per trial."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spendlab.io.recovery import process_tags

if TYPE_CHECKING:
    from mlflow.entities import Run
from spendlab.tracking.runs import (
    RunLog,
    base_tags,
    child_run,
    configure,
    create_run,
    ensure_experiment,
    terminating_run,
)


@contextlib.contextmanager
def study_run(*, experiment_name: str, study_name: str, run_id: str | None = None,
              tracking_uri: str | None = None, tags: Mapping[str, Any] | None = None) -> Iterator[Run]:
    """Open the parent run of a tuning study; resume ``run_id`` when the study is resumed."""
    from mlflow import MlflowClient

    configure(tracking_uri)
    exp_id = ensure_experiment(experiment_name)
    client = MlflowClient()
    if run_id is not None:
        try:
            client.update_run(run_id, status="RUNNING")

            for k, v in process_tags().items():  # the resuming process owns the run now
                client.set_tag(run_id, k, v)
        except Exception:
            run_id = None
    if run_id is None:
        run_id = create_run(exp_id, f"tune-{study_name}",
                             {**base_tags(), "study": study_name, "kind": "tuning", **(tags or {})}, None)
    with terminating_run(run_id):
        yield client.get_run(run_id)


@contextlib.contextmanager
def trial_run(parent_run_id: str, trial_number: int, params: Mapping[str, Any]) -> Iterator[RunLog]:
    """One nested run per Optuna trial, with the trial's params."""
    with child_run(parent_run_id, run_name=f"trial-{trial_number}",
                   tags={"trial": trial_number, "kind": "trial"}) as run:
        run.params(params)
        yield run


def log_study_summary(run_id: str, *, best_params: Mapping[str, Any], best_value: float, n_complete: int,
                      n_pruned: int, params_file: Path | None = None) -> None:
    """Best params and value of a study on its parent run.

    The best params are tags, not params: a resumed study logs to the same parent run and its best can
    change, and MLflow params are write-once (a resumed study that improved crashed on them).
    """
    run = RunLog(run_id)
    run.tags({f"best_{k}": v for k, v in best_params.items()})
    run.metrics({"best_validation_rmse": best_value, "n_complete": n_complete, "n_pruned": n_pruned})
    if params_file is not None and Path(params_file).exists():
        run.artifact(params_file)


def log_plan(run_id: str, plan_json: str) -> None:
    """Log a job's plan as ``plan.json`` on run ``run_id`` (what the run was asked to do)."""
    RunLog(run_id).text(plan_json, "plan.json")
