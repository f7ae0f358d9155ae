"""Spark equals DuckDB on every covariate feature (line level and orders, month and week, user table)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.features import FeatureConfig, build_features
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.users import load_users
from tests.features.test_covariates import ATTRS, COV, LINES, USERS


@pytest.mark.slow
@pytest.mark.parametrize("orders", [False, True])
def test_spark_covariates_equal_duckdb(spark, tmp_path, orders):
    from pyspark.sql import functions as F

    from spendlab.spark.features import spark_features

    (tmp_path / "l.csv").write_text(LINES)
    (tmp_path / "users.csv").write_text(USERS)
    generic = {"user_col": "cust", "attributes": ATTRS, **({"order_col": "order"} if orders else {})}
    tx = load_transactions(str(tmp_path / "l.csv"), "generic", config=ReaderConfig(generic=generic))
    tx.users = load_users(UserTableSpec(input=str(tmp_path / "users.csv"), key="hh", valid_from="since",
                                        columns={"age": "category", "size": "number"}))
    pq.write_table(tx.to_arrow(), tmp_path / "tx.parquet")
    pq.write_table(tx.users.table, tmp_path / "users.parquet")
    rows = spark.read.parquet(str(tmp_path / "tx.parquet")).withColumn("ts", F.col("ts").cast("timestamp_ntz"))
    users = spark.read.parquet(str(tmp_path / "users.parquet")) \
        .withColumn("valid_from", F.col("valid_from").cast("timestamp_ntz"))
    con = connect()
    tx.register(con)
    config = FeatureConfig(covariates=COV)
    for freq, as_of in (("month", "2024-03-31"), ("week", "2024-03-10"), ("week", "2024-03-24")):
        duck = build_features(con, freq=freq, as_of=as_of, config=config)
        got = spark_features(spark, rows, freq=freq, as_of=as_of, config=config, users=users).toPandas()
        cov = [c for c in duck.columns if c.startswith(("cov_", "user_")) and c != "user_id"]
        assert len(cov) == 11
        assert list(got.columns) == list(duck.columns)
        assert got["user_id"].tolist() == duck["user_id"].tolist()
        for col in cov:  # the same statement on both engines: the same doubles
            np.testing.assert_array_equal(got[col].to_numpy(np.float64), duck[col].to_numpy(np.float64),
                                          err_msg=f"{col} ({freq}, {as_of})")
