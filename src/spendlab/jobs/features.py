"""The ``spendlab features`` job's output: the feature table as Parquet with its metadata."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.calendar import Freq
from spendlab.config import load_yaml
from spendlab.features import build_features_arrow
from spendlab.features.config import FeatureConfig, feature_config_from_dict
from spendlab.features.metadata import default_as_of
from spendlab.io.atomic import atomic_path
from spendlab.io.load import Transactions, connect

#: Dictionary page size of the features file. Most feature columns are distinct doubles, for which the
#: writer builds a dictionary and then falls back to plain encoding once it outgrows this size; the
#: default (1 MiB) spends half the write on dictionaries it throws away. Low-cardinality columns (the
#: calendar covariates, flags, counts) still fit in 16 KiB and stay dictionary-encoded.
DICTIONARY_PAGE_BYTES = 16 << 10


def write_features(table: pa.Table, out: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``table`` to Parquet atomically with ``metadata`` added to its schema metadata."""
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in metadata.items()})
    with atomic_path(out) as tmp:
        pq.write_table(table.replace_schema_metadata(merged), tmp, dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES)
    return Path(out)


def load_feature_config(path: str | Path | None = None) -> FeatureConfig:
    """Read a feature config file, or return the built-in defaults (identical to configs/features.yaml)."""
    if path is None:
        return FeatureConfig()
    return feature_config_from_dict(load_yaml(path), str(path))


def features_table(tx: Transactions, *, freq: Freq, as_of: dt.date | None, config: FeatureConfig,
                   threads: int | None = None, memory_limit: str | None = None,
                   horizon: int = 1) -> tuple[pa.Table, dt.date]:
    """Compute every user's as-of features in one pass over ``tx``.

    Ids stay in their stored type until the output, where they are text. ``horizon`` is the number of
    periods the target covers (the ``target_*`` calendar covariates describe that window). Returns the
    features and the cutoff used (default: the end of the latest complete period).
    """
    con = connect(threads=threads, memory_limit=memory_limit)
    try:
        tx.register(con, native_ids=True)
        cutoff = as_of or default_as_of(con, freq)
        return build_features_arrow(con, freq=freq, as_of=cutoff, config=config, horizon=horizon), cutoff
    finally:
        con.close()
