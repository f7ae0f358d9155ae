"""Loading a registered spendlab model and predicting with it (the local and the Spark scorer share this)."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import spendlab
from spendlab.calendar import Freq
from spendlab.errors import SpendlabError
from spendlab.features import FeatureConfig
from spendlab.tracking import runs as tracking

log = logging.getLogger(__name__)


DEFAULT_MODEL_URI = "models:/spendlab-next-month@champion"


#: ``basis`` values: how a prediction was made.
BASIS_MODEL = "model"


BASIS_COLD_START = "cold_start_fallback"


@dataclass
class LoadedModel:
    """A pyfunc model with the spendlab metadata scoring needs."""

    pyfunc: Any
    uri: str
    version: str
    freq: Freq
    feature_config: Any
    feature_names: list[str]
    cold_start: dict[str, float]
    #: The signature declares the ``n_threads`` param (models registered before it ignore params).
    takes_threads: bool = False
    #: The registered version's ``dataset_hash`` tag: the data it was trained on ("" when unknown).
    dataset_hash: str = ""


def load_model(uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str | None = None) -> LoadedModel:
    """Load a registered spendlab model and its metadata (feature set, frequency, fallback)."""
    import mlflow
    from mlflow.exceptions import MlflowException


    tracking.configure(tracking_uri)
    try:
        # MLflow's own requirement check reads the metadata of every installed distribution (1.1 s);
        # a spendlab model requires only spendlab, which _warn_on_version_drift checks directly.
        model = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
    except MlflowException as exc:
        raise SpendlabError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None
    cfg = model.model_config or {}
    if "feature_config" not in cfg:
        raise SpendlabError(f"{uri} is not a spendlab model (no feature_config in its model_config)")
    _warn_on_version_drift(uri, cfg, model.metadata)
    version = str(cfg.get("registered_version", ""))
    tags: dict[str, str] = {}
    if uri.startswith("models:/"):
        version, tags = _registered_version(uri) or (version, {})
    return LoadedModel(
        pyfunc=model,
        uri=uri,
        version=version or "unregistered",
        freq=cfg["freq"],
        feature_config=FeatureConfig.model_validate(cfg["feature_config"]),
        feature_names=list(cfg["feature_names"]),
        cold_start=dict(cfg.get("cold_start", {"prediction": 0.0, "lower": 0.0, "upper": 0.0})),
        takes_threads=_declares_param(model, "n_threads"),
        dataset_hash=str(tags.get("dataset_hash", cfg.get("dataset_hash", ""))),
    )


def load_model_async(uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str | None = None) -> Future[LoadedModel]:
    """:func:`load_model` on a background thread, for :func:`score` to await once it needs the model.

    Loading is mostly imports and unpickling in Python, reading the input is mostly DuckDB (which
    releases the GIL), so the two overlap. A failure to load is raised by :func:`score`.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendlab-model")
    try:
        return pool.submit(load_model, uri, tracking_uri=tracking_uri)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its one task


def _resolved(model: LoadedModel | Future[LoadedModel]) -> LoadedModel:
    return model.result() if isinstance(model, Future) else model


def _warn_on_version_drift(uri: str, cfg: dict[str, Any], metadata: Any) -> None:
    """Warn when the model was registered under another spendlab or Python (minor) version."""
    import platform


    registered = cfg.get("spendlab_version")
    if registered and registered != spendlab.__version__:
        log.warning("%s was registered with spendlab %s; this is spendlab %s", uri, registered,
                    spendlab.__version__)
    python = str((metadata.flavors.get("python_function") or {}).get("python_version", ""))
    if python and python.split(".")[:2] != platform.python_version().split(".")[:2]:
        log.warning("%s was registered under Python %s; this is Python %s", uri, python,
                    platform.python_version())


def _declares_param(model: Any, name: str) -> bool:
    schema = model.metadata.get_params_schema()
    return schema is not None and any(p.name == name for p in schema.params)


def _registered_version(uri: str) -> tuple[str, dict[str, str]] | None:
    """(version, its tags) of a ``models:/name@alias`` or ``models:/name/version`` URI."""
    from mlflow import MlflowClient

    ref = uri.removeprefix("models:/")
    name, _, rest = ref.partition("@")
    client = MlflowClient()
    if rest:
        mv = client.get_model_version_by_alias(name, rest)
        return str(mv.version), dict(mv.tags or {})
    name, _, version = ref.partition("/")
    if not version:
        return None
    try:
        tags = dict(client.get_model_version(name, version).tags or {})
    except Exception:  # noqa: BLE001 - "latest"/stage references: the version's tags are optional here
        tags = {}
    return version, tags


def score_frame(model: LoadedModel, features: pd.DataFrame, *, threads: int | None = None) -> pd.DataFrame:
    """Predictions for one feature frame: ``prediction, lower, upper, segment, basis``.

    Users with no purchase at all up to the cutoff (refunds or zero amounts only) are outside
    what the model was trained on; they get the cold-start fallback (the mean next-period spend
    of new users in training, with its interval) and ``basis = cold_start_fallback``. ``threads``:
    the threads the model's ``predict`` may use (the pyfunc param ``n_threads``).
    """
    params = {"n_threads": int(threads)} if threads and model.takes_threads else None
    out = model.pyfunc.predict(features, params=params)
    out = out.reset_index(drop=True)
    no_purchase = features["n_transactions_total"].to_numpy() <= 0 if "n_transactions_total" in features else \
        np.zeros(len(features), dtype=bool)
    basis = np.where(no_purchase, BASIS_COLD_START, BASIS_MODEL)
    for col in ("prediction", "lower", "upper"):
        out[col] = np.where(no_purchase, model.cold_start[col], out[col].to_numpy(dtype=np.float64))
    out["basis"] = basis
    return out


def spark_udf(spark: Any, uri: str, *, result_type: str) -> Any:
    """The registered model as a Spark UDF (the local environment: spendlab is installed on the workers)."""
    import mlflow

    return mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local")
