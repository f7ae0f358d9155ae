"""``spendlab compare``: the model runs of an experiment across invocations, ranked by one metric."""

from __future__ import annotations

import pandas as pd

from spendlab.errors import ConfigError, NoDataError
from spendlab.tracking import runs as tracking


def model_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Select the finished per-model runs of experiment invocations in a ``search_runs`` frame.

    A model run is tagged ``kind=model`` (runs logged before that tag existed: a ``model`` tag and a
    parent run, no ``kind``). Left out: experiment parents, tuning studies and their trials
    (``kind=tuning`` / ``trial``), promotion runs (``kind=promotion``, which also carry ``model``).
    """
    if runs.empty or "tags.model" not in runs.columns:
        return runs.iloc[0:0]
    kind = runs["tags.kind"] if "tags.kind" in runs.columns else pd.Series(None, index=runs.index, dtype=object)
    parent = runs["tags.mlflow.parentRunId"].notna() if "tags.mlflow.parentRunId" in runs.columns else False
    legacy = kind.isna() & runs["tags.model"].notna() & parent
    return runs[((kind == "model") | legacy) & (runs["status"] == "FINISHED")]


def _rank_key(values: pd.Series, metric: str) -> pd.Series:
    """Smaller = better, for sorting by ``metric``."""
    if metric in _HIGHER_IS_BETTER:
        return -values
    if metric in _TARGET:
        return (values - _TARGET[metric]).abs()
    return values


def compare_runs(experiment_name: str, *, tracking_uri: str | None = None, top: int = 3,
                 metric: str = "rmse", model: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """List the model runs of ``experiment_name`` across invocations, best ``metric`` first.

    Also returns the params that differ between the ``top`` best of them.

    ``metric`` is a :data:`COMPARE_METRICS` name (``rmse`` = mean test RMSE, the default) or any
    metric key the model runs logged. Only params that every one of the ``top`` runs has are diffed
    (a LightGBM run and a ridge run share the protocol's params, not their hyperparameters).
    ``model`` keeps only that registry key's runs. Returns ``(board, diff)``: ``board`` has ``model``, ``started``, the metric shown, the other
    headline metrics present, ``tuned``, ``git_commit`` and ``run_id``.
    """
    runs = model_runs(tracking.search_runs(experiment_name, tracking_uri=tracking_uri))
    if model is not None:
        runs = runs[runs["tags.model"] == model]
    if runs.empty:
        raise NoDataError(f"no finished model runs{f' of {model!r}' if model else ''} recorded for experiment "
                          f"{experiment_name!r} in the tracking store")
    key = COMPARE_METRICS.get(metric, metric)
    if f"metrics.{key}" not in runs.columns:
        known = sorted({*COMPARE_METRICS, *(c.removeprefix("metrics.") for c in runs.columns
                                            if c.startswith("metrics.") and "/" not in c)})
        raise ConfigError(f"--metric {metric!r}: no model run of {experiment_name!r} logged it; one of {', '.join(known)}")
    runs = runs[runs[f"metrics.{key}"].notna()].copy()
    runs["_rank"] = _rank_key(runs[f"metrics.{key}"], metric)
    runs = runs.sort_values(["_rank", "start_time"], ascending=[True, False], ignore_index=True)
    shown = {metric: key, **{k: v for k, v in COMPARE_METRICS.items() if k != metric and v != key}}
    cols = {"tags.model": "model", "start_time": "started",
            **{f"metrics.{v}": k for k, v in shown.items() if f"metrics.{v}" in runs.columns},
            "tags.tuned": "tuned", "tags.git_commit": "git_commit", "run_id": "run_id"}
    present = {k: v for k, v in cols.items() if k in runs.columns}
    board = runs[list(present)].rename(columns=present)
    board["started"] = pd.to_datetime(board["started"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    best = runs.head(max(top, 1))
    shared = [c for c in best.columns if c.startswith("params.") and best[c].notna().all()]
    differing = [c for c in shared if best[c].astype(str).nunique() > 1]
    diff = pd.DataFrame({"param": [c.removeprefix("params.") for c in differing]})
    for _, r in best.iterrows():
        diff[f"{r['tags.model']} {r['run_id'][:8]}"] = [r[c] for c in differing]
    return board, diff


#: ``compare`` columns: shown name -> MLflow metric key (means over the test origins unless named).
COMPARE_METRICS: dict[str, str] = {
    "rmse": "test_rmse", "mae": "test_mae", "bias": "test_bias", "wape": "test_wape",
    "top10_capture": "test_top10_capture", "gini_norm": "test_gini_norm", "spearman": "test_spearman",
    "decile_mape": "test_decile_mape", "validation_rmse": "validation_rmse",
    "interval_coverage_80": "interval_coverage_80",
}


#: How a metric ranks runs: higher is better; nearer zero (bias); nearer the nominal 80% (coverage).
_HIGHER_IS_BETTER = frozenset({"top10_capture", "gini_norm", "spearman"})


_TARGET = {"bias": 0.0, "interval_coverage_80": 0.8}
