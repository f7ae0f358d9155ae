"""Each cutoff's features and targets on disk, reused across runs on the same data and feature set.

A run builds every cutoff's features once and keeps them in its :class:`FeatureStore`; this cache keeps
them across runs (``spendlab experiment run`` twice, or the main job after an experiment). An entry is
one Parquet file named by a SHA-256 over everything that decides its content:

- the input files' bytes (the dataset's digest) and the reader settings that turn them into rows;
- the resolved feature config, the frequency and the horizon;
- the source of ``spendlab.features`` (a change to how features are computed invalidates every entry);
- the kind (``features`` or ``targets``) and the cutoff.

So changed data, another reader or feature config, or new feature code all miss the cache and build
anew; nothing is ever looked up by a stale key. Entries are written atomically (a temporary file
renamed into place): a concurrent run reads a whole entry or none, and two runs writing the same key
write the same bytes. An entry that cannot be read is rebuilt and replaced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

import spendlab.features
from spendlab.config import config_hash
from spendlab.features.store import FeatureStore
from spendlab.io.atomic import atomic_path
from spendlab.io.safe_out import prepare_output_dir
from spendlab.timing import timed

#: Where ``spendlab experiment run`` keeps the cache (relative to the working directory).
DEFAULT_CACHE_DIR = Path("outputs/.feature_cache")


def dataset_record(plan: Any, tx: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Return the dataset as MLflow records it (name, content digest, source) and the tags every run carries.

    Parameters
    ----------
    plan : ExperimentPlan or TunePlan
        Names the dataset.
    tx : Transactions
        The loaded dataset.

    Returns
    -------
    tuple of dict
        The dataset record and the run tags.
    """
    cfg = plan.experiment
    name = cfg.dataset.name or cfg.dataset.input
    source = tx.files[0] if len(tx.files) == 1 else cfg.dataset.input
    dataset = {"name": name, "digest": tx.content_hash(), "source": str(source)}
    tags = {"dataset_name": name, "dataset_hash": dataset["digest"], "experiment_file": str(plan.experiment_path or "")}
    return dataset, tags


def feature_code_digest() -> str:
    """SHA-256 over the source files of :mod:`spendlab.features` (the code that computes an entry)."""
    h = hashlib.sha256()
    for path in sorted(Path(spendlab.features.__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class FeatureCache:
    """Features and targets of one dataset and feature set, one Parquet file per cutoff and kind.

    Parameters
    ----------
    root : pathlib.Path
        The cache directory (created and marked as spendlab's on first write).
    key : str
        What the entries depend on besides kind and cutoff (see :func:`cache_key`).
    """

    def __init__(self, root: Path, key: str) -> None:
        self.root, self.key = Path(root), key

    def path(self, kind: str, cutoff: dt.date) -> Path:
        """Return the file of one entry."""
        digest = hashlib.sha256(f"{self.key}|{kind}|{cutoff.isoformat()}".encode()).hexdigest()
        return self.root / f"{kind}-{cutoff.isoformat()}-{digest[:32]}.parquet"

    def get(self, kind: str, cutoff: dt.date) -> pd.DataFrame | None:
        """Return the cached frame, or ``None`` when it is absent or unreadable (it is then rebuilt)."""
        path = self.path(kind, cutoff)
        if not path.is_file():
            return None
        with timed("feature_cache_read", kind, cutoff):
            try:
                return pd.read_parquet(path)
            except (OSError, ValueError):  # truncated or foreign bytes: a miss, replaced by the rebuild
                return None

    def put(self, kind: str, cutoff: dt.date, frame: pd.DataFrame) -> None:
        """Store ``frame`` atomically (a reader never sees half a file)."""
        with timed("feature_cache_write", kind, cutoff):
            if not self.root.is_dir():
                prepare_output_dir(self.root, option="feature cache")
            with atomic_path(self.path(kind, cutoff)) as tmp:
                frame.to_parquet(tmp, index=False)


def cache_key(plan: Any, tx: Any) -> str | None:
    """Return what a cached frame depends on besides its kind and cutoff; ``None`` when the data has no files.

    Parameters
    ----------
    plan : ExperimentPlan or TunePlan
        Gives the frequency, horizon and feature set.
    tx : Transactions
        The dataset: its files' digest and its reader settings.

    Returns
    -------
    str or None
        A hex digest, or ``None`` for data without input files (a DataFrame): it has no stable identity.
    """
    if not tx.files or not all(Path(f).is_file() for f in tx.files):
        return None
    cfg = plan.experiment
    parts = {"data": tx.content_hash(), "reader": config_hash(tx.config) if tx.config is not None else None,
             "features": config_hash(plan.features) if plan.features is not None else None,
             "freq": cfg.freq, "horizon": cfg.horizon, "code": feature_code_digest()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_store(plan: Any, tx: Any, root: Path | None) -> FeatureStore:
    """Return the plan's feature store over ``tx``, reading and filling the cache under ``root`` (``None``: no cache).

    Parameters
    ----------
    plan : ExperimentPlan or TunePlan
        Gives the frequency, horizon and feature set.
    tx : Transactions
        The plan's dataset.
    root : pathlib.Path or None
        The cache directory.

    Returns
    -------
    FeatureStore
        A new store; with a cache when ``root`` is given and the data has input files.
    """
    key = cache_key(plan, tx) if root is not None else None
    cache = FeatureCache(root, key) if root is not None and key is not None else None
    cfg = plan.experiment
    return FeatureStore.from_source(tx, freq=cfg.freq, horizon=cfg.horizon, feature_config=plan.features, cache=cache)
