"""Loading a registered spendlab model and predicting with it (the local and the Spark scorer share this)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import spendlab
from spendlab.calendar import Freq
from spendlab.errors import SpendlabError
from spendlab.features import FeatureConfig
from spendlab.forecast.cold_start import BASIS_COLD_START, BASIS_MODEL  # noqa: F401 - re-exported
from spendlab.threads import on_a_thread
from spendlab.tracking import runs as tracking
from spendlab.tracking.trust import UntrustedModelError

# MLflow, the model code and the registry are imported where a model is loaded (a thread of its own
# when scoring: load_model_async), not by importing this module.

log = logging.getLogger(__name__)


DEFAULT_MODEL_URI = "models:/spendlab-next-month@champion"


@dataclass
class LoadedModel:
    """A verified spendlab pyfunc model with the metadata scoring needs."""

    pyfunc: Any
    uri: str
    version: str
    freq: Freq
    feature_config: Any
    feature_names: list[str]
    #: The signature declares the ``n_threads`` param (models registered before it ignore params).
    takes_threads: bool = False
    #: The signature declares the ``as_of`` param: the cutoff reaches models that read it (``bgnbd_seasonal``).
    takes_as_of: bool = False
    #: The registered version's ``dataset_hash`` tag: the data it was trained on ("" when unknown).
    dataset_hash: str = ""
    #: The model's lineage: registered name (or the directory), training cutoff, interval level.
    name: str = ""
    train_cutoff: str = ""
    interval_level: float = 0.8
    #: The training population's profile logged at promotion (None for models promoted before it).
    reference: dict[str, Any] | None = None
    #: Periods the forecast covers (the experiment's ``horizon``; 1 for models registered before it was recorded).
    horizon: int = 1
    #: The columns the signature requires of an input frame (empty when the model has no signature).
    input_columns: list[str] = field(default_factory=list)
    #: Recent periods a user needs spend in to be ``active`` (the candidate's segments).
    active_window: int = 3


@dataclass(frozen=True)
class ModelSpec:
    """What a model's features are built from: its :class:`LoadedModel` fields the feature build reads.

    Read from the verified model directory (``MLmodel``'s config and signature, ``candidate.json``)
    before the estimator is unpickled, so scoring can start the features while it loads
    (:func:`load_model_async`).
    """

    freq: Freq
    feature_config: Any
    horizon: int
    #: :func:`scoring_columns` of the model.
    columns: tuple[str, ...]


def model_spec(model: LoadedModel) -> ModelSpec:
    """Return the :class:`ModelSpec` of a loaded model."""
    return ModelSpec(model.freq, model.feature_config, model.horizon, tuple(scoring_columns(model)))


def load_model(uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str | None = None,
               on_spec: Callable[[ModelSpec], None] | None = None) -> LoadedModel:
    """Verify, then load a spendlab model: a registered ``models:/`` URI or a local model directory.

    Nothing is imported or unpickled before :func:`~spendlab.tracking.registry.verify_model_dir` has
    checked the marker, the flavour and the SHA-256 of every file, and a local directory has been
    vouched for from outside (a registered version's digest or an HMAC signature,
    :mod:`spendlab.tracking.trust`). A registry look-up that fails creates no tracking store.
    ``on_spec`` is called with the model's :class:`ModelSpec` once the directory is verified, before
    the estimator is unpickled; the loaded model's own spec must equal it (else the load fails).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from spendlab.tracking.registry import verified_model_dir  # defer: mlflow (on the model's thread when scoring)

    spec = None
    try:
        if uri.startswith("models:/") or ":/" in uri:
            tracking.configure(tracking_uri, must_exist=True)
        with verified_model_dir(uri, tracking_uri=tracking_uri) as (local, version, _):
            extra = _model_extras(local)
            if on_spec is not None:
                spec = _directory_spec(local, extra["active_window"])
                on_spec(spec)
            # MLflow's own requirement check reads the metadata of every installed distribution (1.1 s);
            # a spendlab model requires only spendlab, which _warn_on_version_drift checks directly.
            model = mlflow.pyfunc.load_model(str(local), suppress_warnings=True)
    except MlflowException as exc:
        raise SpendlabError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None
    except UntrustedModelError:
        raise  # names the directory already
    except SpendlabError as exc:
        msg = str(exc)
        raise SpendlabError(msg if msg.startswith("cannot load model") else f"cannot load model {uri}: {msg}") from None
    cfg = model.model_config or {}
    _warn_on_version_drift(uri, cfg, model.metadata)
    tags: dict[str, str] = {}  # the registered version's tags (its training data's hash), when registered
    if uri.startswith("models:/"):
        tags = (_registered_version(uri) or (version, {}))[1]
    loaded = LoadedModel(
        pyfunc=model,
        uri=uri,
        version=version,
        freq=cfg["freq"],
        feature_config=FeatureConfig.model_validate(cfg["feature_config"]),
        feature_names=list(cfg["feature_names"]),
        takes_threads=_declares_param(model, "n_threads"),
        takes_as_of=_declares_param(model, "as_of"),
        dataset_hash=str(tags.get("dataset_hash", cfg.get("dataset_hash", ""))),
        name=model_name(uri), train_cutoff=str(cfg.get("train_cutoff", "")), horizon=int(cfg.get("horizon", 1)),
        input_columns=_input_columns(model.metadata),
        **extra,
    )
    if spec is not None and model_spec(loaded) != spec:
        raise SpendlabError(f"cannot load model {uri}: its loaded metadata differ from its MLmodel file's")
    return loaded


