"""One local[2] Spark session for the whole test session; skipped only where Java is absent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

SYNTH_USERS = 20_000


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    if shutil.which("java") is None:  # pragma: no cover - this machine has Java 17
        pytest.skip("Spark tests need a Java runtime (17) on PATH; `java` was not found")
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'spendlab[spark]'")
    from spendlab.spark import SparkConfig, session

    s = session("spendlab-tests", config=SparkConfig(master="local[2]", shuffle_partitions=4))
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def synth_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 synthetic users over 18 months (2023-01 .. 2024-06), seed 1: the acceptance data set."""
    from spendlab.jobs.datasets import synth_transactions

    path = tmp_path_factory.mktemp("synth") / "synth_20k.parquet"
    synth_transactions(path, users=SYNTH_USERS, months=18, seed=1)
    return path
