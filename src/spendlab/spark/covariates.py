"""Covariate features on Spark: the DuckDB statement of :mod:`spendlab.features.covariates`, transpiled.

Nothing here defines a covariate: :func:`~spendlab.features.covariates.covariates_sql` writes the one
statement, :func:`~spendlab.spark.transpile.to_spark_sql` turns it into Spark SQL. This module only
registers what it reads (the transactions with their line attributes, the user table beside them) and
reads the column kinds and category levels the way :func:`~spendlab.features.covariates.user_columns`
does on DuckDB.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import TYPE_CHECKING

from spendlab.calendar import Freq
from spendlab.config import ReaderConfig
from spendlab.errors import ConfigError, InputFileError
from spendlab.features.config import CovariateConfig, FeatureConfig
from spendlab.features.covariates import UserColumn, covariate_names, covariates_sql
from spendlab.io.users import users_view
from spendlab.spark.transpile import to_spark_sql

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_counter = itertools.count()


def _user_columns(users: DataFrame | None, cfg: CovariateConfig) -> list[UserColumn]:
    from pyspark.sql.types import StringType

    if not cfg.user_attributes:
        return []
    if users is None:
        raise ConfigError(f"covariates.user_attributes {list(cfg.user_attributes)} need a user table (dataset.users)")
    types = {f.name: f.dataType for f in users.schema.fields}
    out = []
    for name in cfg.user_attributes:
        if name not in types:
            raise ConfigError(f"covariates.user_attributes: the user table has no column {name!r}")
        if not isinstance(types[name], StringType):
            out.append(UserColumn(name, "number"))
            continue
        levels = cfg.user_levels.get(name)
        if levels is None:
            rows = users.select(name).where(users[name].isNotNull()).distinct().collect()
            levels = tuple(sorted(r[0] for r in rows))
        out.append(UserColumn(name, "category", tuple(levels)))
    return out


def spark_covariates(spark: SparkSession, transactions: DataFrame, *, as_of: dt.date, freq: Freq,
                     cfg: CovariateConfig, users: DataFrame | None = None) -> DataFrame:
    """``user_id`` and the covariate columns (:func:`~spendlab.features.covariates.covariate_names`) on Spark.

    Parameters
    ----------
    transactions : pyspark.sql.DataFrame
        Canonical rows (``user_id``, ``ts`` as UTC ``TIMESTAMP_NTZ``, ``amount``) with the line attributes.
    users : pyspark.sql.DataFrame, optional
        The user table (``user_id``, ``valid_from``, its columns), as :mod:`spendlab.io.users` holds it.
    """
    from pyspark.sql.types import ArrayType

    types = {f.name: f.dataType for f in transactions.schema.fields}
    missing = sorted(a for a in cfg.attributes() if a not in types)
    if missing:
        raise ConfigError(f"covariates read line attribute(s) {missing} that the data does not have "
                          "(declare them in reader.generic.attributes)")
    listed = {a for a in cfg.attributes() if isinstance(types[a], ArrayType)}
    view = f"spendlab_cov_tx_{next(_counter)}"
    transactions.createOrReplaceTempView(view)
    if users is not None:
        users.createOrReplaceTempView(users_view(view))
    columns = _user_columns(users, cfg)
    sql = covariates_sql(cfg, as_of=as_of, freq=freq, view=view, users=columns, listed=listed)
    frame = spark.sql(to_spark_sql(sql))
    return frame.select(frame["user_id"].cast("string").alias("user_id"),
                        *(frame[f"`{n}`"].cast("double").alias(n) for n in covariate_names(cfg, columns)))


def with_spark_covariates(spark: SparkSession, frame: DataFrame, transactions: DataFrame, *, as_of: dt.date,
                          freq: Freq, config: FeatureConfig, users: DataFrame | None = None) -> DataFrame:
    """``frame`` (features by ``user_id``) with the covariate columns appended when ``config`` declares any (0 for a user the covariates have no row for, as on DuckDB), sorted by ``user_id``."""
    if config.covariates is None:
        return frame
    extra = spark_covariates(spark, transactions, as_of=as_of, freq=freq, cfg=config.covariates, users=users)
    return frame.join(extra, on="user_id", how="left").fillna(0.0, subset=extra.columns[1:]).orderBy("user_id")


def line_attributes(config: FeatureConfig | None) -> tuple[str, ...]:
    """Return the line attributes a feature config's covariates read (none without covariates)."""
    return () if config is None or config.covariates is None else tuple(sorted(config.covariates.attributes()))


def attribute_columns(raw: DataFrame, names: tuple[str, ...], reader: ReaderConfig, path: str) -> list[Column]:
    """Return line attributes ``names`` of Parquet rows ``raw`` as the DuckDB reader holds them.

    An attribute declared in ``reader.generic.attributes`` is read from its column, else from the column
    of its own name (canonical Parquet, lookups already joined). A list (an order's categories) is kept;
    a category is trimmed text, empty = missing; an amount is a ``DOUBLE``.

    Raises
    ------
    InputFileError
        The file lacks an attribute's column.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StringType

    types = {f.name: f.dataType for f in raw.schema.fields}
    specs = reader.generic.attributes
    out = []
    for name in names:
        column = specs[name].column if name in specs else name
        if column not in types:
            raise InputFileError(path, "SCHEMA_MISSING_COLUMN", f"the model's covariates read line attribute {name!r}: "
                                 f"missing column {column!r}; found {sorted(types)}", column=column)
        col = F.col(f"`{column}`")
        if isinstance(types[column], ArrayType):
            out.append(col.alias(name))
        elif (name in specs and specs[name].type == "category") or isinstance(types[column], StringType):
            out.append(F.expr(f"nullif(trim(CAST(`{column}` AS STRING)), '')").alias(name))
        else:
            out.append(col.cast("double").alias(name))
    return out


def users_frame(spark: SparkSession, table: object) -> DataFrame:
    """Return a user table (:attr:`spendlab.io.users.UserTable.table`, Arrow) as a Spark DataFrame.

    ``valid_from`` is a ``TIMESTAMP_NTZ`` holding the UTC wall time, as the transactions' ``ts``.
    """
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(table.to_pandas())  # type: ignore[attr-defined]
    return frame.withColumn("valid_from", F.col("valid_from").cast("timestamp_ntz"))

