"""``spendlab features --engine spark``: the same features as the default DuckDB engine, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from spendlab.cli import app
from spendlab.errors import RowError, SpendlabError
from tests.features.conftest import random_transactions
from tests.spark.test_features_spark import write_canonical


@pytest.mark.slow
def test_features_engine_spark_writes_the_duckdb_engines_features(spark, tmp_path: Path) -> None:
    src = write_canonical(random_transactions(21), tmp_path / "tx.parquet")
    runner = CliRunner()
    duck = runner.invoke(app, ["features", str(src), "--out", str(tmp_path / "duck.parquet"), "--freq", "week",
                               "--as-of", "2022-01-12"])
    assert duck.exit_code == 0, duck.output
    sp = runner.invoke(app, ["features", str(src), "--out", str(tmp_path / "spark"), "--freq", "week",
                             "--as-of", "2022-01-12", "--engine", "spark", "--spark-master", "local[2]"])
    assert sp.exit_code == 0, sp.output
    want = pq.read_table(tmp_path / "duck.parquet").to_pandas()
    got = pq.read_table(tmp_path / "spark").to_pandas()  # a folder of part files, in user order
    assert list(got.columns) == list(want.columns)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(np.float64), want.iloc[:, 1:].to_numpy(np.float64),
                               rtol=1e-9, atol=1e-9)
    meta = json.loads((tmp_path / "spark" / "_spendlab_metadata.json").read_text())
    duck_meta = {k.decode(): v.decode() for k, v in pq.read_schema(tmp_path / "duck.parquet").metadata.items()}
    for key in ("spendlab.config_hash", "spendlab.freq", "spendlab.as_of", "spendlab.rows_accepted"):
        assert meta[key] == duck_meta[key], key
    assert meta["spendlab.engine"] == "spark"


def test_features_engine_spark_in_strict_mode_fails_on_an_invalid_row(spark, tmp_path: Path) -> None:
    frame = random_transactions(2, users=5, rows=30)
    frame.loc[3, "amount"] = float("nan")  # pandas writes it to Parquet as a null: an empty field, as the readers say
    src = write_canonical(frame, tmp_path / "tx.parquet")
    result = CliRunner().invoke(app, ["features", str(src), "--out", str(tmp_path / "f"), "--engine", "spark",
                                      "--mode", "strict"])
    assert isinstance(result.exception, RowError)
    assert "1 invalid row(s) (EMPTY_FIELD: 1)" in str(result.exception)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "flink"], "--engine must be duckdb or spark"),
    (["--engine", "spark", "--format", "millions"], "reads canonical Parquet"),
])
def test_features_rejects_an_unknown_engine_or_a_text_format_for_spark(tmp_path: Path, args: list[str],
                                                                     message: str) -> None:
    result = CliRunner().invoke(app, ["features", str(tmp_path / "x.parquet"), "--out", str(tmp_path / "o"), *args])
    assert isinstance(result.exception, SpendlabError)
    assert message in str(result.exception)
