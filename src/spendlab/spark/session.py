"""The Spark session spendlab runs on: UTC, DuckDB-compatible decimal semantics, small local defaults.

On a cluster the session usually exists already (``spark-submit``, Databricks): pass it to the
functions of :mod:`spendlab.spark` as it is; they set the few SQL options the results depend on
(:data:`SEMANTIC_CONF`) on it. :func:`session` is for running spendlab itself as the driver.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from spendlab.config import StrictModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: SQL options the feature values depend on, set on every session spendlab uses:
#:
#: * ``session.timeZone=UTC``: ``CAST(ts AS DATE)`` and timestamp literals are UTC wall time, like
#:   DuckDB's connection (``TimeZone='UTC'``).
#: * ``decimalOperations.allowPrecisionLoss=false``: a product of two ``DECIMAL(38, 4)`` sums keeps
#:   scale 8 (``DECIMAL(38, 8)``) as in DuckDB, instead of being rounded to scale 6.
#: * ``ansi.enabled=true``: an overflowing decimal is an error, never a silent NULL.
SEMANTIC_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.ansi.enabled": "true",
}


class SparkConfig(StrictModel):
    """The ``spark:`` section of a config file: where and how a spendlab-started session runs.

    ``master`` is ``local[2]`` by default (``yarn``, ``spark://host:7077``, ``k8s://...`` on a
    cluster; leave it to ``spark-submit`` by setting it to ``null`` there). ``conf`` entries are
    passed to the builder verbatim (executor memory, S3 credentials provider, ...); they cannot
    override :data:`SEMANTIC_CONF`.
    """

    master: str | None = "local[2]"
    app_name: str = "spendlab"
    shuffle_partitions: int = 4
    ui: bool = False
    conf: dict[str, str] = {}


def ensure_semantics(spark: SparkSession) -> None:
    """Set :data:`SEMANTIC_CONF` on ``spark`` (runtime SQL options; safe on a shared session)."""
    for key, value in SEMANTIC_CONF.items():
        if spark.conf.get(key, None) != value:
            spark.conf.set(key, value)


def session(app_name: str = "spendlab", master: str | None = None, *,
            config: SparkConfig | None = None) -> SparkSession:
    """Get or create the Spark session spendlab computes on.

    Parameters
    ----------
    app_name
        Application name shown in the Spark UI and the cluster manager.
    master
        Spark master URL; ``None`` takes ``config.master`` (``local[2]`` by default). Under
        ``spark-submit`` give ``None`` with ``config.master = None`` so the submit's ``--master`` wins.
    config
        The ``spark:`` config section (shuffle partitions, UI, extra ``conf``).

    Returns
    -------
    pyspark.sql.SparkSession
        With :data:`SEMANTIC_CONF` applied. An existing active session is reused (``getOrCreate``),
        and the semantic options are set on it.
    """
    from pyspark.sql import SparkSession

    config = config or SparkConfig()
    builder = SparkSession.builder.appName(app_name)
    master = master if master is not None else config.master
    if master:
        builder = builder.master(master)
    if master and master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local Python workers (the model UDF) must run this interpreter, with its packages, not
        # whatever `python3` is on PATH; pyspark reads only the environment variable for this.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    settings = {
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.ui.enabled": "true" if config.ui else "false",
        "spark.ui.showConsoleProgress": "false",
        # Arrow moves pandas frames (calendar tables, pyfunc batches) without row-by-row pickling.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **config.conf,
        **SEMANTIC_CONF,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    ensure_semantics(spark)
    return spark
