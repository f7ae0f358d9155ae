"""The MLflow side of monitoring: a model version's backtest figures, and one run per monitored period.

A monitoring run sits in the model's experiment (beside the backtest that chose it), tagged
``kind=monitoring``, ``model_name``, ``model_version`` and ``period``; its metrics use the target
period as the step (``YYYYMM``), so the MLflow UI plots realized accuracy month by month next to
the backtest's per-origin test metrics (``origin/test_rmse``, step = the origin's cutoff).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab.forecast.candidate import Candidate
from spendlab.forecast.metrics import origin_metrics
from spendlab.tracking import runs as tracking
from spendlab.tracking.registry import read_model_candidate, verified_model_dir

#: The ``kind`` tag of a monitoring run.
KIND = "monitoring"


@dataclass
class ModelRecord:
    """What monitoring needs of a model version: its candidate, reference profile and backtest."""

    candidate: Candidate
    reference: dict[str, Any] | None
    #: Per test origin of its backtest: ``cutoff``, ``target_period``, ``rmse``, ``bias`` (empty if not found).
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The backtest's test predictions (``cutoff``, ``y_true``, ``y_pred``), for the bootstrap.
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)


def model_record(uri: str, *, tracking_uri: str | None = None) -> ModelRecord:
    """Read a model version's candidate and reference profile, and find its backtest's test origins.

    Parameters
    ----------
    uri : str
        ``models:/name/version`` (or ``@alias``) or a model directory.
    tracking_uri : str, optional
        The MLflow store.

    Returns
    -------
    ModelRecord
        The backtest frames are empty when the experiment run is not in the store.
    """
    if uri.startswith("models:/"):
        tracking.configure(tracking_uri, must_exist=True)
    with verified_model_dir(uri) as (local, _, _):
        cand = read_model_candidate(local)
        ref = local / "artifacts" / "reference.json"
        reference = json.loads(ref.read_text(encoding="utf-8")) if ref.is_file() else None
    record = ModelRecord(cand, reference)
    if cand.experiment_run_id:
        try:
            record.backtest, record.predictions = _backtest(cand, tracking_uri=tracking_uri)
        except Exception:  # a store without the experiment run: the report says so
            pass
    return record


def model_backtest(cand: Candidate, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """Return the candidate's backtest per test origin (``cutoff, target_period, rmse, ...``; empty if not found)."""
    try:
        return _backtest(cand, tracking_uri=tracking_uri)[0]
    except Exception:  # a store without the experiment run
        return pd.DataFrame()


def _backtest(cand: Candidate, *, tracking_uri: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the candidate's child run of its experiment run: test predictions, and metrics per test origin."""
    tracking.configure(tracking_uri, must_exist=True)
    client = tracking.client()
    parent = client.get_run(cand.experiment_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
                                            f"and tags.model = '{cand.model_key}'", max_results=1)
    if not runs:
        return pd.DataFrame(), pd.DataFrame()
    with tempfile.TemporaryDirectory() as tmp:
        preds = pd.read_parquet(client.download_artifacts(runs[0].info.run_id, "predictions.parquet", tmp))
    preds = preds[preds["split"] == "test"].loc[:, ~preds.columns.duplicated()]
    rows = [{"cutoff": pd.Timestamp(c).date(), "target_period": str(pd.Timestamp(g["target_period"].iloc[0]).date())[:7],
             **origin_metrics(g["y_true"].to_numpy(), g["y_pred"].to_numpy())}
            for c, g in preds.groupby("cutoff", sort=True)]
    return pd.DataFrame(rows), preds[["cutoff", "user_id", "y_true", "y_pred"]].reset_index(drop=True)


def log_monitoring_run(experiment: str, *, tags: Mapping[str, str], params: Mapping[str, Any],
                       metrics: Mapping[str, float], step: int, tables: Mapping[str, pd.DataFrame],
                       files: Mapping[str, Path], tracking_uri: str | None = None) -> str:
    """Log one monitored period as a run of ``experiment``; returns its id.

    Parameters
    ----------
    experiment : str
        The MLflow experiment (the model's own).
    tags : mapping
        ``model_name``, ``model_version``, ``period`` and any other tags (``kind`` is set here).
    params : mapping
        Run parameters.
    metrics : mapping
        Logged at ``step``.
    step : int
        The target period as ``YYYYMM``.
    tables : mapping
        Artifacts (CSV).
    files : mapping
        Files logged as artifacts (name -> path).
    tracking_uri : str, optional
        The MLflow store.

    Returns
    -------
    str
        The run id.
    """
    name = f"monitor-{tags.get('model_name', '')}-v{tags.get('model_version', '')}-{tags.get('period', '')}"
    with tracking.start_parent_run(experiment, run_name=name, tags={**tags, "kind": KIND},
                                   tracking_uri=tracking_uri) as run:
        run.params(params)
        run.metrics(metrics, step=step)
        for fname, df in tables.items():
            run.table(df, fname)
        for path in files.values():
            run.artifact(path)
        return run.run_id


def monitoring_history(experiment: str, model_name: str, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """Every earlier monitored period of a model: ``period, model_version, rmse, backtest_rmse, verdict``.

    The latest run per (period, version) wins; empty when there is none.
    """
    runs = tracking.search_runs(experiment, tracking_uri=tracking_uri,
                                filter_string=f"tags.kind = '{KIND}' and tags.model_name = '{model_name}'")
    cols = ["period", "model_version", "rmse", "backtest_rmse", "verdict"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({"period": runs["tags.period"], "model_version": runs["tags.model_version"],
                        "rmse": runs.get("metrics.rmse"), "backtest_rmse": runs.get("metrics.backtest_test_rmse"),
                        "verdict": runs.get("tags.verdict"), "start": runs["start_time"]})
    out = out.sort_values("start").drop_duplicates(["period", "model_version"], keep="last")
    return out[cols].sort_values(["period", "model_version"]).reset_index(drop=True)
