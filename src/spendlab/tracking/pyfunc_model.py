"""The registered ``spendlab-next-month`` model, logged from code (MLflow models-from-code).

This file is what MLflow stores as the model's code: the last line hands MLflow the
:class:`SpendForecaster` instance. It is the **whole scorer**: what ``spendlab score`` (DuckDB) and the
Spark scorer write is exactly its output, plus the cutoff and the model's name.

Artifacts: the fitted estimator (written by :mod:`spendlab.tracking.persist`: a skops archive, or a
joblib pickle for the few models skops cannot hold) and ``candidate.json`` (the tested candidate:
calibration, feature names, segments). ``model_config`` carries the estimator file's format, name and
SHA-256, the cold-start fallback and the feature set. Before MLflow even reads this file,
:func:`spendlab.tracking.registry.verify_model_dir` has checked every file of the model against the
manifest recorded at registration; the estimator's hash and format are checked again here before it is read.

Input: the as-of feature frame, one row per user (``user_id`` plus the features).
Output, keyed by ``user_id``: ``prediction`` (expected spend, >= 0), ``p_spend`` (probability of any
spend), ``median``, ``lower``, ``upper`` (80% interval of the realized amount), ``segment`` and
``basis`` (``model``, or ``cold_start_fallback`` for users without any purchase by the cutoff).
Params: ``n_threads`` (default 0 = the model's own setting), the threads ``predict`` may use; ``as_of``
(ISO date, default "" = unknown), the features' cutoff, passed to the estimator as the frame's ``origin``
index level (``bgnbd_seasonal`` reads it to pick its seasonal level; other models ignore it).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from spendlab.errors import SpendlabError
from spendlab.features.config import at_origin
from spendlab.features.segments import segment_users
from spendlab.forecast.cold_start import BASIS_COLD_START, BASIS_MODEL, apply_fallback, cold_users
from spendlab.forecast.intervals import apply_calibration
from spendlab.io.hashing import file_sha256
from spendlab.models.base import predict_threads
from spendlab.tracking.persist import FORMATS, EstimatorFormatError, load_estimator

__all__ = ["BASIS_COLD_START", "BASIS_MODEL", "OUTPUT_COLUMNS", "SpendForecaster"]

OUTPUT_COLUMNS: tuple[str, ...] = ("user_id", "prediction", "p_spend", "median", "lower", "upper", "segment", "basis")


class ModelIntegrityError(SpendlabError):
    """A model file does not match the hash recorded at registration, or is not a spendlab model."""


class SpendForecaster(PythonModel):
    """Next-period spend per user: expected value, P(spend), median and 80% interval of the realized amount."""

    def load_context(self, context: Any) -> None:
        """Load the fitted estimator and the candidate from the model's artifacts."""
        cfg = context.model_config or {}
        path = context.artifacts["estimator"]
        expected = cfg.get("estimator_sha256")
        actual = file_sha256(path)
        if not expected or actual != expected:
            raise ModelIntegrityError(
                f"refusing to load {path}: SHA-256 {actual[:12]}... does not match the registered "
                f"{str(expected)[:12]}... (the artifact was altered after registration)"
            )
        # Models registered before the format was recorded hold a joblib file named estimator.joblib.
        manifest = {"format": cfg.get("estimator_format", "joblib"), "sha256": expected,
                    "file": cfg.get("estimator_file", FORMATS["joblib"])}
        try:
            estimator = load_estimator(path, manifest)
        except EstimatorFormatError as exc:
            raise ModelIntegrityError(f"refusing to load {path}: {exc}") from None
        with open(context.artifacts["candidate"], encoding="utf-8") as fh:
            candidate = json.load(fh)
        self.bind(estimator, candidate["calibration"], candidate["feature_names"],
                  int(candidate["experiment"]["segments"]["active_window"]), cfg["cold_start"])

    def bind(self, estimator: Any, calibration: dict[str, Any], feature_names: list[str], active_window: int,
             cold_start: dict[str, float]) -> None:
        """Set the fitted state (from the artifacts, or directly when the model is being logged)."""
        self.estimator_ = estimator
        self.calibration_ = calibration
        self.feature_names_ = list(feature_names)
        self.active_window_ = int(active_window)
        self.cold_start_ = dict(cold_start)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a feature frame: one row per user with the output columns."""
        frame = model_input.reset_index(drop=True)
        X = frame[self.feature_names_].astype("float64")  # pandas 3 copies lazily (copy-on-write); its copy= keyword is deprecated
        as_of = str((params or {}).get("as_of") or "")
        if as_of:  # the cutoff, for models that read it from the index (bgnbd_seasonal)
            X = at_origin(X, as_of)
        with predict_threads(int((params or {}).get("n_threads") or 0)):
            pred = np.clip(np.asarray(self.estimator_.predict(X), dtype="float64"), 0.0, None)
        segment = segment_users(frame, active_window=self.active_window_)
        out = apply_calibration(pd.DataFrame({"segment": segment, "y_pred": pred}), self.calibration_)
        out.insert(0, "prediction", pred)
        # No purchase at all by the cutoff (refunds or zero amounts only): outside what the model was
        # trained on; the fallback (new users' next-period spend in training) is the backtests' too.
        out = apply_fallback(out, cold_users(frame), self.cold_start_)
        out.insert(0, "user_id", frame["user_id"].astype(str).to_numpy())
        out["segment"] = np.asarray(segment, dtype=str)
        return out[list(OUTPUT_COLUMNS)]


mlflow.models.set_model(SpendForecaster())
