"""The covariate comparison in MLflow: metrics and tables on the with-covariates experiment run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from spendlab.tracking import runs


def log_covariate_comparison(run_id: str, summary: Mapping[str, Any], importance: pd.DataFrame, *,
                             tracking_uri: str | None = None) -> None:
    """Log ``covariates.*`` metrics (champion RMSE with and without, the difference and its interval, the user table's counts), ``importance.<covariate>`` metrics, and ``covariates/importance.csv`` to the finished run ``run_id``."""
    runs.configure(tracking_uri)
    log = runs.RunLog(run_id)
    numbers = {f"covariates.{k}": float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    table = summary.get("user_table") or {}
    numbers.update({f"covariates.user_table.{k}": float(table[k]) for k in ("rows_in", "accepted", "rejected",
                                                                           "unused_keys", "missing_users")
                    if isinstance(table.get(k), int)})
    log.metrics(numbers)
    log.metrics({f"importance.{r.covariate}": float(r.importance) for r in importance.itertuples()
                 if math.isfinite(float(r.importance))})
    log.tags({"covariates.champion_with": str(summary.get("champion_with")),
              "covariates.champion_without": str(summary.get("champion_without")),
              "covariates.importance_model": str(summary.get("importance_model"))})
    log.table(importance, "covariates/importance.csv")
