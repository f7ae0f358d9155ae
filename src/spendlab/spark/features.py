"""As-of features and panels on Spark, from the same SQL and the same feature arithmetic as the DuckDB path.

Nothing here defines a feature. :mod:`spendlab.features.sql` generates the aggregate and per-user SQL
once (DuckDB dialect); :func:`spendlab.spark.transpile.to_spark_sql` turns it into Spark SQL; the
features are :func:`spendlab.features.arrays.compute_features`, run per bucket of users by
``applyInPandas``. This module registers what the SQL reads under the same names: the canonical
transactions, the as-of cut (:func:`spendlab.features.sql.asof_sql`) and the calendar tables
(:func:`spendlab.features.sql.calendar_tables`). Row validity is likewise the DuckDB reader's own
expression (:func:`spendlab.io.generic.parquet_select`), transpiled.
"""

from __future__ import annotations

import datetime as dt
import functools
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
from spendlab.features.arrays import compute_features, feature_columns, window_matrix, window_widths
from spendlab.features.config import FeatureConfig
from spendlab.features.sql import (
    EVENT_DAYS_TABLE,
    aggregate_sql,
    asof_sql,
    calendar_tables,
    dense_panel_sql,
    first_day_spend_sql,
    panel_sparse_sql,
    user_stats_sql,
    window_cells_sql,
)
from spendlab.io.generic import parquet_select
from spendlab.spark.covariates import attribute_columns, with_spark_covariates
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


def as_date(d: dt.date | str) -> dt.date:
    """Read a cutoff as a date: a datetime's day, a date as is, or an ISO ``YYYY-MM-DD`` string parsed."""
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    return dt.date.fromisoformat(d)


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _validity_sql(reader: ReaderConfig) -> str:
    """Return the DuckDB reader's per-row error expression (NULL = valid) over ``user_id, ts, amount``."""
    _, error = parquet_select([], reader, {reader.generic.ts_col: pa.timestamp("us", tz="UTC")})
    return to_spark_sql(error)


