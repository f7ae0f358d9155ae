"""Spark batch scores equal local scores and the pyfunc, row for row (issues 9 and 16).

Oracles: ``mlflow.pyfunc.load_model(uri).predict`` on the DuckDB feature frame, and the local batch
scorer :func:`spendlab.jobs.score.score` on the same Parquet, model and cutoff.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from spendlab.features import FeatureConfig, build_features, build_target, feature_columns
from spendlab.io import Mode, load_transactions
from spendlab.io.load import connect

CFG = FeatureConfig()
MODEL = "spendlab-spark-test"
TRAIN_AS_OF = dt.date(2023, 12, 31)
SCORE_AS_OF = dt.date(2024, 5, 31)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, synth_parquet: Path) -> tuple[str, str]:
    """A sqlite MLflow store with a real spendlab model (ridge, hurdle calibration, cold start) as ``@champion``."""
    from spendlab.config import config_hash
    from spendlab.forecast.candidate import Candidate, Measured
    from spendlab.forecast.intervals import cold_start_fallback, fit_calibration
    from spendlab.forecast.protocol import ExperimentConfig, protocol_id
    from spendlab.forecast.segments import segment_users
    from spendlab.models.registry import make_model, resolved_params
    from spendlab.tracking.registry import Refit, log_and_register

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    con = connect(threads=2)
    load_transactions(str(synth_parquet), "generic", mode=Mode.QUARANTINE).register(con)
    names = feature_columns(CFG, "month")[1:]

    def labelled(as_of: dt.date):  # noqa: ANN202
        X = build_features(con, freq="month", as_of=as_of, config=CFG)
        return X, build_target(con, freq="month", as_of=as_of)["target"].to_numpy()

    X, y = labelled(TRAIN_AS_OF)
    est = make_model("ridge").fit(X[names], y)
    X_val, y_val = labelled(dt.date(2024, 1, 31))
    cal = fit_calibration(pd.DataFrame({"segment": segment_users(X_val), "y_pred": est.predict(X_val[names]),
                                        "y_true": y_val}))
    cfg = ExperimentConfig(name="spark-test", dataset={"input": str(synth_parquet)},
                           validation={"dates": [dt.date(2023, 11, 30)]}, test={"dates": [dt.date(2024, 1, 31)]})
    cand = Candidate(model_key="ridge", params=resolved_params("ridge"), feature_names=names,
                     feature_config=CFG.model_dump(mode="json"), feature_config_hash=config_hash(CFG),
                     calibration=cal, protocol_id=protocol_id(cfg), experiment=cfg.model_dump(mode="json"),
                     dataset_hash="synth", figures=Measured(test_rmse=1.0, validation_rmse=1.0))
    refit = Refit(candidate=cand, estimator=est, train_cutoff=TRAIN_AS_OF,
                  cold_start=cold_start_fallback(y[segment_users(X) == "new"]), input_example=X.head(3),
                  dataset_hash="synth")
    log_and_register(refit, tracking_uri=uri, registered_model=MODEL)
    return uri, f"models:/{MODEL}@champion"


@pytest.mark.slow
def test_spark_scores_equal_local_scores_within_1e6(spark, registry: tuple[str, str], synth_parquet: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from spendlab.jobs.score import SCORE_SCHEMA, score
    from spendlab.spark import spark_score
    from spendlab.tracking.scorer import load_model

    monkeypatch.chdir(tmp_path)  # the tracking helper creates ./mlruns
    tracking_uri, model_uri = registry
    out = tmp_path / "spark_scores.parquet"
    got = spark_score(spark, synth_parquet, model_uri=model_uri, out=out, as_of=SCORE_AS_OF,
                      tracking_uri=tracking_uri).toPandas()
    assert list(got.columns) == SCORE_SCHEMA.names

    # oracle 1: the pyfunc itself on the DuckDB features (it is the whole scorer: cold start included)
    con = connect(threads=2)
    load_transactions(str(synth_parquet), "generic", mode=Mode.QUARANTINE).register(con)
    feats = build_features(con, freq="month", as_of=SCORE_AS_OF, config=CFG)
    mlflow.set_tracking_uri(tracking_uri)
    direct = mlflow.pyfunc.load_model(model_uri).predict(feats)
    assert got["user_id"].tolist() == feats["user_id"].tolist() == direct["user_id"].tolist()
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(got[col].to_numpy(), direct[col].to_numpy(), rtol=1e-6, atol=1e-6, err_msg=col)
    for col in ("segment", "basis"):
        assert (got[col] == direct[col]).all(), col

    # oracle 2: the local batch scorer on the same data, model and cutoff
    tx = load_transactions(str(synth_parquet), "generic", mode=Mode.QUARANTINE)
    local_out = tmp_path / "local_scores.parquet"
    score(tx, out=local_out, model=load_model(model_uri, tracking_uri=tracking_uri), as_of=SCORE_AS_OF,
          progress=False)
    local = pq.read_table(local_out).to_pandas().sort_values("user_id").reset_index(drop=True)
    assert got["user_id"].tolist() == local["user_id"].tolist()
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(got[col].to_numpy(), local[col].to_numpy(), rtol=1e-6, atol=1e-6, err_msg=col)
    for col in ("target_period", "segment", "basis", "model_uri", "model_version"):
        assert (got[col].astype(str).to_numpy() == local[col].astype(str).to_numpy()).all(), col
    assert (pd.to_datetime(got["as_of"]).dt.date == SCORE_AS_OF).all()
    assert got["target_period"].iloc[0] == "2024-06"


def test_spark_score_refuses_a_frequency_the_model_was_not_fitted_on(spark, registry: tuple[str, str],
                                                                    synth_parquet: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from spendlab.errors import SpendlabError
    from spendlab.spark import spark_score

    monkeypatch.chdir(tmp_path)
    tracking_uri, model_uri = registry
    with pytest.raises(SpendlabError, match="fitted on month features"):
        spark_score(spark, synth_parquet, model_uri=model_uri, freq="week", tracking_uri=tracking_uri)
