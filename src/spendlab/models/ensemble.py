"""A weighted blend of registry members.

The weights are a hyperparameter: the experiment runner chooses them by non-negative least
squares on the members' *validation-origin* predictions (:func:`nnls_weights`), then passes
them in for the test origins, so test data never influences them. Without weights the blend
is an equal-weight mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from spendlab.models.base import non_negative

DEFAULT_MEMBERS: tuple[str, ...] = ("lightgbm", "hist_gbm", "tweedie_glm", "bgnbd_gg")


def nnls_weights(preds: pd.DataFrame, y: np.ndarray, *, match_total: bool = True) -> dict[str, float]:
    """Non-negative least-squares weights of member predictions (columns) against ``y``.

    NNLS alone shrinks towards zero (on noisy zero-inflated spend the squared-error optimum
    under-forecasts totals: -17% on CDNOW validation), so with ``match_total`` the weights are then
    scaled so the blend's total equals the actual total on the same (validation) rows.
    """
    from scipy.optimize import nnls

    A = preds.to_numpy(dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    w, _ = nnls(A, target)
    if match_total:
        blended = float((A @ w).sum())
        if blended > 0:
            w = w * float(target.sum()) / blended
    return {str(c): float(v) for c, v in zip(preds.columns, w)}


class EnsembleRegressor(RegressorMixin, BaseEstimator):
    """Sum of ``weights[m] * member_m(X)`` over the registry keys in ``members``.

    Parameters
    ----------
    members
        Registry keys of the blended models.
    weights
        ``{key: weight}``; ``None`` = equal weights 1/len(members).
    member_params
        Optional ``{key: {hyperparameter: value}}`` for the members' factories.
    """

    def __init__(self, members: Sequence[str] = DEFAULT_MEMBERS, weights: Mapping[str, float] | None = None,
                 member_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.members = members
        self.weights = weights
        self.member_params = member_params

    def _weights(self) -> dict[str, float]:
        if self.weights is None:
            return {m: 1.0 / len(self.members) for m in self.members}
        unknown = set(self.weights) - set(self.members)
        if unknown:
            raise ValueError(f"ensemble weights name non-members: {sorted(unknown)}")
        return {m: float(self.weights.get(m, 0.0)) for m in self.members}

    def fit(self, X: pd.DataFrame, y: Any) -> "EnsembleRegressor":
        from spendlab.models.registry import make_model

        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if "ensemble" in self.members:
            raise ValueError("an ensemble cannot contain itself")
        weights = self._weights()
        params = dict(self.member_params or {})
        self.estimators_ = {m: make_model(m, params.get(m)).fit(X, y) for m in self.members if weights[m] > 0}
        self.weights_ = {m: w for m, w in weights.items() if w > 0}
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        total = np.zeros(len(X))
        for m, est in self.estimators_.items():
            total += self.weights_[m] * est.predict(X)
        return non_negative(total)
