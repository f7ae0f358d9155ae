"""One local[2] Spark session for the whole test session; skipped only where Java is absent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Users of the features and score parity set (:func:`synth_features_parquet`); see its docstring for why 2,000.
FEATURE_USERS = 2_000
#: Rows per Arrow batch in the test session (Spark's default 10,000): with :data:`FEATURE_USERS` a
#: bucket of users still reaches Python in several batches, as a 20,000-user bucket does by default.
ARROW_BATCH_ROWS = 1_000

#: What a Spark test says when the session's JVM no longer answers (instead of py4j's traceback).
JVM_GONE = ("the Spark session's JVM no longer answers (it was killed or crashed, e.g. out of memory under "
            "load): this Spark test cannot run; the first Spark failure of this run shows the cause")


def jvm_answers(session: object) -> bool:
    """Return whether ``session``'s JVM answers one py4j round trip (False when the gateway is gone)."""
    try:
        session.sparkContext._jvm.java.lang.System.nanoTime()  # type: ignore[attr-defined]
    except Exception:  # ConnectionRefusedError, Py4JNetworkError, Py4JError, ...: all mean gone
        return False
    return True


@pytest.fixture(scope="session")
def spark_session() -> Iterator[object]:
    if shutil.which("java") is None:  # pragma: no cover - this machine has Java 17
        pytest.skip("Spark tests need a Java runtime (17) on PATH; `java` was not found")
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'spendlab[spark]'")
    from spendlab.spark import SparkConfig, session

    s = session("spendlab-tests", config=SparkConfig(
        master="local[2]", shuffle_partitions=2,
        conf={"spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS)}))
    s.sparkContext.setLogLevel("ERROR")
    yield s
    if jvm_answers(s):
        s.stop()


def live(session: object) -> object:
    """Return ``session``, or fail the calling test with :data:`JVM_GONE` (one line) when its JVM has died.

    Without the check, every Spark test after the JVM's death fails with its own
    ``ConnectionRefusedError`` traceback from deep inside py4j.
    """
    if not jvm_answers(session):
        pytest.fail(JVM_GONE, pytrace=False)
    return session


@pytest.fixture
def spark(spark_session: object) -> object:
    """The test session's Spark session, checked alive before each test (:func:`live`)."""
    return live(spark_session)


@pytest.fixture(scope="session")
def synth_features_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 synthetic users over 18 months (2023-01 .. 2024-06), seed 1: the features and score parity set.

    The earlier 20,000-user set took the same code paths on ten times the input (the features parity
    file alone: 127 -> 96 CPU s of JVM, 11 -> 5.5 of Python, loaded machine). No spendlab code
    branches on size below 100,000 users (:data:`spendlab.features.halves.PARALLEL_MIN_USERS`) or
    24 million rows (:data:`spendlab.features.build.STATS_CHUNK_ROWS`); the Spark side still hashes the
    users into several buckets, and each bucket (about 1,000 users, 4,000-9,000 rows at the four
    cut-offs) still reaches the Python features in several Arrow batches (:data:`ARROW_BATCH_ROWS`).

    Scoring (``test_score_spark.py``) has no size threshold either: the local scorer predicts
    250,000 users per chunk (one chunk at either size), and the model's UDF and pyfunc predict row by
    row. The model registered on this set differs only in its calibration table: the lapsed segment
    (505 rows at the calibration cut-off, 21 of them spending) has fewer than ``fit_calibration``'s
    40 spending rows and takes the pooled bins, where the 20,000-user set gave it 4 bins of its own;
    both sides of the parity read the same table either way (score file alone: 13.1 -> 11.4 CPU s of
    Python, 51.0 -> 38.4 of JVM).
    """
    from spendlab.jobs.datasets import synth_transactions

    path = tmp_path_factory.mktemp("synth") / "synth_2k.parquet"
    synth_transactions(path, users=FEATURE_USERS, months=18, seed=1)
    return path
