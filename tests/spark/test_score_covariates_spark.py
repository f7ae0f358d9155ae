"""Spark scores a model fitted with covariates: its features equal DuckDB's, its scores the local scorer's.

Data: the ``covariates`` world (line items with departments, discounts and stores, a household table)
at a small size, read by ``configs/covariates.yaml`` (orders keep the set of their departments).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from spendlab.config import ReaderConfig, UserTableSpec, load_yaml
from spendlab.features import build_features
from spendlab.features.config import feature_config_from_dict
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.jobs.covariates import synth_covariates, with_users

ROOT = Path(__file__).resolve().parents[2]
TRAIN_AS_OF, CALIBRATE_AS_OF, SCORE_AS_OF = dt.date(2023, 8, 31), dt.date(2023, 9, 30), dt.date(2023, 11, 30)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]):
    """The world's transactions (with users), their canonical Parquet, the covariate feature config, a model."""
    from tests.spark.spend_model import register_ridge

    out = tmp_path_factory.mktemp("covworld")
    synth_covariates(out, users=300, months=12, start="2023-01-01", seed=3)
    raw = load_yaml(ROOT / "configs" / "covariates.yaml")
    users = UserTableSpec(**{**raw["users"], "input": str(out / "households.csv")})
    tx = with_users(load_transactions(str(out / "lines.parquet"), "generic",
                                      config=ReaderConfig(**raw["reader"])), users)
    pq.write_table(tx.to_arrow(), out / "canonical.parquet")  # what Spark reads: orders with their attributes
    config = feature_config_from_dict(raw, "configs/covariates.yaml")
    uri = mlflow_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    model = register_ridge(str(out / "canonical.parquet"), train_as_of=TRAIN_AS_OF, calibrate_as_of=CALIBRATE_AS_OF,
                           tracking_uri=uri, name="spendlab-spark-cov", config=config, transactions=tx)
    return {"tx": tx, "canonical": out / "canonical.parquet", "config": config, "users": users,
            "tracking_uri": uri, "model": model}


@pytest.mark.slow
def test_spark_covariate_features_equal_duckdb_on_canonical_parquet(spark, world):
    from spendlab.spark.covariates import line_attributes, users_frame
    from spendlab.spark.features import read_transactions, spark_features

    con = connect(threads=2)
    world["tx"].register(con)
    duck = build_features(con, freq="month", as_of=SCORE_AS_OF, config=world["config"])
    rows = read_transactions(spark, str(world["canonical"]), attributes=line_attributes(world["config"]))
    got = spark_features(spark, rows, freq="month", as_of=SCORE_AS_OF, config=world["config"],
                         users=users_frame(spark, world["tx"].users.table)).toPandas()
    cov = [c for c in duck.columns if c.startswith(("cov_", "user_")) and c != "user_id"]
    assert len(cov) >= 12 and list(got.columns) == list(duck.columns)
    assert got["user_id"].tolist() == duck["user_id"].tolist()
    assert duck[cov].abs().to_numpy().sum() > 0  # the covariates are not all zero
    for col in cov:  # one statement on both engines: the same doubles
        np.testing.assert_array_equal(got[col].to_numpy(np.float64), duck[col].to_numpy(np.float64), err_msg=col)
    for col in duck.columns[1:]:
        np.testing.assert_allclose(got[col].to_numpy(np.float64), duck[col].to_numpy(np.float64), rtol=1e-12,
                                   atol=1e-12, err_msg=col)


@pytest.mark.slow
def test_spark_scores_of_a_covariate_model_equal_the_local_scores(spark, world, tmp_path, monkeypatch):
    from spendlab.jobs.score import score
    from spendlab.spark.jobs import score_job
    from spendlab.tracking.scorer import load_model

    monkeypatch.chdir(tmp_path)
    model = load_model(world["model"], tracking_uri=world["tracking_uri"])
    assert any(n.startswith("cov_") for n in model.feature_names) and any(n.startswith("user_")
                                                                         for n in model.feature_names)
    local_out = tmp_path / "local.parquet"
    score(world["tx"], out=local_out, model=model, as_of=SCORE_AS_OF, progress=False)
    local = pq.read_table(local_out).to_pandas().sort_values("user_id").reset_index(drop=True)
    job = score_job(spark, str(world["canonical"]), tmp_path / "spark_scores", model_uri=world["model"],
                    as_of=SCORE_AS_OF, reader=ReaderConfig(), tracking_uri=world["tracking_uri"],
                    users=world["users"])
    got = spark.read.parquet(str(job.out)).toPandas().sort_values("user_id").reset_index(drop=True)
    assert job.rows_out == len(local) > 0
    assert got["user_id"].tolist() == local["user_id"].tolist()
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(got[col].to_numpy(), local[col].to_numpy(), rtol=0, atol=1e-9, err_msg=col)
    for col in ("segment", "basis"):
        assert (got[col].astype(str) == local[col].astype(str)).all(), col
    # the user table matters: without it the covariate model cannot be scored on Spark
    with pytest.raises(Exception, match="user table"):
        score_job(spark, str(world["canonical"]), tmp_path / "no_users", model_uri=world["model"],
                  as_of=SCORE_AS_OF, reader=ReaderConfig(), tracking_uri=world["tracking_uri"])
