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

from spendlab.features.segments import SEGMENTS, segment_users
from spendlab.models.base import non_negative

DEFAULT_MEMBERS: tuple[str, ...] = ("lightgbm", "hist_gbm", "tweedie_glm", "bgnbd_gg")

#: The stack's pooled weights (every segment together): what a segment without its own weights uses.
POOLED = "all"


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
    """Predict the sum of ``weights[name] * estimator(X)`` over ``estimators``.

    The members are given as scikit-learn's ``VotingRegressor`` takes them: a list of
    ``(name, unfitted estimator)`` pairs (the registry builds them from keys:
    :func:`spendlab.models.registry.make_ensemble`).

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
        """Fit every member with a non-zero weight on ``X``, ``y``; return ``self``."""
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
        """Predict the weighted sum of the members' predictions."""
        check_is_fitted(self, "estimators_")
        total = np.zeros(len(X))
        for m, est in self.estimators_.items():
            total += self.weights_[m] * est.predict(X)
        return non_negative(total)


class SegmentStackRegressor(RegressorMixin, BaseEstimator):
    """A stacking ensemble whose meta-learner weighs the members per user segment.

    Feature-weighted linear stacking (Sill et al., 2009) on the segment indicators: the blend weights
    are a function of the user's segment (``new`` / ``active`` / ``lapsed``,
    :func:`~spendlab.features.segments.segment_users`), so a customer-base model can carry the lapsed
    users while a learned model carries the active ones. The meta-learner is fitted on validation
    origins only (:func:`spendlab.forecast.blend.stack`, which also cross-fits it for its validation
    score) and passed in as ``weights``; :meth:`fit` fits the members alone.

    Parameters
    ----------
    estimators
        ``[(name, estimator)]`` as for :class:`EnsembleRegressor`.
    weights
        ``{segment: {name: weight}}``, convex per segment. A segment without weights (none in the
        validation rows) uses ``weights[POOLED]`` (``"all"``) when given, else equal weights.
    active_window
        Lags that make a user active (the experiment's ``segments.active_window``).
    """

    def __init__(self, estimators: Sequence[tuple[str, Any]] = (),
                 weights: Mapping[str, Mapping[str, float]] | None = None, active_window: int = 3) -> None:
        self.estimators = estimators
        self.weights = weights
        self.active_window = active_window

    def _weights(self, segment: str) -> dict[str, float]:
        names = [name for name, _ in self.estimators]
        given = dict(self.weights or {})
        w = given.get(segment, given.get(POOLED))
        if w is None:
            return {m: 1.0 / len(names) for m in names}
        unknown = set(w) - set(names)
        if unknown:
            raise ValueError(f"stack weights name non-members: {sorted(unknown)}")
        return {m: float(w.get(m, 0.0)) for m in names}

    def fit(self, X: pd.DataFrame, y: Any) -> SegmentStackRegressor:
        """Fit every member on ``X``, ``y``; return ``self``."""
        if not self.estimators:
            raise ValueError("a stack needs at least one member")
        if any(isinstance(est, (EnsembleRegressor, SegmentStackRegressor)) for _, est in self.estimators):
            raise ValueError("a stack's members are single models")
        used = {m for s in (*SEGMENTS, POOLED) for m, w in self._weights(s).items() if w > 0}
        self.estimators_ = {name: clone(est).fit(X, y) for name, est in self.estimators if name in used}
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict each row with its segment's weights over the members."""
        check_is_fitted(self, "estimators_")
        seg = segment_users(X, active_window=self.active_window)
        preds = {m: est.predict(X) for m, est in self.estimators_.items()}
        total = np.zeros(len(X))
        for s in np.unique(seg):
            rows = seg == s
            for m, w in self._weights(str(s)).items():
                if w > 0:
                    total[rows] += w * preds[m][rows]
        return non_negative(total)
