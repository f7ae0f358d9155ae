"""Scale-out on Apache Spark: the same features and scores as the DuckDB path, on a cluster.

The feature SQL is generated once (:mod:`spendlab.features.sql`) and transpiled to Spark SQL with
sqlglot (:mod:`spendlab.spark.transpile`); scoring applies the registered pyfunc model with
``mlflow.pyfunc.spark_udf``. Needs the ``spark`` extra (``pip install spendlab[spark]``) and Java 17.
pyspark is imported only inside the functions, so importing this package does not start a JVM.
"""

from spendlab.spark.features import (
    canonical_rows,
    read_transactions,
    reject_counts,
    spark_default_as_of,
    spark_features,
    spark_panel,
)
from spendlab.spark.scoring import spark_score
from spendlab.spark.session import SEMANTIC_CONF, SparkConfig, ensure_semantics, session
from spendlab.spark.transpile import to_spark_sql

__all__ = [
    "SEMANTIC_CONF",
    "SparkConfig",
    "canonical_rows",
    "ensure_semantics",
    "read_transactions",
    "reject_counts",
    "session",
    "spark_default_as_of",
    "spark_features",
    "spark_panel",
    "spark_score",
    "to_spark_sql",
]
