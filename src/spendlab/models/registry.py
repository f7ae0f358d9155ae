"""Every forecaster under one short key: ``MODELS`` (factories) and ``SEARCH_SPACES`` (Optuna).

Adding a model = one factory, one search-space function (if it is tunable), two dict entries.
A factory takes the model's hyperparameters as keyword arguments and returns an unfitted
scikit-learn-compatible estimator; the keys are what configs, MLflow run names and reports use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sklearn.base import BaseEstimator

from spendlab.errors import ConfigError
from spendlab.models.baselines import LastPeriod, MovingAverage, PerUserLinear, SeasonalNaive, ZeroForecaster
from spendlab.models.customer_base import BgNbdGammaGamma, ClvBoostedRegressor
from spendlab.models.ensemble import DEFAULT_MEMBERS, EnsembleRegressor, SegmentStackRegressor
from spendlab.models.hurdle import HurdleRegressor
from spendlab.models.learned import make_hist_gbm, make_lightgbm, make_random_forest, make_ridge, make_tweedie_glm
from spendlab.models.statsmodels_glm import StatsmodelsTweedieGLM

if TYPE_CHECKING:
    import optuna

def make_ensemble(members: Sequence[str] = DEFAULT_MEMBERS, weights: Mapping[str, float] | None = None,
                  member_params: Mapping[str, Mapping[str, Any]] | None = None) -> EnsembleRegressor:
    """Make the ``ensemble`` registry entry.

    An :class:`EnsembleRegressor` over registry ``members`` (each built by :func:`make_model` with
    ``member_params[key]``), blended with ``weights``.
    """
    if not members:
        raise ValueError("an ensemble needs at least one member")
    if set(members) & COMBINERS:
        raise ValueError("an ensemble's members are single models")
    params = dict(member_params or {})
    return EnsembleRegressor(estimators=[(m, make_model(m, params.get(m))) for m in members], weights=weights)


def make_stack(members: Sequence[str] = DEFAULT_MEMBERS, weights: Mapping[str, Mapping[str, float]] | None = None,
               member_params: Mapping[str, Mapping[str, Any]] | None = None,
               active_window: int = 3) -> SegmentStackRegressor:
    """Make the ``stack`` registry entry.

    A :class:`SegmentStackRegressor` over registry ``members`` with per-segment ``weights`` (the
    meta-learner, fitted on validation origins by the experiment).
    """
    if not members:
        raise ValueError("a stack needs at least one member")
    if set(members) & COMBINERS:
        raise ValueError("a stack's members are single models")
    params = dict(member_params or {})
    return SegmentStackRegressor(estimators=[(m, make_model(m, params.get(m))) for m in members], weights=weights,
                                 active_window=active_window)


def make_bgnbd_seasonal(penalizer: float = 0.0, horizon_days: float = 30.4,
                        fit_origin: str = "latest") -> BgNbdGammaGamma:
    """Make the ``bgnbd_seasonal`` registry entry.

    ``bgnbd_gg`` with a seasonal level learned from the training origins of the year before the cutoff
    (no-op with less than a year of them).
    """
    return BgNbdGammaGamma(penalizer=penalizer, horizon_days=horizon_days, fit_origin=fit_origin, seasonal=True)


MODELS: dict[str, Callable[..., BaseEstimator]] = {
    "zero": ZeroForecaster,
    "last_period": LastPeriod,
    "moving_average": MovingAverage,
    "seasonal_naive": SeasonalNaive,
    "per_user_linear": PerUserLinear,
    "ridge": make_ridge,
    "tweedie_glm": make_tweedie_glm,
    "sm_tweedie_glm": StatsmodelsTweedieGLM,
    "random_forest": make_random_forest,
    "hist_gbm": make_hist_gbm,
    "lightgbm": make_lightgbm,
    "bgnbd_gg": BgNbdGammaGamma,
    "bgnbd_seasonal": make_bgnbd_seasonal,
    "lightgbm_clv": ClvBoostedRegressor,
    "hurdle": HurdleRegressor,
    "ensemble": make_ensemble,
    "stack": make_stack,
}

#: Registry entries that combine other entries' backtests: the experiment composes them from their
#: members' predictions (``forecast.blend``) instead of backtesting them itself.
COMBINERS: frozenset[str] = frozenset({"ensemble", "stack"})

#: Models fitted on the pooled training rows that take ``sample_weight``: the experiment's
#: ``train_zero_fraction`` thins their zero-target rows (``forecast.sampling``). The baselines and the
#: customer-base models read each user's own history and always get every row.
WEIGHTED_FIT: frozenset[str] = frozenset({"ridge", "tweedie_glm", "sm_tweedie_glm", "random_forest", "hist_gbm",
                                          "lightgbm", "lightgbm_clv", "hurdle"})

# Reference rows: never chosen as champion (kept to show what the learned models beat).
BASELINES: frozenset[str] = frozenset({"zero", "last_period", "moving_average", "seasonal_naive", "per_user_linear"})

#: Peers: what a user would pick instead of spendlab's learned models -- the baselines and the
#: off-the-shelf customer-base model. Leaderboards report every model's lead over the best of them.
PEERS: frozenset[str] = BASELINES | {"bgnbd_gg"}

#: Complexity order (lower = simpler: fewer fitted parameters, fewer moving parts). When the validation
#: RMSE difference to the best model lies inside its bootstrap interval, the simpler model is champion.
COMPLEXITY: dict[str, int] = {
    "zero": 0, "last_period": 1, "moving_average": 1, "seasonal_naive": 1, "per_user_linear": 2,
    "bgnbd_gg": 3, "bgnbd_seasonal": 4, "ridge": 4, "tweedie_glm": 4, "sm_tweedie_glm": 4,
    "random_forest": 5, "hist_gbm": 5, "lightgbm": 5, "hurdle": 6, "lightgbm_clv": 6, "ensemble": 7,
    "stack": 8,
}


#: CPU seconds of each model's CDNOW backtest (11 origins, fits summed; idle profile of 2026-12-07, after
#: hist_gbm's learning rate 0.05; hurdle's scaled by its 2-fold calibration's measured -43%, random_forest's by
#: max_features 0.2's -28%). A scheduling hint only: the experiment starts the costliest backtests first, so
#: the last one to start is short and both threads finish together. Never changes a number.
FIT_COST: dict[str, float] = {
    "zero": 0, "last_period": 0, "moving_average": 0, "seasonal_naive": 0, "per_user_linear": 0,
    "bgnbd_gg": 2, "bgnbd_seasonal": 4, "ridge": 7, "tweedie_glm": 11, "sm_tweedie_glm": 12, "lightgbm": 31,
    "random_forest": 29, "hurdle": 42, "lightgbm_clv": 45, "hist_gbm": 52,
}


def fit_cost(key: str) -> float:
    """Return the expected backtest CPU of ``key`` (:data:`FIT_COST`; unlisted: above every listed one)."""
    return FIT_COST.get(key, max(FIT_COST.values(), default=0.0) + 1.0)


def complexity(key: str) -> int:
    """Rank of ``key`` in :data:`COMPLEXITY` (unlisted models rank as the most complex)."""
    return COMPLEXITY.get(key, max(COMPLEXITY.values()) + 1)


def _ridge_space(trial: optuna.trial.Trial) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("alpha", 1e-2, 1e3, log=True)}


def _tweedie_glm_space(trial: optuna.trial.Trial) -> dict[str, Any]:
    return {"power": trial.suggest_float("power", 1.05, 1.95),
            "alpha": trial.suggest_float("alpha", 1e-5, 1.0, log=True)}


def _random_forest_space(trial: optuna.trial.Trial) -> dict[str, Any]:
    return {"n_estimators": trial.suggest_int("n_estimators", 30, 210, step=30),  # holds the default, 30
            "max_depth": trial.suggest_int("max_depth", 4, 14),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 200, log=True),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0)}


def _hist_gbm_space(trial: optuna.trial.Trial) -> dict[str, Any]:
    return {"learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_iter": trial.suggest_int("max_iter", 60, 600, step=60),  # holds the default, 60
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 7, 63),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 300, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True)}


def _lightgbm_space(trial: optuna.trial.Trial) -> dict[str, Any]:
    return {"tweedie_variance_power": trial.suggest_float("tweedie_variance_power", 1.05, 1.9),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.15, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True)}


SEARCH_SPACES: dict[str, Callable[[optuna.trial.Trial], dict[str, Any]]] = {
    "ridge": _ridge_space,
    "tweedie_glm": _tweedie_glm_space,
    "random_forest": _random_forest_space,
    "hist_gbm": _hist_gbm_space,
    "lightgbm": _lightgbm_space,
}


def make_model(key: str, params: Mapping[str, Any] | None = None) -> BaseEstimator:
    """Make a fresh unfitted estimator for registry ``key`` with ``params`` as hyperparameters."""
    if key not in MODELS:
        raise ConfigError(f"unknown model {key!r}; known models: {', '.join(MODELS)}")
    try:
        return MODELS[key](**dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"model {key!r}: invalid hyperparameters {dict(params or {})}: {exc}") from exc


def model_params(estimator: BaseEstimator) -> dict[str, Any]:
    """Flat, loggable hyperparameters of an estimator (nested estimators expanded, objects named)."""
    flat: dict[str, Any] = {}
    for k, v in estimator.get_params(deep=True).items():
        flat[k] = v if isinstance(v, (int, float, str, bool, type(None))) else type(v).__name__ if hasattr(
            v, "get_params") else repr(v)
    return flat


def factory_defaults(key: str) -> dict[str, Any]:
    """Keyword defaults of registry entry ``key``'s factory (what an unset hyperparameter becomes)."""
    import inspect

    if key not in MODELS:
        raise ConfigError(f"unknown model {key!r}; known models: {', '.join(MODELS)}")
    sig = inspect.signature(MODELS[key])
    return {n: p.default for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def with_horizon(key: str, params: Mapping[str, Any], horizon: int) -> dict[str, Any]:
    """Return ``params`` with the experiment's ``horizon`` for a model whose factory takes one.

    A model told the target's window predicts the target's quantity (the baselines sum their per-period
    forecast over it). Other models' params come back unchanged.

    Raises
    ------
    ConfigError
        ``params`` names another horizon than the experiment's.
    """
    out = dict(params)
    if "horizon" not in factory_defaults(key):
        return out
    if int(out.get("horizon", horizon)) != horizon:
        raise ConfigError(f"params.{key}.horizon is {out['horizon']}, but the experiment's horizon is {horizon}: "
                          "leave it unset (the experiment's applies)")
    out["horizon"] = horizon
    return out


def resolved_params(key: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve every hyperparameter of ``key`` as :func:`make_model` uses it.

    The factory's defaults overridden by ``params`` (registry-level names; for ``ensemble`` the
    members' own params resolved too), so a recorded set rebuilds the same estimator even if a default
    changes later.
    """
    out = {**factory_defaults(key), **dict(params or {})}
    if key in COMBINERS:
        members = list(out.get("members") or DEFAULT_MEMBERS)
        given = dict(out.get("member_params") or {})
        out["members"] = members
        out["member_params"] = {m: resolved_params(m, given.get(m)) for m in members}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