def _directory_spec(local: Any, active_window: int) -> ModelSpec:
    """Read the :class:`ModelSpec` of a verified model directory from its ``MLmodel`` file (YAML; nothing executed)."""
    from pathlib import Path

    from mlflow.models import Model

    meta = Model.load(str(Path(local) / "MLmodel"))
    cfg = (meta.flavors.get("python_function") or {}).get("config") or {}
    columns = _scoring_columns(_input_columns(meta), list(cfg["feature_names"]), active_window)
    return ModelSpec(cfg["freq"], FeatureConfig.model_validate(cfg["feature_config"]), int(cfg.get("horizon", 1)),
                     tuple(columns))


#: Feature columns the scoring job reads beside the model's features: the segments' (``n_periods``,
#: ``spend_lag*``), the cold-start flag's and the as-of warning's.
SCORING_EXTRA_COLUMNS: tuple[str, ...] = ("n_periods", "n_transactions_total", "days_since_last_purchase")


def scoring_columns(model: LoadedModel) -> list[str]:
    """Return the feature columns scoring with ``model`` builds: what it reads, not every feature.

    The union of the signature's input columns (a registered spendlab model declares the frame it was
    registered with), the estimator's feature names (every member's, for a combination), the columns of
    the segments (``n_periods``, ``spend_lag1`` .. ``spend_lag{active_window}``), of the cold-start flag
    and of the as-of warning. ``user_id`` is always built.
    """
    return _scoring_columns(model.input_columns, model.feature_names, model.active_window)


def _scoring_columns(input_columns: list[str], feature_names: list[str], active_window: int) -> list[str]:
    lags = [f"spend_lag{i}" for i in range(1, active_window + 1)]
    wanted = [*input_columns, *feature_names, *SCORING_EXTRA_COLUMNS, *lags]
    return [c for c in dict.fromkeys(wanted) if c != "user_id"]


def _input_columns(meta: Any) -> list[str]:
    """Return the column names of a model's input schema (its ``MLmodel`` metadata; empty without a signature)."""
    schema = meta.get_input_schema()
    return [] if schema is None or not schema.has_input_names() else list(schema.input_names())


def model_name(uri: str) -> str:
    """Return the registered model's name in a ``models:/name@alias`` or ``models:/name/version`` URI, else the URI."""
    if not uri.startswith("models:/"):
        return uri
    return uri.removeprefix("models:/").partition("@")[0].partition("/")[0]


