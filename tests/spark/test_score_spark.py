"""Spark batch scores equal local scores and the pyfunc, row for row (issues 9 and 16).

Oracles: ``mlflow.pyfunc.load_model(uri).predict`` on the DuckDB feature frame, and the local batch
scorer :func:`spendlab.jobs.score.score` on the same Parquet, model and cutoff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from spendlab.features import FeatureConfig, build_features
from spendlab.io import Mode, load_transactions
from spendlab.io.load import connect

CFG = FeatureConfig()
MODEL = "spendlab-spark-test"
TRAIN_AS_OF = dt.date(2023, 12, 31)
SCORE_AS_OF = dt.date(2024, 5, 31)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, synth_features_parquet: Path,
             mlflow_store: Callable[[Path], str]) -> tuple[str, str]:
    """A sqlite MLflow store with a real spendlab model (ridge, hurdle calibration, cold start) as ``@champion``."""
    from tests.spark.spend_model import register_ridge

    uri = mlflow_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    return uri, register_ridge(str(synth_features_parquet), train_as_of=TRAIN_AS_OF, calibrate_as_of=dt.date(2024, 1, 31),
                               tracking_uri=uri, name=MODEL)


@pytest.mark.slow
def test_spark_scores_equal_local_scores_within_1e6(spark, registry: tuple[str, str], synth_features_parquet: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from spendlab.jobs.score import SCORE_SCHEMA, score
    from spendlab.spark import spark_score
    from spendlab.tracking.scorer import load_model

    monkeypatch.chdir(tmp_path)  # the tracking helper creates ./mlruns
    tracking_uri, model_uri = registry
    out = tmp_path / "spark_scores.parquet"
    got = spark_score(spark, synth_features_parquet, model_uri=model_uri, out=out, as_of=SCORE_AS_OF,
                      tracking_uri=tracking_uri).toPandas()
    assert list(got.columns) == SCORE_SCHEMA.names

    # oracle 1: the pyfunc itself on the DuckDB features (it is the whole scorer: cold start included)
    con = connect(threads=2)
    load_transactions(str(synth_features_parquet), "generic", mode=Mode.QUARANTINE).register(con)
    feats = build_features(con, freq="month", as_of=SCORE_AS_OF, config=CFG)
    mlflow.set_tracking_uri(tracking_uri)
    direct = mlflow.pyfunc.load_model(model_uri).predict(feats)
    assert got["user_id"].tolist() == feats["user_id"].tolist() == direct["user_id"].tolist()
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(got[col].to_numpy(), direct[col].to_numpy(), rtol=1e-6, atol=1e-6, err_msg=col)
    for col in ("segment", "basis"):
        assert (got[col] == direct[col]).all(), col

    # oracle 2: the local batch scorer on the same data, model and cutoff
    tx = load_transactions(str(synth_features_parquet), "generic", mode=Mode.QUARANTINE)
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

    # lineage: `spendlab monitor` reads the Spark folder's lineage, the same as the local file's footer
    from spendlab.jobs.monitor import MonitorInputError, read_scores

    spark_rows, spark_lineage = read_scores(out, model=MODEL)
    local_rows, local_lineage = read_scores(local_out, model=MODEL)
    assert spark_lineage == local_lineage
    assert spark_lineage["model_name"] == MODEL and spark_lineage["as_of"] == SCORE_AS_OF.isoformat()
    assert spark_lineage["target_period"] == "2024-06" and spark_lineage["model_version"] == local["model_version"][0]
    assert sorted(spark_rows["user_id"]) == sorted(local_rows["user_id"])
    with pytest.raises(MonitorInputError, match="not of the monitored model"):
        read_scores(out, model="another-model")
    (out / "_spendlab_metadata.json").unlink()  # a folder without lineage is refused like a bare file
    with pytest.raises(MonitorInputError, match="no spendlab.scores lineage"):
        read_scores(out, model=MODEL)


def test_spark_score_refuses_a_frequency_the_model_was_not_fitted_on(spark, registry: tuple[str, str],
                                                                    synth_features_parquet: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from spendlab.errors import SpendlabError
    from spendlab.spark import spark_score

    monkeypatch.chdir(tmp_path)
    tracking_uri, model_uri = registry
    with pytest.raises(SpendlabError, match="fitted on month features"):
        spark_score(spark, synth_features_parquet, model_uri=model_uri, freq="week", tracking_uri=tracking_uri)
