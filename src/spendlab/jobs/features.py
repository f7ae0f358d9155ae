"""The ``spendlab features`` job's output: the feature table as Parquet with its metadata."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.config import load_yaml
from spendlab.features.config import FeatureConfig, feature_config_from_dict
from spendlab.io.atomic import atomic_path


def write_features(table: pa.Table, out: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``table`` to Parquet atomically with ``metadata`` added to its schema metadata."""
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in metadata.items()})
    with atomic_path(out) as tmp:
        pq.write_table(table.replace_schema_metadata(merged), tmp)
    return Path(out)


def load_feature_config(path: str | Path | None = None) -> FeatureConfig:
    """Read a feature config file, or return the built-in defaults (identical to configs/features.yaml)."""
    if path is None:
        return FeatureConfig()
    return feature_config_from_dict(load_yaml(path), str(path))