def _model_extras(local: Any) -> dict[str, Any]:
    """Return the interval level and active window (``candidate.json``) and reference profile of a model directory."""
    import json
    from pathlib import Path

    art = Path(local) / "artifacts"
    cand = json.loads((art / "candidate.json").read_text(encoding="utf-8"))
    ref = art / "reference.json"
    segments = (cand.get("experiment") or {}).get("segments") or {}
    return {"interval_level": float(cand["calibration"].get("level", 0.8)),
            "reference": json.loads(ref.read_text(encoding="utf-8")) if ref.is_file() else None,
            "active_window": int(segments.get("active_window", 3))}


class ModelLoading(Future[LoadedModel]):
    """A model loading on a thread (:func:`load_model_async`): the future of the :class:`LoadedModel`.

    ``spec`` is the future of its :class:`ModelSpec`, set as soon as the directory is verified (or
    with the load's error, when it fails before that).
    """

    def __init__(self) -> None:
        super().__init__()
        self.spec: Future[ModelSpec] = Future()


def load_model_async(uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str | None = None) -> ModelLoading:
    """:func:`load_model` on a background thread, for :func:`score` to await once it needs the model.

    Loading is mostly imports, the tracking store's start and unpickling in Python, reading the input
    and building the features mostly DuckDB (which releases the GIL), so they overlap: the features
    need only the model's :class:`ModelSpec` (``.spec`` of the returned future), known before the
    estimator is unpickled. A failure to load is raised where either is read.
    """
    loading = ModelLoading()
    done = on_a_thread("spendlab-model", _load_into, loading, uri, tracking_uri)
    done.add_done_callback(lambda f: None if f.exception() is None else _fail(loading, f.exception()))
    return loading


def _load_into(loading: ModelLoading, uri: str, tracking_uri: str | None) -> None:
    model = load_model(uri, tracking_uri=tracking_uri, on_spec=loading.spec.set_result)
    if not loading.spec.done():
        loading.spec.set_result(model_spec(model))
    loading.set_result(model)


def _fail(loading: ModelLoading, exc: BaseException | None) -> None:
    for future in (loading.spec, loading):
        if not future.done():
            future.set_exception(exc)


def resolve_model(model: LoadedModel | Future[LoadedModel]) -> LoadedModel:
    """Get the loaded model, waiting for it when it is still loading (:func:`load_model_async`)."""
    return model.result() if isinstance(model, Future) else model


def resolve_spec(model: LoadedModel | Future[LoadedModel]) -> ModelSpec:
    """Get the model's :class:`ModelSpec`, waiting only for the verified directory when it is loading."""
    if isinstance(model, ModelLoading):
        return model.spec.result()
    return model_spec(resolve_model(model))


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
    except Exception:
        tags = {}
    return version, tags


def score_frame(model: LoadedModel, features: pd.DataFrame, *, threads: int | None = None,
                as_of: dt.date | None = None) -> pd.DataFrame:
    """Score one feature frame: the pyfunc is the whole scorer.

    Returns the model's output (:data:`~spendlab.tracking.pyfunc_model.OUTPUT_COLUMNS`, keyed by
    ``user_id``). ``threads``: the pyfunc param ``n_threads``; ``as_of``: the features' cutoff (the
    pyfunc param ``as_of``).
    """
    params = predict_params(model, threads=threads, as_of=as_of)
    return model.pyfunc.predict(features, params=params or None).reset_index(drop=True)


def predict_params(model: LoadedModel, *, threads: int | None = None, as_of: dt.date | None = None) -> dict[str, Any]:
    """Return the pyfunc params the model's signature declares: ``n_threads`` and ``as_of`` (ISO date)."""
    params: dict[str, Any] = {}
    if threads and model.takes_threads:
        params["n_threads"] = int(threads)
    if as_of is not None and model.takes_as_of:
        params["as_of"] = as_of.isoformat()
    return params


def spark_udf(spark: Any, model_dir: str, *, result_type: str, params: dict[str, Any] | None = None) -> Any:
    """Wrap a verified model directory as a Spark UDF (the local environment: spendlab is installed on the workers)."""
    import mlflow

    from spendlab.tracking.registry import verify_model_dir  # defer: mlflow

    verify_model_dir(model_dir)
    return mlflow.pyfunc.spark_udf(spark, str(model_dir), result_type=result_type, env_manager="local",
                                   params=params or None)
