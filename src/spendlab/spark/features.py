"""As-of features and panels on Spark, from the same generated SQL as the DuckDB path.

Nothing here defines a feature. :mod:`spendlab.features.sql` generates the feature SQL once (DuckDB
dialect); :func:`spendlab.spark.transpile.to_spark_sql` turns it into Spark SQL; this module only
registers what that SQL reads under the same names: the canonical transactions, the as-of cut
(:func:`spendlab.features.sql.asof_sql`) and the two calendar tables
(:func:`spendlab.features.sql.calendar_tables`). Row validity is likewise the DuckDB reader's own
expression (:func:`spendlab.io.generic.parquet_select`), transpiled.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from spendlab.calendar import Freq, check_freq, period_end, period_start, shift_period
from spendlab.config import ReaderConfig
from spendlab.errors import InputFileError, NoDataError, SpendlabError
from spendlab.features.config import FeatureConfig, feature_columns
from spendlab.features.sql import (
    CALENDAR_TABLE,
    EVENT_DAYS_TABLE,
    asof_sql,
    calendar_tables,
    dense_panel_sql,
    features_sql,
    panel_sparse_sql,
)
from spendlab.io.generic import parquet_select
from spendlab.spark.session import ensure_semantics
from spendlab.spark.transpile import to_spark_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PathsArg = str | Path | Sequence[str | Path]
_counter = itertools.count()


def _paths(parquet_paths: PathsArg) -> list[str]:
    if isinstance(parquet_paths, (str, Path)):
        return [str(parquet_paths)]
    paths = [str(p) for p in parquet_paths]
    if not paths:
        raise SpendlabError("no Parquet path given")
    return paths


def _as_date(d: dt.date | str) -> dt.date:
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    return dt.date.fromisoformat(d)


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _validity_sql(reader: ReaderConfig) -> str:
    """The DuckDB reader's per-row error expression (NULL = valid) over ``user_id, ts, amount``."""
    _, error = parquet_select([], reader, {reader.generic.ts_col: pa.timestamp("us", tz="UTC")})
    return to_spark_sql(error)


