"""One frozen plan per job, resolved at the edge before any MLflow run opens.

A plan holds everything a job decides from its configuration files: the validated experiment, the resolved
feature set, and for every model the hyperparameters it runs with and where each came from (the registry's
default, the experiment YAML, or a tuned-params file). Planning reads the YAML and the tuned files; executing
a plan reads only the plan's data inputs (the dataset it names). The plan is logged verbatim as the run's
``plan.json``, so a run records what it was asked to do before it does it.
"""
# long: every job's plan in one module, so what "resolved at the edge" means (and checks) reads in one place

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from spendlab.config import ReaderConfig, UserTableSpec, load_yaml, parse_config
from spendlab.errors import ConfigError
from spendlab.features import FeatureConfig
from spendlab.features.config import check_covariates
from spendlab.jobs.features import load_feature_config
from spendlab.jobs.tuned_params import TUNED_DIR, tuned_fold_params, tuned_params, tuned_params_path

if TYPE_CHECKING:  # the experiment and model plans import both when they run: a scoring plan needs neither
    from spendlab.forecast.protocol import ExperimentConfig

#: Where a hyperparameter's value came from.
Source = Literal["default", "experiment", "tuned"]


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Freeze a copy of ``values`` as a read-only view (a plan cannot be changed after it is made)."""
    return MappingProxyType(dict(values))


def _jsonable(value: Any) -> Any:
    """``value`` with read-only mappings, tuples, dates and paths turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k.isoformat() if isinstance(k, dt.date) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, Path)):
        return str(value)
    return value