def canonical_rows(spark: SparkSession, parquet_paths: PathsArg, *, reader: ReaderConfig | None = None,
                   attributes: Sequence[str] = ()) -> DataFrame:
    """Every Parquet row as ``user_id, ts, amount, error``: ``error`` is NULL or the reject type.

    ``attributes`` names line attributes to carry after ``amount``
    (:func:`spendlab.spark.covariates.attribute_columns`).

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
        *attribute_columns(raw, tuple(attributes), reader, paths[0]),
    )
    return rows.withColumn("error", F.expr(_validity_sql(reader)))


def read_transactions(spark: SparkSession, parquet_paths: PathsArg, *,
                      reader: ReaderConfig | None = None, attributes: Sequence[str] = ()) -> DataFrame:
    """Return the valid canonical rows ``user_id, ts, amount`` of ``parquet_paths`` (see :func:`canonical_rows`).

    ``attributes`` are line attributes carried after ``amount`` (the covariates' inputs).

    Rows the DuckDB reader would reject (empty key, missing or out-of-window time, non-finite or
    out-of-range amount) are dropped here for the same reason; :func:`reject_counts` counts them.
    """
    return canonical_rows(spark, parquet_paths, reader=reader, attributes=attributes).where("error IS NULL") \
        .drop("error")


def reject_counts(spark: SparkSession, parquet_paths: PathsArg, *,
                  reader: ReaderConfig | None = None) -> tuple[int, Counter[str]]:
    """``(rows_in, Counter(error_type -> rows))`` over ``parquet_paths``, in one pass."""
    rows = canonical_rows(spark, parquet_paths, reader=reader).groupBy("error").count().collect()
    counts = Counter({r["error"]: int(r["count"]) for r in rows if r["error"] is not None})
    return sum(int(r["count"]) for r in rows), counts


def _register_event_days(spark: SparkSession, as_of: dt.date, freq: Freq, config: FeatureConfig,
                         horizon: int = 1) -> pd.DataFrame:
    """Register the event-day view the SQL joins; return the calendar covariates (for the features)."""
    from pyspark.sql.types import DateType, StructField, StructType

    event_days, covariates = calendar_tables(as_of, freq, config, horizon)
    days = [(d,) for d in event_days["day"].dt.date]
    spark.createDataFrame(days, StructType([StructField("day", DateType(), False)])) \
        .createOrReplaceTempView(EVENT_DAYS_TABLE)
    return covariates


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


def _features_schema(names: list[str]) -> str:
    return ", ".join(["user_id string", *(f"`{n}` double" for n in names)])


def _bucket_features(users: pd.DataFrame, cells: pd.DataFrame, *, as_of: dt.date, freq: Freq,
                     config: FeatureConfig, calendar: dict[str, float]) -> pd.DataFrame:
    """Compute the features of one bucket of users, by :func:`spendlab.features.arrays.compute_features`."""
    import numpy as np

    users = users.sort_values("user_id", kind="stable").reset_index(drop=True)
    names = feature_columns(config, freq)[1:]
    if users.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=str), **{c: pd.Series(dtype="float64") for c in names}})
    idx = pd.Index(users["user_id"]).get_indexer(cells["user_id"])
    k = cells["k"].to_numpy(np.int64)
    widths = {c: min(w, int(users["n_periods"].max())) for c, w in window_widths(config, freq).items()}
    windows = {c: window_matrix(len(users), idx, k, cells[c].to_numpy(np.float64), w) for c, w in widths.items()}
    stats = {c: users[c].to_numpy() for c in users.columns if c != "user_id"}
    features = compute_features(stats, windows, as_of=as_of, freq=freq, config=config, calendar=calendar)
    return pd.DataFrame({"user_id": users["user_id"].astype(str), **features})


def _user_rows(spark: SparkSession, src: str, *, as_of: dt.date, freq: Freq, config: FeatureConfig,
               buckets: int) -> DataFrame:
    """Select one row per user and recent active period (or one with NULL ``spendlab_k``).

    The user's sums (:func:`~spendlab.features.sql.user_stats_sql`) beside each cell
    (:func:`~spendlab.features.sql.window_cells_sql`), and the user's bucket, so one grouped frame
    carries both to Python.
    """
    tag = next(_counter)
    periods, first_day = f"spendlab_periods_{tag}", f"spendlab_first_day_{tag}"
    spark.sql(to_spark_sql(aggregate_sql(as_of, freq, f"SELECT * FROM {src}"))).createOrReplaceTempView(periods)
    spark.sql(to_spark_sql(first_day_spend_sql(f"SELECT * FROM {src}", periods))).createOrReplaceTempView(first_day)
    widths = window_widths(config, freq)
    cells = "".join(f", c.{col} AS spendlab_{col}" for col in widths)
    return spark.sql(f"""SELECT u.*, c.k AS spendlab_k{cells}, PMOD(HASH(u.user_id), {buckets}) AS spendlab_bucket
FROM ({to_spark_sql(user_stats_sql(as_of, freq, config, periods, first_day))}) AS u
LEFT JOIN ({to_spark_sql(window_cells_sql(periods, widths))}) AS c ON u.user_id = c.user_id""")


def _group_features(group: pd.DataFrame, *, as_of: dt.date, freq: Freq, config: FeatureConfig,
                    calendar: dict[str, float]) -> pd.DataFrame:
    """One bucket of :func:`_user_rows` split back into users and cells, then :func:`_bucket_features`."""
    cell_cols = [c for c in group.columns if c.startswith("spendlab_")]
    users = group.drop(columns=cell_cols).drop_duplicates("user_id")
    cells = group.loc[group["spendlab_k"].notna(), ["user_id", *cell_cols]]
    cells = cells.rename(columns=lambda c: c.removeprefix("spendlab_"))
    return _bucket_features(users, cells, as_of=as_of, freq=freq, config=config, calendar=calendar)


def spark_features(spark: SparkSession, parquet_paths: PathsArg | DataFrame, *, freq: Freq,
                   as_of: dt.date | str, config: FeatureConfig | None = None,
                   reader: ReaderConfig | None = None, buckets: int | None = None,
                   users: DataFrame | None = None, horizon: int = 1) -> DataFrame:
    """As-of features on Spark: the DataFrame :func:`spendlab.features.build_features` returns on DuckDB.

    The same layers as the DuckDB path: the transpiled aggregate and per-user SQL
    (:mod:`spendlab.features.sql`), then the one definition of every feature,
    :func:`spendlab.features.arrays.compute_features`, run by a cogrouped ``applyInPandas`` over
    buckets of users (a hash of ``user_id``), each bucket holding whole users.

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
    buckets
        Groups of users handed to Python at once (default: ``spark.sql.shuffle.partitions``).
    users
        The user table, for covariates (:mod:`spendlab.spark.covariates`; line attributes need a DataFrame).
    horizon
        Periods the target covers (the ``target_*`` calendar covariates describe that window).

    Returns
    -------
    pyspark.sql.DataFrame
        ``user_id`` then the columns of :func:`~spendlab.features.feature_columns`, all ``DOUBLE``,
        sorted by ``user_id``. Lazy; the temp views it reads are resolved when it is built, so later
        calls do not change it.
    """
    as_of = as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    if config.btyd:
        raise SpendlabError("the feature set asks for the BTYD statistics in days (btyd: true), which only the "
                            "DuckDB engine builds; use --engine duckdb or a feature set without btyd")
    ensure_semantics(spark)
    covariates = _register_event_days(spark, as_of, freq, config, horizon)
    transactions = _transactions(spark, parquet_paths, reader)
    src = _asof_view(spark, transactions, as_of)
    rows = _user_rows(spark, src, as_of=as_of, freq=freq, config=config,
                      buckets=buckets or int(spark.conf.get("spark.sql.shuffle.partitions")))
    names = feature_columns(config, freq)
    per_bucket = functools.partial(_group_features, as_of=as_of, freq=freq, config=config,
                                   calendar=covariates.iloc[0].astype(float).to_dict())
    frame = rows.groupBy("spendlab_bucket").applyInPandas(per_bucket, schema=_features_schema(names[1:])) \
        .orderBy("user_id")
    if frame.columns != names:  # the definitions and the declared names must agree
        raise AssertionError(f"Spark features returned {frame.columns}, expected {names}")
    return with_spark_covariates(spark, frame, transactions, as_of=as_of, freq=freq, config=config, users=users)


def spark_panel(spark: SparkSession, parquet_paths: PathsArg | DataFrame, *, freq: Freq, as_of: dt.date | str,
                config: FeatureConfig | None = None, reader: ReaderConfig | None = None) -> DataFrame:
    """Build the dense per-user panel on Spark (columns of :func:`spendlab.features.build_panel_table`).

    One row per user and period from the user's first period to the as-of period, zero-filled,
    sorted by ``user_id, period_start``. Runs one small job (the longest history) before returning.
    """
    from pyspark.sql.types import DateType, IntegerType, StructField, StructType

    as_of = as_date(as_of)
    check_freq(freq)
    config = config or FeatureConfig()
    ensure_semantics(spark)
    _register_event_days(spark, as_of, freq, config)
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
    """Return the end of the latest complete period (the rule of :func:`spendlab.features.metadata.default_as_of`)."""
    from pyspark.sql import functions as F

    check_freq(freq)
    last = transactions.select(F.max(F.col("ts").cast("date")).alias("d")).first()["d"]
    if last is None:
        raise NoDataError("no transactions: cannot choose an as-of date")
    if last == period_end(last, freq):
        return last
    return period_start(last, freq) - dt.timedelta(days=1)
