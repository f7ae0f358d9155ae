"""Batch scoring on Spark: the transpiled feature SQL, then the registered model as a Spark UDF.

The output has the columns and meaning of the local scorer (:data:`spendlab.jobs.score.SCORE_SCHEMA`):
the model is the same verified pyfunc (``mlflow.pyfunc.spark_udf`` on the verified local copy), and
every model column (cold start, segment, P(spend), interval) is the pyfunc's own output.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from spendlab.calendar import Freq, target_period_label
from spendlab.config import ReaderConfig
from spendlab.errors import NoDataError, SpendlabError
from spendlab.features.config import FeatureConfig
from spendlab.io.atomic import atomic_path
from spendlab.jobs.score import FOLDER_METADATA_FILE, LINEAGE_KEY, scores_lineage
from spendlab.spark.covariates import line_attributes
from spendlab.spark.features import PathsArg, as_date, read_transactions, spark_default_as_of, spark_features
from spendlab.tracking.registry import verified_model_dir
from spendlab.tracking.scorer import load_model, predict_params, spark_udf

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The pyfunc model's output columns and their Spark types (``spark_udf`` result type).
MODEL_OUTPUT = ("user_id STRING, prediction DOUBLE, p_spend DOUBLE, median DOUBLE, lower DOUBLE, upper DOUBLE, "
                "segment STRING, basis STRING")


def is_local_path(path: str | Path) -> bool:
    """Whether ``path`` is on the local file system (not a URL or a ``dbfs:`` path)."""
    text = str(path)
    return "://" not in text and not text.startswith("dbfs:")


# long: one Spark plan: read, features, the model's UDF on a verified copy, the output columns, the checked write
def spark_score(spark: SparkSession, parquet_paths: PathsArg, *, model_uri: str, out: str | Path | None = None,
                freq: Freq | None = None, as_of: dt.date | str | None = None, config: FeatureConfig | None = None,
                reader: ReaderConfig | None = None, tracking_uri: str | None = None,
                users: DataFrame | None = None) -> DataFrame:
    """Score every user with a transaction on or before ``as_of``, on Spark.

    Parameters
    ----------
    spark
        The session.
    parquet_paths
        Canonical transaction Parquet (any path Spark reads), or a DataFrame of canonical rows. A model
        fitted with covariates reads its line attributes from the same rows (columns of the attribute
        names, or as ``reader.generic.attributes`` maps them).
    model_uri
        A spendlab pyfunc model, usually ``models:/spendlab-next-month@champion``.
    out
        Where to write the scores as Parquet (a folder of part files, sorted by ``user_id``). A local
        path is swapped in atomically; a cluster path (``s3a://``, ``dbfs:/``) is written by Spark's
        committer with ``mode("overwrite")``. ``None`` returns the lazy DataFrame without writing.
    freq, config
        Must match the model's (they default to it): a model reads only the features it was fitted on.
    as_of
        Cutoff day (default: end of the latest complete period in the data).
    reader
        Column mapping and validity limits of the input.
    tracking_uri
        MLflow tracking store holding the registry (default: :mod:`spendlab.tracking.runs`'s).
    users
        The user table a model with covariates reads (:func:`spendlab.spark.covariates.users_frame`).

    Returns
    -------
    pyspark.sql.DataFrame
        ``user_id, as_of, target_period, prediction, lower, upper, segment, basis, model_uri,
        model_version``; when ``out`` is given, read back from the written files. The folder then
        holds ``_spendlab_metadata.json``: the lineage the local scorer puts in its file footer
        (key ``spendlab.scores``), which ``spendlab monitor`` reads.
    """
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import functions as F


    model = load_model(model_uri, tracking_uri=tracking_uri)
    if freq is not None and freq != model.freq:
        raise SpendlabError(f"--freq {freq} does not match model {model_uri} (fitted on {model.freq} features)")
    if config is not None and config != model.feature_config:
        raise SpendlabError(f"the feature config does not match the one model {model_uri} was fitted on")
    tx = parquet_paths if isinstance(parquet_paths, SparkDataFrame) else \
        read_transactions(spark, parquet_paths, reader=reader, attributes=line_attributes(model.feature_config))
    cutoff = as_date(as_of) if as_of is not None else spark_default_as_of(tx, model.freq)
    target_period = target_period_label(cutoff, model.freq, model.horizon)
    feats = spark_features(spark, tx, freq=model.freq, as_of=cutoff, config=model.feature_config, users=users,
                           horizon=model.horizon)
    missing = [c for c in model.feature_names if c not in feats.columns]
    if missing:
        raise SpendlabError(f"model {model_uri} needs features {missing} the feature set does not produce")
    with verified_model_dir(model_uri, tracking_uri=tracking_uri) as (local, _, _):  # spark_udf copies the verified files
        udf = spark_udf(spark, str(local), result_type=MODEL_OUTPUT, params=predict_params(model, as_of=cutoff))
    pred = feats.withColumn("_out", udf(F.struct(*[F.col(c) for c in feats.columns])))
    scores = pred.select(
        F.col("_out.user_id").alias("user_id"),
        F.lit(cutoff).cast("date").alias("as_of"),
        F.lit(target_period).alias("target_period"),
        *[F.col(f"_out.{c}").cast("double").alias(c) for c in ("prediction", "p_spend", "median", "lower", "upper")],
        F.col("_out.segment").alias("segment"),
        F.col("_out.basis").alias("basis"),
        F.lit(model.uri).alias("model_uri"),
        F.lit(model.version).alias("model_version"),
    ).orderBy("user_id")
    if out is None:
        return scores
    users_in = tx.where(F.col("ts") < F.lit(cutoff + dt.timedelta(days=1)).cast("timestamp_ntz")) \
        .select("user_id").distinct().count()
    if users_in == 0:
        raise NoDataError(f"no user has a transaction on or before {cutoff}: nothing to score")
    lineage = json.dumps({LINEAGE_KEY: json.dumps(scores_lineage(
        model, as_of=cutoff, target_period=target_period), sort_keys=True)}, indent=2)
    if is_local_path(out):
        with atomic_path(out) as tmp:
            scores.write.parquet(str(tmp))
            _check_rows(spark, str(tmp), users_in)
            (Path(tmp) / FOLDER_METADATA_FILE).write_text(lineage, encoding="utf-8")
    else:
        scores.write.mode("overwrite").parquet(str(out))
        _check_rows(spark, str(out), users_in)
        spark.createDataFrame([(lineage,)], "value STRING").coalesce(1).write.mode("overwrite").text(
            f"{str(out).rstrip('/')}/_spendlab_metadata")
    return spark.read.parquet(str(out))


def _check_rows(spark: SparkSession, path: str, users_in: int) -> None:
    rows_out = spark.read.parquet(path).count()
    if rows_out != users_in:
        raise SpendlabError(f"scoring wrote {rows_out} rows for {users_in} users; output not written")
