"""A weighted blend of registry members.

The weights are a hyperparameter: the experiment runner chooses them by least squares under
convexity (non-negative, summing to 1) on the members' *validation-origin* predictions
(:func:`convex_weights`, cross-fitted across origins by :func:`spendlab.forecast.blend.blend`), then
passes them in for the test origins, so test data never influences them. Without weights the blend
is an equal-weight mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
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
    return {str(c): float(v) for c, v in zip(preds.columns, w, strict=True)}


def convex_weights(preds: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Least-squares weights of member predictions (columns) against ``y``, non-negative and summing to 1.

    Why convex rather than NNLS scaled to a total: NNLS shrinks towards zero on noisy spend, and
    scaling its weights to match the fitting rows' total carries those rows' level (a seasonal peak)
    into other periods. A convex blend keeps its members' level, each of which is learned from data
    before its own cutoff. Solved exactly by enumerating the active sets (members are few); ties go to
    the first solution in column order, so the result is deterministic.
    """
    A = preds.to_numpy(dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    k = A.shape[1]
    names = [str(c) for c in preds.columns]
    if k == 0:
        raise ValueError("convex_weights needs at least one member")
    if k > 12:
        raise ValueError("convex_weights enumerates active sets; more than 12 members is too many")
    G, g = A.T @ A, A.T @ b
    best_w, best_loss = np.full(k, 1.0 / k), np.inf
    for mask in range(1, 2 ** k):
        S = [j for j in range(k) if mask >> j & 1]
        n = len(S)
        kkt = np.zeros((n + 1, n + 1))
        kkt[:n, :n] = G[np.ix_(S, S)]
        kkt[:n, n] = kkt[n, :n] = 1.0
        rhs = np.concatenate([g[S], [1.0]])
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]
        if (sol < -1e-12).any():
            continue
        w = np.zeros(k)
        w[S] = np.clip(sol, 0.0, None)
        w /= w.sum()
        loss = float(w @ G @ w - 2.0 * g @ w)
        if loss < best_loss - 1e-9 * max(1.0, abs(best_loss) if np.isfinite(best_loss) else 1.0):
            best_w, best_loss = w, loss
    return {c: float(v) for c, v in zip(names, best_w, strict=True)}


class EnsembleRegressor(RegressorMixin, BaseEstimator):
    """Sum of ``weights[name] * estimator(X)`` over ``estimators``, as scikit-learn's ``VotingRegressor``
    takes its members: a list of ``(name, unfitted estimator)`` pairs (the registry builds them from
    keys: :func:`spendlab.models.registry.make_ensemble`).

    Parameters
    ----------
    estimators
        ``[(name, estimator)]``; the names are registry keys in spendlab.
    weights
        ``{name: weight}``; ``None`` = equal weights 1/len(estimators). Members with weight 0 are not fitted.
    """

    def __init__(self, estimators: Sequence[tuple[str, Any]] = (),
                 weights: Mapping[str, float] | None = None) -> None:
        self.estimators = estimators
        self.weights = weights

    def _weights(self) -> dict[str, float]:
        names = [name for name, _ in self.estimators]
        if self.weights is None:
            return {m: 1.0 / len(names) for m in names}
        unknown = set(self.weights) - set(names)
        if unknown:
            raise ValueError(f"ensemble weights name non-members: {sorted(unknown)}")
        return {m: float(self.weights.get(m, 0.0)) for m in names}

    def fit(self, X: pd.DataFrame, y: Any) -> EnsembleRegressor:
        if not self.estimators:
            raise ValueError("an ensemble needs at least one member")
        names = [name for name, _ in self.estimators]
        if "ensemble" in names or any(isinstance(est, EnsembleRegressor) for _, est in self.estimators):
            raise ValueError("an ensemble cannot contain itself")
        weights = self._weights()
        self.estimators_ = {name: clone(est).fit(X, y) for name, est in self.estimators if weights[name] > 0}
        self.weights_ = {m: w for m, w in weights.items() if w > 0}
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        total = np.zeros(len(X))
        for m, est in self.estimators_.items():
            total += self.weights_[m] * est.predict(X)
        return non_negative(total)
