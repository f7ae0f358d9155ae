"""The registered ``spendlab-next-month`` model, logged from code (MLflow models-from-code).

This file is what MLflow stores as the model's code: the last line hands MLflow the
:class:`SpendForecaster` instance. Its artifacts are the fitted estimator (written by spendlab
itself with joblib) and the interval table; ``model_config`` carries the feature names, the
training cutoff, the feature-set version and the SHA-256 of the estimator file, which is checked
before anything is unpickled (catalogue row 66: an altered artifact is refused).

Input: the as-of feature frame, one row per user (``user_id`` plus the features).
Output: ``prediction`` (>= 0), ``lower``, ``upper`` (the 80% interval) and ``segment``.
Params: ``n_threads`` (default 0 = the model's own setting), the threads ``predict`` may use.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from spendlab.forecast.intervals import apply_intervals
from spendlab.forecast.segments import segment_users
from spendlab.models.base import predict_threads


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelIntegrityError(RuntimeError):
    """The estimator artifact does not match the hash recorded at registration."""


class SpendForecaster(PythonModel):
    """Next-period spend per user with a conformal 80% interval by segment."""

    def load_context(self, context: Any) -> None:
        import joblib

        cfg = context.model_config or {}
        path = context.artifacts["estimator"]
        expected = cfg.get("estimator_sha256")
        actual = file_sha256(path)
        if not expected or actual != expected:
            raise ModelIntegrityError(
                f"refusing to load {path}: SHA-256 {actual[:12]}... does not match the registered "
                f"{str(expected)[:12]}... (the artifact was altered after registration)"
            )
        with open(context.artifacts["intervals"], encoding="utf-8") as fh:
            intervals = json.load(fh)
        self.bind(joblib.load(path), intervals, cfg["feature_names"], int(cfg.get("active_window", 3)))

    def bind(self, estimator: Any, intervals: dict[str, Any], feature_names: list[str], active_window: int) -> None:
        """Set the fitted state (from the artifacts, or directly when the model is being logged)."""
        self.estimator_ = estimator
        self.intervals_ = intervals
        self.feature_names_ = list(feature_names)
        self.active_window_ = int(active_window)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:

        frame = model_input.reset_index(drop=True)
        X = frame[self.feature_names_].astype("float64", copy=False)  # the selection is already a copy
        with predict_threads(int((params or {}).get("n_threads") or 0)):
            pred = np.clip(np.asarray(self.estimator_.predict(X), dtype="float64"), 0.0, None)
        segment = segment_users(frame, active_window=int(self.active_window_))
        bounds = apply_intervals(pd.DataFrame({"segment": segment, "y_pred": pred}), self.intervals_)
        return pd.DataFrame(
            {
                "prediction": pred,
                "lower": bounds["lower"].to_numpy(dtype="float64"),
                "upper": bounds["upper"].to_numpy(dtype="float64"),
                "segment": np.asarray(segment, dtype=str),
            }
        )


mlflow.models.set_model(SpendForecaster())
