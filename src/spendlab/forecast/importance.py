"""Permutation importance of the covariates on the validation origins.

For each validation origin the model is fitted on that origin's training set (the one time split,
:func:`spendlab.forecast.split.training_set`) and scored on the origin's users; then each covariate
group is shuffled across users (the same permutation for every column of the group, so a one-hot user
attribute moves as one) and the increase of the RMSE is recorded. Importance is the mean increase over
origins and repeats: what the validation error loses when the model cannot use that covariate.
Test origins are never read. Seeded: the same inputs give the same table.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from spendlab.features.config import at_origin
from spendlab.forecast.sampling import training_rows, weight_kwargs
from spendlab.forecast.split import training_set
from spendlab.models.registry import make_model

_USER = re.compile(r"^(user_[a-z0-9_]+?)(__.*)?$")


def covariate_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """Covariate columns grouped.

    Each ``cov_*`` column alone, a user attribute's columns together (``user_age_band__young``,
    ``user_age_band__missing`` -> ``user_age_band``).
    """
    groups: dict[str, list[str]] = {}
    for c in columns:
        if c.startswith("cov_"):
            groups[c] = [c]
        elif (m := _USER.match(c)) is not None:
            groups.setdefault(m.group(1), []).append(c)
    return groups


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2)))


def permutation_importance(X: pd.DataFrame, y: np.ndarray, predict: Any, groups: dict[str, list[str]], *,
                           n_repeats: int = 3, rng: np.random.Generator) -> dict[str, list[float]]:
    """RMSE increase per group and repeat when the group's columns are shuffled across rows of ``X``.

    ``predict`` maps a frame like ``X`` to predictions; ``X`` is never modified.
    """
    base = _rmse(y, predict(X))
    out: dict[str, list[float]] = {}
    for name, cols in groups.items():
        out[name] = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(X))
            shuffled = X.copy()
            shuffled[cols] = X[cols].to_numpy()[perm]
            out[name].append(_rmse(y, predict(shuffled)) - base)
    return out


def validation_importance(store: Any, cfg: Any, key: str, params: dict[str, Any], *, n_repeats: int = 3,
                          seed: int = 0) -> pd.DataFrame:
    """Permutation importance of every covariate for model ``key`` over ``cfg``'s validation origins.

    Parameters
    ----------
    store : FeatureStore
        Features (with covariates) and targets per cutoff.
    cfg : ExperimentConfig
        Gives the validation origins and the training origins of each.
    key, params : str, dict
        The registry model and its hyperparameters.

    Returns
    -------
    pandas.DataFrame
        ``covariate, columns, importance`` (mean RMSE increase), ``std``, ``n``, most important first.
    """
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {}
    groups: dict[str, list[str]] = {}
    for cutoff in cfg.origins("validation"):
        X_train, y_train = training_set(store, cutoff, cfg.train_origins)
        X_fit, y_fit, w_fit = training_rows(key, X_train, y_train, seed=getattr(cfg, "seed", 0),
                                            zero_fraction=getattr(cfg, "train_zero_fraction", 1.0))
        est = make_model(key, params).fit(X_fit.drop(columns=["user_id"]), y_fit, **weight_kwargs(w_fit))
        X = store.features(cutoff).drop(columns=["user_id"])
        groups = covariate_groups(list(X.columns))

        def predict(frame: pd.DataFrame, est: Any = est, cutoff: dt.date = cutoff) -> np.ndarray:
            return est.predict(at_origin(frame, cutoff))

        for name, values in permutation_importance(X, store.target(cutoff), predict, groups, n_repeats=n_repeats,
                                                   rng=rng).items():
            scores.setdefault(name, []).extend(values)
    rows = [{"covariate": n, "columns": len(groups.get(n, [])), "importance": float(np.mean(v)),
             "std": float(np.std(v)), "n": len(v)} for n, v in scores.items()]
    frame = pd.DataFrame(rows, columns=["covariate", "columns", "importance", "std", "n"])
    return frame.sort_values(["importance", "covariate"], ascending=[False, True], ignore_index=True)