@dataclass(frozen=True)
class ModelPlan:
    """One model of an experiment, with the hyperparameters it runs with.

    Attributes
    ----------
    key : str
        The registry key.
    params : Mapping[str, Any]
        The hyperparameters handed to the registry factory (the rest keep the factory's defaults).
    sources : Mapping[str, str]
        For every resolved hyperparameter, where its value came from: ``default``, ``experiment``
        or ``tuned``.
    fold_params : Mapping[datetime.date, Mapping[str, Any]]
        Tuned settings chosen without each validation origin (cross-fitting); empty when none.
    tuned_file : pathlib.Path or None
        The tuned-params file the parameters were read from, if any.
    """

    key: str
    params: Mapping[str, Any]
    sources: Mapping[str, str]
    fold_params: Mapping[dt.date, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    tuned_file: Path | None = None

    @property
    def tuned(self) -> bool:
        """Whether the parameters come from a tuned-params file."""
        return self.tuned_file is not None

    def resolved(self) -> dict[str, Any]:
        """Every hyperparameter as the factory uses it (defaults filled in)."""
        from spendlab.models.registry import resolved_params  # defer: scikit-learn

        return resolved_params(self.key, self.params)

    def to_dict(self) -> dict[str, Any]:
        """Return the model's plan as JSON-ready data."""
        return {"key": self.key, "params": _jsonable(self.params), "resolved": _jsonable(self.resolved()),
                "sources": dict(self.sources), "fold_params": _jsonable(self.fold_params),
                "tuned_file": None if self.tuned_file is None else str(self.tuned_file)}


@dataclass(frozen=True)
class ExperimentPlan:
    """What an experiment run does, decided before it starts.

    Attributes
    ----------
    experiment : ExperimentConfig
        The validated experiment (its ``dataset`` and ``reader`` are the plan's data inputs).
    features : FeatureConfig
        The resolved feature set (the experiment's feature YAML, or the defaults).
    keys : tuple of str
        The models whose results are reported, in order.
    models : Mapping[str, ModelPlan]
        Every model to backtest (the reported single models, then ensemble members not asked for).
    experiment_path : pathlib.Path or None
        The YAML the experiment was read from, recorded as a tag.
    """

    experiment: ExperimentConfig
    features: FeatureConfig
    keys: tuple[str, ...]
    models: Mapping[str, ModelPlan]
    experiment_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data (what ``plan.json`` holds)."""
        return {"kind": "experiment", "experiment": self.experiment.model_dump(mode="json"),
                "experiment_path": None if self.experiment_path is None else str(self.experiment_path),
                "features": self.features.model_dump(mode="json"), "keys": list(self.keys),
                "models": {k: m.to_dict() for k, m in self.models.items()}}

    def to_json(self) -> str:
        """``plan.json``'s text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML.

    Parameters
    ----------
    path : str or pathlib.Path
        The experiment file.

    Returns
    -------
    ExperimentConfig
        The validated experiment.

    Raises
    ------
    ConfigError
        The file is missing, or has unknown keys or bad origins (the message names the file).
    """
    from spendlab.forecast.protocol import ExperimentConfig  # defer: scikit-learn

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: experiment file not found")
    return parse_config(ExperimentConfig, load_yaml(p), str(p))


def model_keys(cfg: ExperimentConfig, models: list[str] | None) -> list[str]:
    """Pick the models to report: ``models`` if given (checked against the registry), else the experiment's.

    Raises
    ------
    ConfigError
        An unknown key, or no model at all.
    """
    from spendlab.models.registry import MODELS  # defer: scikit-learn

    keys = list(models) if models else cfg.model_keys()
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise ConfigError(f"--models: unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    if not keys:
        raise ConfigError("no models to run")
    return list(dict.fromkeys(keys))


def plan_model(cfg: ExperimentConfig, key: str, tuned_dir: Path = TUNED_DIR) -> ModelPlan:
    """Resolve one model's parameters.

    A tuned-params file replaces the experiment's ``params``, which override the registry defaults.

    Parameters
    ----------
    cfg : ExperimentConfig
        The experiment (its name names the tuned file).
    key : str
        The registry key.
    tuned_dir : pathlib.Path
        Where ``spendlab tune`` wrote its files.

    Returns
    -------
    ModelPlan
        The parameters, their sources, and the tuned per-origin settings if any.
    """
    from spendlab.models.registry import factory_defaults, with_horizon  # defer: scikit-learn

    tuned = tuned_params(cfg.name, key, tuned_dir)
    given = with_horizon(key, dict(tuned) if tuned is not None else dict(cfg.params.get(key, {})), cfg.horizon)
    origin: Source = "tuned" if tuned is not None else "experiment"
    sources = {name: ("experiment" if name == "horizon" else origin if name in given else "default")
               for name in {**factory_defaults(key), **given}}
    if tuned is None:
        return ModelPlan(key, _frozen(given), _frozen(sources))
    folds = tuned_fold_params(cfg, key, tuned_dir)
    return ModelPlan(key, _frozen(given), _frozen(sources),
                     MappingProxyType({c: _frozen(p) for c, p in folds.items()}),
                     tuned_params_path(cfg.name, key, tuned_dir))


def plan_experiment(cfg: ExperimentConfig, *, experiment_path: Path | None = None, models: list[str] | None = None,
                    tuned_dir: Path = TUNED_DIR, check_sources: bool = True) -> ExperimentPlan:
    """Resolve an experiment into its plan: feature set, models and every model's parameters.

    Parameters
    ----------
    cfg : ExperimentConfig
        The validated experiment.
    experiment_path : pathlib.Path, optional
        The YAML it was read from (recorded, not read again).
    models : list of str, optional
        Overrides the experiment's model list.
    tuned_dir : pathlib.Path
        Where tuned-params files are read from.
    check_sources : bool
        Check the covariates against the experiment's reader and user table; False when the caller
        brings transactions read otherwise (the Python API's ``data``).

    Returns
    -------
    ExperimentPlan
        The frozen plan; :func:`spendlab.jobs.experiment.execute` runs it.

    Raises
    ------
    ConfigError
        Unknown models, an unreadable feature or tuned-params file, or covariates that read what the
        experiment does not declare (:func:`~spendlab.features.config.check_covariates`).
    """
    from spendlab.models.registry import COMBINERS  # defer: scikit-learn

    keys = model_keys(cfg, models)
    needed = [k for k in keys if k not in COMBINERS]
    if COMBINERS & set(keys):
        needed += [m for m in cfg.ensemble_members if m not in needed]
    features = load_feature_config(cfg.features) if cfg.features is not None else FeatureConfig()
    if check_sources:
        check_covariates(features, cfg.reader, fmt=cfg.dataset.format, users=cfg.dataset.users,
                         where=str(experiment_path) if experiment_path is not None else cfg.name)
    return ExperimentPlan(experiment=cfg, features=features, keys=tuple(keys),
                          models=MappingProxyType({k: plan_model(cfg, k, tuned_dir) for k in needed}),
                          experiment_path=None if experiment_path is None else Path(experiment_path))


@dataclass(frozen=True)
class TunePlan:
    """What a tuning study does, decided before it starts.

    Attributes
    ----------
    experiment : ExperimentConfig
        The experiment whose validation origins are the objective.
    features : FeatureConfig
        The resolved feature set.
    model_key : str
        The model tuned (it has a search space).
    base_params : Mapping[str, Any]
        The experiment's ``params`` for the model: every trial starts from them.
    baseline_params : Mapping[str, Any]
        The current settings within the search space: the first trial of a new study.
    n_trials, timeout, jobs
        The study's budget and parallelism.
    tuned_dir : pathlib.Path
        Where the best parameters are written.
    """

    experiment: ExperimentConfig
    features: FeatureConfig
    model_key: str
    base_params: Mapping[str, Any]
    baseline_params: Mapping[str, Any]
    n_trials: int
    timeout: float | None = None
    jobs: int = 1
    tuned_dir: Path = TUNED_DIR

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data (what ``plan.json`` holds)."""
        return {"kind": "tune", "experiment": self.experiment.model_dump(mode="json"),
                "features": self.features.model_dump(mode="json"), "model": self.model_key,
                "base_params": _jsonable(self.base_params), "baseline_params": _jsonable(self.baseline_params),
                "n_trials": self.n_trials, "timeout": self.timeout, "jobs": self.jobs,
                "tuned_dir": str(self.tuned_dir)}

    def to_json(self) -> str:
        """``plan.json``'s text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def plan_tune(cfg: ExperimentConfig, *, model_key: str, n_trials: int, timeout: float | None = None, jobs: int = 1,
              tuned_dir: Path = TUNED_DIR) -> TunePlan:
    """Resolve a tuning study of ``model_key`` on experiment ``cfg``.

    Returns
    -------
    TunePlan
        The frozen plan; :func:`spendlab.jobs.tune.execute_tune` runs it.

    Raises
    ------
    ConfigError
        The model has no search space, the feature file cannot be read, or its covariates read what the
        experiment does not declare.
    """
    from spendlab.models.registry import SEARCH_SPACES, factory_defaults  # defer: scikit-learn

    if model_key not in SEARCH_SPACES:
        raise ConfigError(f"model {model_key!r} has no search space; tunable: {', '.join(SEARCH_SPACES)}")
    base = dict(cfg.params.get(model_key, {}))
    baseline = in_space(SEARCH_SPACES[model_key], {**factory_defaults(model_key), **base})
    features = load_feature_config(cfg.features) if cfg.features is not None else FeatureConfig()
    check_covariates(features, cfg.reader, fmt=cfg.dataset.format, users=cfg.dataset.users, where=cfg.name)
    return TunePlan(experiment=cfg, features=features, model_key=model_key, base_params=_frozen(base),
                    baseline_params=_frozen(baseline), n_trials=n_trials, timeout=timeout, jobs=jobs,
                    tuned_dir=Path(tuned_dir))


def in_space(space: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` restricted to a search space's parameters, or ``{}`` when they do not cover it all.

    ``space`` is a registry search space (``space(trial) -> params``); ``values`` the candidate values
    (the factory's defaults overridden by the experiment's params).
    """
    import optuna

    trial = optuna.trial.FixedTrial(values)
    try:
        space(trial)
    except ValueError:  # a space parameter has no default value
        return {}
    return dict(trial.params)


@dataclass(frozen=True)
class ScorePlan:
    """What a batch-scoring run does, decided before it starts.

    Attributes
    ----------
    input : str
        The transactions to score (a file, directory, glob or ``builtin:cdnow``): the data input.
    format : str
        The reader format.
    reader : ReaderConfig
        The reader and validation policy.
    model_uri : str
        The registered model (``models:/...``) or a model directory.
    out : pathlib.Path
        The Parquet file written.
    as_of : datetime.date or None
        The cutoff; None = the end of the latest complete period in the data.
    chunk_users : int
        Users scored per chunk (bounds memory).
    users : UserTableSpec or None
        The user attribute table the model's covariates read (a config's ``users:`` section).
    """

    input: str
    format: str
    reader: ReaderConfig
    model_uri: str
    out: Path
    as_of: dt.date | None = None
    chunk_users: int = 250_000
    users: UserTableSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return {"kind": "score", "input": self.input, "format": self.format,
                "reader": self.reader.model_dump(mode="json"), "model_uri": self.model_uri, "out": str(self.out),
                "as_of": None if self.as_of is None else self.as_of.isoformat(), "chunk_users": self.chunk_users,
                "users": None if self.users is None else self.users.model_dump(mode="json")}


def plan_score(input: str, *, out: Path, model_uri: str, format: str = "generic", reader: ReaderConfig | None = None,
               as_of: str | dt.date | None = None, chunk_users: int = 250_000,
               users: UserTableSpec | None = None) -> ScorePlan:
    """Resolve a scoring run: the cutoff parsed, the reader policy fixed.

    Parameters
    ----------
    input : str
        The transactions to score.
    out : pathlib.Path
        The Parquet file to write.
    model_uri : str
        The model to score with.
    format : str
        The reader format.
    reader : ReaderConfig, optional
        The reader policy (a config file's ``reader:`` section); defaults when None.
    as_of : str or datetime.date, optional
        The cutoff, ``YYYY-MM-DD``.
    chunk_users : int
        Users per scoring chunk.
    users : UserTableSpec, optional
        The user attribute table (for a model whose covariates read one).

    Returns
    -------
    ScorePlan
        The frozen plan :func:`spendlab.jobs.score.execute_score` runs.

    Raises
    ------
    ConfigError
        ``as_of`` is not a date.
    """
    cutoff = as_of
    if isinstance(as_of, str):
        try:
            cutoff = dt.date.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    return ScorePlan(input=str(input), format=format, reader=reader or ReaderConfig(), model_uri=model_uri,
                     out=Path(out), as_of=cutoff, chunk_users=chunk_users, users=users)  # type: ignore[arg-type]
