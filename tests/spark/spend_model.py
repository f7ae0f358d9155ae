"""A real spendlab model (ridge on the default features, hurdle calibration, cold start) registered in a
store, for the Spark scoring tests and ``benchmarks/bench_spark.py``."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from spendlab.config import config_hash
from spendlab.features import FeatureConfig, build_features, build_target, feature_columns
from spendlab.features.segments import segment_users
from spendlab.forecast.candidate import Candidate, Measured
from spendlab.forecast.intervals import cold_start_fallback, fit_calibration
from spendlab.forecast.protocol import ExperimentConfig, protocol_id
from spendlab.io import Mode, load_transactions
from spendlab.io.load import connect
from spendlab.models.registry import make_model, resolved_params
from spendlab.tracking.registry import Refit, log_and_register


def register_ridge(data: str, *, train_as_of: dt.date, calibrate_as_of: dt.date, tracking_uri: str,
                   name: str, config: FeatureConfig | None = None, transactions=None) -> str:
    """Fit ridge at ``train_as_of``, calibrate at ``calibrate_as_of``, register as ``name@champion``.

    ``config`` (default features) and ``transactions`` (default: ``data`` loaded) let a model read covariates.
    """
    cfg = config or FeatureConfig()
    con = connect(threads=2)
    (transactions or load_transactions(data, "generic", mode=Mode.QUARANTINE)).register(con)
    names = feature_columns(cfg, "month")[1:]

    def labelled(as_of: dt.date) -> tuple[pd.DataFrame, object]:
        X = build_features(con, freq="month", as_of=as_of, config=cfg)
        return X, build_target(con, freq="month", as_of=as_of)["target"].to_numpy()

    X, y = labelled(train_as_of)
    names += [c for c in X.columns if c.startswith(("cov_", "user_")) and c != "user_id"]  # covariates, if any
    est = make_model("ridge").fit(X[names], y)
    X_val, y_val = labelled(calibrate_as_of)
    cal = fit_calibration(pd.DataFrame({"segment": segment_users(X_val), "y_pred": est.predict(X_val[names]),
                                        "y_true": y_val}))
    exp = ExperimentConfig(name=name, dataset={"input": data}, validation={"dates": [train_as_of]},
                           test={"dates": [calibrate_as_of]})
    cand = Candidate(model_key="ridge", params=resolved_params("ridge"), feature_names=names,
                     feature_config=cfg.model_dump(mode="json"), feature_config_hash=config_hash(cfg),
                     calibration=cal, protocol_id=protocol_id(exp), experiment=exp.model_dump(mode="json"),
                     dataset_hash="synth", figures=Measured(test_rmse=1.0, validation_rmse=1.0))
    refit = Refit(candidate=cand, estimator=est, train_cutoff=train_as_of,
                  cold_start=cold_start_fallback(y[segment_users(X) == "new"]), input_example=X.head(3),
                  dataset_hash="synth")
    log_and_register(refit, tracking_uri=tracking_uri, registered_model=name)
    return f"models:/{name}@champion"
