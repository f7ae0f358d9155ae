"""Entry point for ``spark-submit`` (and Databricks ``spark_python_task``): the spendlab CLI on the cluster's session.

``spark-submit [options] $(python -c 'import spendlab.spark.submit as m; print(m.__file__)') features ...``
runs ``spendlab features ...`` with the session spark-submit configured (its ``--master``,
``--deploy-mode``, ``--conf``): the session is created first from that configuration, so the CLI's
``--spark-master`` default and the config's ``spark.master`` are ignored (``getOrCreate`` returns the
existing session); only the SQL options of :data:`spendlab.spark.session.SEMANTIC_CONF` are set on it.
"""

from __future__ import annotations

from spendlab.cli import main as cli_main
from spendlab.spark.session import ensure_semantics


def main() -> None:
    """Create the submitted session, then run the spendlab CLI with this process's arguments."""
    from pyspark.sql import SparkSession


    ensure_semantics(SparkSession.builder.getOrCreate())
    cli_main()


if __name__ == "__main__":
    main()
