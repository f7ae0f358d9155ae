"""The DuckDB -> Spark SQL transpilation: DuckDB's division semantics carried over (no JVM needed)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot

from spendlab.features import FeatureConfig
from spendlab.features.arrays import window_widths
from spendlab.features.sql import aggregate_sql, user_stats_sql, window_cells_sql
from spendlab.spark.transpile import to_spark_sql


def test_every_division_divides_doubles_like_duckdb() -> None:
    sql = to_spark_sql("SELECT spend_sum_w3 / LEAST(3, n_periods) AS m FROM sums")
    assert sql == "SELECT CAST(spend_sum_w3 AS DOUBLE) / CAST(LEAST(3, n_periods) AS DOUBLE) AS m FROM sums"


def test_isinf_becomes_an_infinity_comparison() -> None:
    assert to_spark_sql("SELECT isinf(amount) FROM t") == "SELECT ABS(amount) = CAST('Infinity' AS DOUBLE) FROM t"


@pytest.mark.parametrize("freq", ["month", "week"])
def test_feature_sql_keeps_every_column_and_leaves_no_duckdb_only_function(freq: str) -> None:
    as_of, config = dt.date(2024, 3, 31), FeatureConfig()
    for sql in (aggregate_sql(as_of, freq, "SELECT * FROM asof_rows"),
                user_stats_sql(as_of, freq, config, "periods", "first_day"),
                window_cells_sql("periods", window_widths(config, freq))):
        spark_sql = to_spark_sql(sql)
        names = [e.alias_or_name for e in sqlglot.parse_one(spark_sql, read="spark").selects]
        duck_names = [e.alias_or_name for e in sqlglot.parse_one(sql, read="duckdb").selects]
        assert names == duck_names
        for duckdb_only in ("ARG_MIN", "DATE_DIFF(", "MATERIALIZED", "ISINF"):
            assert duckdb_only not in spark_sql.upper()
    spark_sql = to_spark_sql(user_stats_sql(as_of, freq, config, "periods", "first_day"))
    assert "DATEDIFF(DAY" in spark_sql


def test_materialized_cte_hint_is_dropped_for_spark() -> None:
    sql = to_spark_sql("WITH tx AS MATERIALIZED (SELECT 1 AS a) SELECT a FROM tx")
    assert sql == "WITH tx AS (SELECT 1 AS a) SELECT a FROM tx"
