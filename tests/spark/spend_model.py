"""A minimal spendlab-shaped pyfunc model, logged from code by the Spark scoring tests.

Same input and output contract as ``spendlab.tracking.pyfunc_model`` (the feature frame with
``user_id`` in; ``prediction, lower, upper, segment`` out), wrapping a scikit-learn regressor
fitted on real features; its ``model_config`` carries what :func:`spendlab.jobs.score.load_model` reads.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class RidgeSpend(PythonModel):
    def load_context(self, context: Any) -> None:
        import joblib

        self.estimator_ = joblib.load(context.artifacts["estimator"])
        self.feature_names_ = list(context.model_config["feature_names"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        X = model_input[self.feature_names_].astype("float64")
        pred = np.clip(np.asarray(self.estimator_.predict(X), dtype="float64"), 0.0, None)
        new = model_input["n_periods"].to_numpy() < 3
        return pd.DataFrame({
            "prediction": pred,
            "lower": pred * 0.5,
            "upper": pred * 1.5 + 10.0,
            "segment": np.where(new, "new", "established"),
        })


mlflow.models.set_model(RidgeSpend())
