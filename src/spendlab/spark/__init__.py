"""Scale-out on Apache Spark: the same features and scores as the DuckDB path, on a cluster.

The feature SQL is generated once (:mod:`spendlab.features.sql`) and transpiled to Spark SQL with
sqlglot (:mod:`spendlab.spark.transpile`); scoring applies the registered pyfunc model with
``mlflow.pyfunc.spark_udf``. Needs the ``spark`` extra (``pip install spendlab[spark]``) and Java 17.
pyspark is imported only inside the functions, so importing this package does not start a JVM. The
session names are imported here (the function ``session`` must shadow its submodule); the others are
imported from their submodules on first use, so a command line that only needs a session does not
import MLflow, scikit-learn or sqlglot.
"""

from __future__ import annotations

import importlib
from typing import Any

from spendlab.spark.session import SEMANTIC_CONF, SparkConfig, ensure_semantics, session

_SOURCES = {
    "canonical_rows": "features",
    "read_transactions": "features",
    "reject_counts": "features",
    "spark_default_as_of": "features",
    "spark_features": "features",
    "spark_panel": "features",
    "spark_score": "scoring",
    "to_spark_sql": "transpile",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use (PEP 562).

    Parameters
    ----------
    name : str
        The attribute asked for.

    Returns
    -------
    Any
        The function, class or constant of that name.

    Raises
    ------
    AttributeError
        When the package has no such public name.
    """
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
