"""Choosing the default cutoff and writing a feature table: the I/O beside the pure feature logic."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from spendlab.calendar import Freq, check_freq, period_end, period_start
from spendlab.config import config_hash
from spendlab.errors import NoDataError
from spendlab.features.config import FeatureConfig

METADATA_PREFIX = "spendlab."


def default_as_of(con: duckdb.DuckDBPyConnection, freq: Freq, *, view: str = "transactions") -> dt.date:
    """Return the end of the latest complete period in the data.

    The period holding the last transaction counts as complete when that transaction falls on the
    period's last day; otherwise the cutoff is the end of the period before it.
    """
    check_freq(freq)
    last = con.execute(f'SELECT CAST(MAX(ts) AS DATE) FROM "{view}"').fetchall()[0][0]
    if last is None:
        raise NoDataError(f"no transactions in {view!r}: cannot choose an as-of date")
    if last == period_end(last, freq):
        return last
    return period_start(last, freq) - dt.timedelta(days=1)


def feature_metadata(config: FeatureConfig, *, freq: Freq, as_of: dt.date, **extra: str) -> dict[str, str]:
    """Return the Parquet schema metadata of a feature file (``spendlab.config_hash``, ``as_of``, ``freq``, ...)."""
    meta = {
        "config_hash": config_hash(config),
        "feature_config": json.dumps(config.model_dump(mode="json"), sort_keys=True),
        "freq": freq,
        "as_of": as_of.isoformat(),
        **extra,
    }
    return {METADATA_PREFIX + k: v for k, v in meta.items()}


def read_feature_metadata(path: str | Path) -> dict[str, str]:
    """Return the ``spendlab.*`` schema metadata of a feature Parquet file."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.decode().startswith(METADATA_PREFIX)}
