"""A bare command-line start imports no heavy library: each command imports its job when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("mlflow", "sklearn", "sqlglot", "lightgbm", "optuna", "statsmodels", "pyspark", "scipy")

PROBE = """
import sys
{statement}
print(",".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_after(statement: str) -> list[str]:
    res = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement, heavy=HEAVY)],
                         capture_output=True, text=True, timeout=300, check=True)
    return [m for m in res.stdout.strip().split(",") if m]


@pytest.mark.parametrize("statement", [
    "import spendlab.cli",
    "from spendlab.spark import SparkConfig, session",
    "import spendlab.cli.forecast_commands, spendlab.cli.data_commands, spendlab.cli.monitor_commands",
])
def test_importing_the_command_line_imports_no_heavy_library(statement: str) -> None:
    assert _heavy_after(statement) == []


def test_a_command_still_imports_what_its_job_needs() -> None:
    # the probe would pass vacuously if the modules were never importable: the lazy names resolve
    assert "sqlglot" in _heavy_after("import spendlab.spark as s; s.to_spark_sql")
    assert "mlflow" in _heavy_after("from spendlab.spark import spark_score")


def test_the_lazy_spark_package_gives_the_same_objects_as_its_submodules() -> None:
    import importlib

    import spendlab.spark as spark

    features, scoring, session, transpile = (importlib.import_module(f"spendlab.spark.{name}")
                                             for name in ("features", "scoring", "session", "transpile"))
    assert spark.session is session.session and callable(spark.session)  # the function, not its submodule
    assert spark.spark_score is scoring.spark_score and spark.to_spark_sql is transpile.to_spark_sql
    assert spark.spark_panel is features.spark_panel
    assert set(spark.__all__) >= {"session", "SparkConfig", "spark_score", "spark_features", "to_spark_sql"}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        spark.nope  # noqa: B018
