"""The DuckDB -> Spark SQL transpilation: DuckDB's division semantics carried over (no JVM needed)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot

from spendlab.features import FeatureConfig
from spendlab.features.sql import features_sql
from spendlab.spark.transpile import to_spark_sql


def test_every_division_divides_doubles_like_duckdb() -> None:
    sql = to_spark_sql("SELECT spend_sum_w3 / LEAST(3, n_periods) AS m FROM sums")
    assert sql == "SELECT CAST(spend_sum_w3 AS DOUBLE) / CAST(LEAST(3, n_periods) AS DOUBLE) AS m FROM sums"


def test_isinf_becomes_an_infinity_comparison() -> None:
    assert to_spark_sql("SELECT isinf(amount) FROM t") == "SELECT ABS(amount) = CAST('Infinity' AS DOUBLE) FROM t"


@pytest.mark.parametrize("freq", ["month", "week"])
def test_feature_sql_keeps_every_feature_and_leaves_no_duckdb_only_function(freq: str) -> None:
    sql = features_sql(dt.date(2024, 3, 31), freq, FeatureConfig(), "SELECT * FROM asof_rows")
    spark_sql = to_spark_sql(sql)
    names = [e.alias_or_name for e in sqlglot.parse_one(spark_sql, read="spark").selects]
    duck_names = [e.alias_or_name for e in sqlglot.parse_one(sql, read="duckdb").selects]
    assert names == duck_names
    for duckdb_only in ("ARG_MIN", "DATE_DIFF(", "MATERIALIZED", "ISINF"):
        assert duckdb_only not in spark_sql.upper()
    assert "DATEDIFF(DAY" in spark_sql
    # every '/' now divides two DOUBLE casts
    divisions = list(sqlglot.parse_one(spark_sql, read="spark").find_all(sqlglot.exp.Div))
    assert divisions and all(isinstance(d.this, sqlglot.exp.Cast) and isinstance(d.expression, sqlglot.exp.Cast)
                             for d in divisions)


def test_materialized_cte_hint_is_dropped_for_spark() -> None:
    sql = to_spark_sql("WITH tx AS MATERIALIZED (SELECT 1 AS a) SELECT a FROM tx")
    assert sql == "WITH tx AS (SELECT 1 AS a) SELECT a FROM tx"
