"""The ``--engine spark`` jobs behind ``spendlab features`` and ``spendlab score``.

Each job validates the input the way the DuckDB reader does (counting rejects per error type), runs
the Spark computation and writes a Parquet folder of part files (Spark's native output, readable by
pyarrow, pandas and DuckDB as one dataset). The ``spendlab.*`` metadata the DuckDB engine puts in the
file footer goes to ``_spendlab_metadata.json`` in the folder (readers skip ``_``-prefixed files).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spendlab.calendar import Freq
from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.errors import RowError
from spendlab.features.config import FeatureConfig
from spendlab.features.metadata import feature_metadata
from spendlab.io.atomic import atomic_path
from spendlab.io.rejects import Mode
from spendlab.io.users import load_users
from spendlab.jobs.score import FOLDER_METADATA_FILE
from spendlab.spark.covariates import users_frame
from spendlab.spark.features import read_transactions, reject_counts, spark_default_as_of, spark_features
from spendlab.spark.scoring import is_local_path, spark_score

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

METADATA_FILE = FOLDER_METADATA_FILE


@dataclass(frozen=True)
class SparkJobResult:
    """What a Spark job wrote: the folder, cutoff, rows out and the input's row accounting."""

    out: Path | str
    as_of: dt.date
    rows_out: int
    rows_in: int
    rejected: int


def _validated(spark: SparkSession, input: str, reader: ReaderConfig, mode: Mode) -> tuple[DataFrame, int, int]:
    rows_in, counts = reject_counts(spark, input, reader=reader)
    rejected = sum(counts.values())
    if rejected and mode is not Mode.QUARANTINE:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        raise RowError(f"{input}: {rejected} invalid row(s) ({detail}) in {mode.value} mode; the Spark engine does "
                       "not list rows: run 'spendlab validate --rejects' on it, or use --mode quarantine", rejected)
    return read_transactions(spark, input, reader=reader), rows_in, rejected


def write_parquet_folder(spark: SparkSession, frame: DataFrame, out: str | Path, metadata: dict[str, str]) -> int:
    """Write ``frame`` to folder ``out`` (atomically when local) with ``metadata`` beside it; rows written."""
    text = json.dumps(metadata, indent=2, sort_keys=True)
    if is_local_path(out):
        with atomic_path(out) as tmp:
            frame.write.parquet(str(tmp))
            (tmp / METADATA_FILE).write_text(text, encoding="utf-8")
            rows = spark.read.parquet(str(tmp)).count()
        return rows
    frame.write.mode("overwrite").parquet(str(out))
    spark.createDataFrame([(text,)], "value STRING").coalesce(1).write.mode("overwrite").text(
        f"{str(out).rstrip('/')}/_spendlab_metadata")
    return spark.read.parquet(str(out)).count()


def features_job(spark: SparkSession, input: str, out: str | Path, *, freq: Freq, as_of: dt.date | None,
                 config: FeatureConfig, reader: ReaderConfig, mode: Mode = Mode.QUARANTINE,
                 horizon: int = 1) -> SparkJobResult:
    """``spendlab features --engine spark``: validate, choose the cutoff, write the feature folder."""
    tx, rows_in, rejected = _validated(spark, input, reader, mode)
    cutoff = as_of or spark_default_as_of(tx, freq)
    frame = spark_features(spark, tx, freq=freq, as_of=cutoff, config=config, horizon=horizon)
    meta = feature_metadata(config, freq=freq, as_of=cutoff, input=str(input), engine="spark", horizon=str(horizon),
                            rows_accepted=str(rows_in - rejected), rows_rejected=str(rejected))
    rows = write_parquet_folder(spark, frame, out, meta)
    return SparkJobResult(out, cutoff, rows, rows_in, rejected)


def score_job(spark: SparkSession, input: str, out: str | Path, *, model_uri: str, as_of: dt.date | None,
              reader: ReaderConfig, mode: Mode = Mode.QUARANTINE, tracking_uri: str | None = None,
              users: UserTableSpec | None = None) -> SparkJobResult:
    """``spendlab score --engine spark``: validate, then :func:`spendlab.spark.spark_score` to folder ``out``.

    ``users`` is the user table a model with covariates reads; it is validated locally, as on DuckDB.
    """
    _, rows_in, rejected = _validated(spark, input, reader, mode)
    table = None if users is None else users_frame(spark, load_users(users, mode=mode).table)
    # the input path, not the validated rows: the model decides which line attributes are read
    scores = spark_score(spark, input, model_uri=model_uri, out=out, as_of=as_of, reader=reader,
                         tracking_uri=tracking_uri, users=table)
    first = scores.select("as_of").first()
    return SparkJobResult(out, first["as_of"] if first else as_of, scores.count(), rows_in, rejected)