def canonical_rows(spark: SparkSession, parquet_paths: PathsArg, *, reader: ReaderConfig | None = None) -> DataFrame:
    """Every Parquet row as ``user_id, ts, amount, error``: ``error`` is NULL or the reject type.

    ``user_id`` is trimmed text, ``ts`` a ``TIMESTAMP_NTZ`` holding UTC wall time (what DuckDB's
    naive ``TIMESTAMP`` holds), ``amount`` a ``DOUBLE`` with spend positive (``reader.generic``
    maps the columns and the sign). The timestamp column must be time-zone aware (Parquet
    ``isAdjustedToUTC``, as spendlab writes it) or the reader's time zone must be UTC.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    reader = reader or ReaderConfig()
    m = reader.generic
    paths = _paths(parquet_paths)
    ensure_semantics(spark)
    try:
        raw = spark.read.parquet(*paths)
    except AnalysisException as exc:
        raise InputFileError(paths[0], "CORRUPT_PARQUET",
                             f"Spark cannot read it: {str(exc).splitlines()[0]}") from None
    types = {f.name: f.dataType for f in raw.schema.fields}
    missing = [c for c in (m.user_col, m.ts_col, m.amount_col) if c not in types]
    if missing:
        raise InputFileError(paths[0], "SCHEMA_MISSING_COLUMN",
                             f"missing column(s) {missing}; found {sorted(types)} (check reader.generic in the config)",
                             column=missing[0])
    ts_type = types[m.ts_col]
    if isinstance(ts_type, TimestampType):
        ts = F.col(m.ts_col).cast("timestamp_ntz")  # session time zone is UTC: the UTC wall time
    elif isinstance(ts_type, TimestampNTZType) and reader.timezone == "UTC":
        ts = F.col(m.ts_col)
    else:
        raise InputFileError(paths[0], "SCHEMA_TYPE",
                             f"column {m.ts_col!r} is {ts_type.simpleString()}; the Spark engine reads UTC "
                             "timestamps (Parquet timestamp with isAdjustedToUTC, or naive with reader.timezone "
                             "UTC): convert with 'spendlab validate' first", column=m.ts_col)
    sign = 1.0 if m.spend_is == "positive" else -1.0
    rows = raw.select(
        F.trim(F.col(m.user_col).cast("string")).alias("user_id"),
        ts.alias("ts"),
        (F.lit(sign) * F.expr(f"TRY_CAST({_bq(m.amount_col)} AS DOUBLE)")).alias("amount"),  # pyspark 3.5 too
    )
    return rows.withColumn("error", F.expr(_validity_sql(reader)))


def read_transactions(spark: SparkSession, parquet_paths: PathsArg, *,
                      reader: ReaderConfig | None = None) -> DataFrame:
    """The valid canonical rows ``user_id, ts, amount`` of ``parquet_paths`` (see :func:`canonical_rows`).

    Rows the DuckDB reader would reject (empty key, missing or out-of-window time, non-finite or
    out-of-range amount) are dropped here for the same reason; :func:`reject_counts` counts them.
    """
    return canonical_rows(spark, parquet_paths, reader=reader).where("error IS NULL").drop("error")


def reject_counts(spark: SparkSession, parquet_paths: PathsArg, *,
                  reader: ReaderConfig | None = None) -> tuple[int, Counter[str]]:
    """``(rows_in, Counter(error_type -> rows))`` over ``parquet_paths``, in one pass."""
    rows = canonical_rows(spark, parquet_paths, reader=reader).groupBy("error").count().collect()
    counts = Counter({r["error"]: int(r["count"]) for r in rows if r["error"] is not None})
    return sum(int(r["count"]) for r in rows), counts


def _register(spark: SparkSession, name: str, frame: pd.DataFrame) -> None:
    spark.createDataFrame(frame).createOrReplaceTempView(name)


def _register_calendar(spark: SparkSession, as_of: dt.date, freq: Freq, config: FeatureConfig) -> None:
    from pyspark.sql.types import DateType, StructField, StructType

    event_days, covariates = calendar_tables(as_of, freq, config)
    days = [(d,) for d in event_days["day"].dt.date]
    spark.createDataFrame(days, StructType([StructField("day", DateType(), False)])) \
        .createOrReplaceTempView(EVENT_DAYS_TABLE)
    _register(spark, CALENDAR_TABLE, covariates.astype("float64"))


def _asof_view(spark: SparkSession, transactions: DataFrame, as_of: dt.date) -> str:
    tag = next(_counter)
    view, cut = f"spendlab_tx_{tag}", f"spendlab_asof_{tag}"
    transactions.select("user_id", "ts", "amount").createOrReplaceTempView(view)
    spark.sql(to_spark_sql(asof_sql(as_of, view))).createOrReplaceTempView(cut)
    return cut


def _transactions(spark: SparkSession, source: PathsArg | DataFrame, reader: ReaderConfig | None) -> DataFrame:
    from pyspark.sql import DataFrame as SparkDataFrame

    if isinstance(source, SparkDataFrame):
        return source
    return read_transactions(spark, source, reader=reader)


def spark_features(spark: SparkSession, parquet_paths: PathsArg | DataFrame, *, freq: Freq,
                   as_of: dt.date | str, config: FeatureConfig | None = None,
                   reader: ReaderConfig | None = None) -> DataFrame:
    """As-of features on Spark: the DataFrame :func:`spendlab.features.build_features` returns on DuckDB.

    Parameters
    ----------
    spark
        The session (:func:`spendlab.spark.session` or the cluster's own).
    parquet_paths
        Canonical transaction Parquet: file(s), folder(s) or glob(s) Spark can read (``s3a://``,
        ``abfss://``, ``dbfs:/``, ...), or a DataFrame of canonical rows from :func:`read_transactions`.
    freq
        ``month`` or ``week``.
    as_of
        Cutoff day, inclusive; only rows with ``ts`` before the next midnight are read.
    config
        The feature declaration (defaults: :class:`~spendlab.features.FeatureConfig`).
    reader
        Column mapping and validity limits (defaults: :class:`~spendlab.config.ReaderConfig`).

    Returns
    -------
    pyspark.sql.DataFrame
        ``user_id`` then the columns of :func:`~spendlab.features.feature_columns`, all ``DOUBLE``,
        sorted by ``user_id``: the transpiled :func:`~spendlab.features.sql.features_sql`. Lazy; the
        temp views it reads are resolved when it is built, so later calls do not change it.
    """
    as_of = _as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    ensure_semantics(spark)
    _register_calendar(spark, as_of, freq, config)
    src = _asof_view(spark, _transactions(spark, parquet_paths, reader), as_of)
    frame = spark.sql(to_spark_sql(features_sql(as_of, freq, config, f"SELECT * FROM {src}")))
    expected = feature_columns(config, freq)
    if frame.columns != expected:  # the SQL and the declared names must agree
        raise AssertionError(f"feature SQL returned {frame.columns}, expected {expected}")
    return frame


def spark_panel(spark: SparkSession, parquet_paths: PathsArg | DataFrame, *, freq: Freq, as_of: dt.date | str,
                config: FeatureConfig | None = None, reader: ReaderConfig | None = None) -> DataFrame:
    """The dense per-user panel on Spark (columns of :func:`spendlab.features.build_panel_table`).

    One row per user and period from the user's first period to the as-of period, zero-filled,
    sorted by ``user_id, period_start``. Runs one small job (the longest history) before returning.
    """
    from pyspark.sql.types import DateType, IntegerType, StructField, StructType

    as_of = _as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    ensure_semantics(spark)
    _register_calendar(spark, as_of, freq, config)
    src = _asof_view(spark, _transactions(spark, parquet_paths, reader), as_of)
    tag = next(_counter)
    sparse, periods = f"spendlab_sparse_{tag}", f"spendlab_periods_{tag}"
    spark.sql(to_spark_sql(panel_sparse_sql(as_of, freq, config, f"SELECT * FROM {src}"))) \
        .createOrReplaceTempView(sparse)
    first_k = spark.sql(f"SELECT COALESCE(MAX(k), 0) AS k FROM {sparse}").first()["k"]
    rows = [(k, shift_period(as_of, freq, -k)) for k in range(int(first_k) + 1)]
    schema = StructType([StructField("k", IntegerType(), False), StructField("period_start", DateType(), False)])
    spark.createDataFrame(rows, schema).createOrReplaceTempView(periods)
    return spark.sql(to_spark_sql(dense_panel_sql(sparse, periods)))


def spark_default_as_of(transactions: DataFrame, freq: Freq) -> dt.date:
    """The end of the latest complete period (the rule of :func:`spendlab.features.metadata.default_as_of`)."""
    from pyspark.sql import functions as F

    check_freq(freq)
    last = transactions.select(F.max(F.col("ts").cast("date")).alias("d")).first()["d"]
    if last is None:
        raise NoDataError("no transactions: cannot choose an as-of date")
    if last == period_end(last, freq):
        return last
    return period_start(last, freq) - dt.timedelta(days=1)
