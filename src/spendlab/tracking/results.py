"""Logging a model's backtest to its run: params, per-origin and mean metrics, dataset, tables, figures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
from spendlab.tracking.runs import ORIGIN_PREFIX, RunLog, child_run


def origin_step(cutoff: Any, freq: str = "month") -> int:
    """Return the MLflow step of a per-origin metric.

    The cutoff as ``YYYYMM`` (monthly) or ``YYYYMMDD`` (weekly: several cutoffs share a month), so the
    step axis reads as dates.
    """
    import pandas as pd

    ts = pd.Timestamp(cutoff)
    return ts.year * 100 + ts.month if freq == "month" else ts.year * 10000 + ts.month * 100 + ts.day


def log_dataset(run: RunLog, *, name: str, digest: str, source: str, n_rows: int | None = None,
                context: str = "backtest") -> None:
    """``mlflow.log_input`` equivalent for a dataset that is never materialised in pandas.

    The ``Dataset`` entity is built from its public constructor (a local file is a ``local`` source
    with its ``file://`` URI, anything else a ``code`` source naming it), so no private MLflow helper
    converts a dataset object into it.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema

    path = Path(source)
    if path.exists():
        source_type, source_json = "local", json.dumps({"uri": path.resolve().as_uri()})
    else:
        source_type, source_json = "code", json.dumps({"tags": {"source": source}})
    schema = Schema([ColSpec("string", "user_id"), ColSpec("datetime", "ts"), ColSpec("double", "amount")])
    entity = Dataset(name=name, digest=digest[:36], source_type=source_type, source=source_json,
                     schema=json.dumps({"mlflow_colspec": schema.to_dict()}))
    tags = [InputTag(key="mlflow.data.context", value=context)]
    MlflowClient().log_inputs(run.run_id, datasets=[DatasetInput(dataset=entity, tags=tags)])
    if n_rows is not None:
        run.tag("dataset_rows", n_rows)


def log_model_results(run: RunLog, *, params: Mapping[str, Any], per_origin: pd.DataFrame,
                      means: Mapping[str, float], dataset: Mapping[str, Any],
                      tables: Mapping[str, pd.DataFrame] | None = None, figures: Mapping[str, Any] | None = None,
                      texts: Mapping[str, str] | None = None, freq: str = "month") -> None:
    """Log a model's results on an open model run.

    Params, the mean metrics (``<split>_<metric>``, logged first), metrics per origin (series
    ``origin/<split>_<metric>`` whose step is the cutoff, :func:`origin_step`), the dataset input, and
    artifacts (tables as CSV/Parquet by suffix, matplotlib figures, text).

    ``per_origin`` has one row per origin with a ``cutoff`` (or an ``origin`` index) plus metric columns.
    """
    run.params(params)
    log_dataset(run, **dataset)
    metric_cols = [c for c in per_origin.columns
                   if c not in {"origin", "cutoff", "target_period", "split"} and per_origin[c].dtype.kind in "fi"]
    run.metrics(dict(means))
    by_step: dict[int | None, dict[str, float]] = {}
    for _, row in per_origin.iterrows():  # every origin's metrics in one batch (steps need not be unique)
        prefix = f"{row['split']}_" if "split" in per_origin.columns else ""
        step = origin_step(row["cutoff"], freq) if "cutoff" in per_origin.columns else int(row["origin"])
        by_step.setdefault(step, {}).update({f"{ORIGIN_PREFIX}{prefix}{c}": row[c] for c in metric_cols})
    run.metric_steps(by_step)
    for name, df in (tables or {}).items():
        run.table(df, name)
    for name, fig in (figures or {}).items():
        run.figure(fig, name)
    for name, text in (texts or {}).items():
        run.text(text, name)


def log_model_run(parent: RunLog, *, model_key: str, tags: Mapping[str, Any], **results: Any) -> str:
    """One child run (tag ``model=<key>``) holding :func:`log_model_results`; returns its id."""
    with child_run(parent, run_name=model_key, tags={"model": model_key, **tags}) as run:
        log_model_results(run, **results)
        return run.run_id


def flatten(prefix: str, values: Mapping[str, Any] | Sequence[Any] | Any) -> dict[str, Any]:
    """Nested config -> flat ``a.b.c`` keys (for params)."""
    out: dict[str, Any] = {}
    if isinstance(values, Mapping):
        for k, v in values.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
    else:
        out[prefix] = values
    return out


def log_selection(run: RunLog, *, rule: str, n_origins: int, origins_won: int, choices: pd.DataFrame) -> None:
    """Record how the champion was chosen on the parent run.

    Parameters
    ----------
    run : RunLog
        The experiment's parent run.
    rule : str
        The selection rule that chose the champion (tagged ``champion``; ``runner_up`` beside it).
    n_origins, origins_won : int
        Validation origins the choice was made on, and on how many the champion was best.
    choices : pandas.DataFrame
        One row per rule (``rule, model, test_rmse, test_regret``): what each rule would have chosen.
    """
    rows = choices.to_dict("records")
    run.tags({"selection_rule": rule, "selection_origins": str(n_origins),
              "selection_origins_won": str(origins_won), "selection_few_origins": str(n_origins < 3).lower(),
              **{f"selection_pick.{c['rule']}": c["model"] for c in rows}})
    run.metrics({f"selection_test_rmse.{c['rule']}": float(c["test_rmse"]) for c in rows})
    run.metrics({f"selection_test_regret.{c['rule']}": float(c["test_regret"]) for c in rows})
    run.table(choices, "selection.csv")


def log_profile(run: RunLog, records: pd.DataFrame) -> None:
    """Record where a job's time went, on its run: every timed stage and the total per stage.

    Parameters
    ----------
    run : RunLog
        The job's (parent) run.
    records : pandas.DataFrame
        One row per timed stage: ``stage``, ``detail``, ``origin``, ``seconds``, ``cpu_seconds``
        (:meth:`spendlab.timing.Timings.records`).

    Notes
    -----
    The table goes to ``profile/stages.csv``; each stage's summed wall seconds become the metric
    ``profile_seconds.<stage>`` (summed over threads: backtests run side by side, so the stages of a run
    may add up to more than its wall time).
    """
    if records.empty:
        return
    run.table(records, "profile/stages.csv")
    totals = records.groupby("stage", sort=True)["seconds"].sum()
    run.metrics({f"profile_seconds.{stage}": float(s) for stage, s in totals.items()})
