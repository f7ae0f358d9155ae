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
    "import spendlab.api",  # describe and reconcile go through the API: neither needs MLflow or scikit-learn
    # what `spendlab score` imports on its main thread: MLflow and scikit-learn load on the model's thread
    "import spendlab.jobs.plan, spendlab.jobs.score, spendlab.tracking.scorer",
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


COMMAND_PROBE = """
import sys
import pandas as pd
from spendlab.cli import main
pd.DataFrame({{"user_id": ["a", "b"], "ts": ["2024-01-05", "2024-02-07"], "amount": ["1.5", "2"]}}).to_csv(
    {csv!r}, index=False)
try:
    main({argv!r})
except SystemExit as exit_:
    assert exit_.code in (0, None), exit_.code
print("loaded:" + ",".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("command", ["describe", "features"])
def test_a_local_command_runs_without_the_tracking_or_spark_stack(tmp_path, command: str) -> None:
    csv, out = tmp_path / "tx.csv", tmp_path / ("features.parquet" if command == "features" else "describe")
    argv = [command, str(csv), "--format", "generic", "--out", str(out)]
    res = subprocess.run([sys.executable, "-c", COMMAND_PROBE.format(csv=str(csv), argv=argv, heavy=HEAVY)],
                         capture_output=True, text=True, timeout=300, check=True, cwd=tmp_path)
    assert out.exists(), res.stderr  # the command did its work ...
    loaded = [m for m in res.stdout.strip().splitlines()[-1].removeprefix("loaded:").split(",") if m]
    assert not {"mlflow", "sklearn", "pyspark", "lightgbm", "optuna"} & set(loaded), loaded  # ... without them
