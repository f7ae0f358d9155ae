"""Learned forecasters on the as-of feature frame: scikit-learn and LightGBM behind one wrapper.

:class:`FeatureRegressor` is a meta-estimator (like ``TransformedTargetRegressor``): it selects the
numeric feature columns, optionally log-compresses them (spend features are heavy-tailed, which
linear models dislike), fits a clone of ``estimator`` and clips predictions at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from spendlab.models.base import as_frame, current_predict_threads, non_negative


def signed_log1p(a: np.ndarray) -> np.ndarray:
    """``sign(a) * log1p(|a|)``: compresses spend-like features, keeps refunds' sign.

    One new array, worked in place (``a`` is not changed): on a stacked training matrix the two
    temporaries of the textbook expression cost more than the arithmetic.
    """
    out = np.abs(np.asarray(a, dtype=np.float64))
    np.log1p(out, out=out)
    return np.copysign(out, a, out=out)


class FeatureRegressor(RegressorMixin, BaseEstimator):
    """Fit ``estimator`` on the numeric feature columns; predictions are non-negative.

    Parameters
    ----------
    estimator
        Any scikit-learn regressor (unfitted; it is cloned).
    log_features
        Apply :func:`signed_log1p` to every feature before fitting (for linear models).
    n_threads
        Cap on OpenMP/BLAS threads while fitting and predicting (``None`` = library default).
    """

    def __init__(self, estimator: Any = None, log_features: bool = False, n_threads: int | None = None) -> None:
        self.estimator = estimator
        self.log_features = log_features
        self.n_threads = n_threads

    def _threads(self) -> Any:
        """Cap OpenMP/BLAS threads (``n_threads``); OpenMP workers spin-wait on a busy machine."""
        import contextlib

        if self.n_threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        frame = as_frame(X)
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(f"{type(self.estimator_).__name__} was fitted with feature(s) {missing} "
                             "that this frame lacks")
        # The selection is a copy of the caller's data; row-major, as LightGBM and the BLAS-backed
        # models read it (a column-major matrix would be copied again inside them).
        m = np.ascontiguousarray(frame[list(self.feature_names_in_)].to_numpy(dtype=np.float64))
        return signed_log1p(m) if self.log_features else m

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: np.ndarray | None = None) -> FeatureRegressor:
        """Fit the wrapped estimator on the feature frame; return ``self``."""
        if self.estimator is None:
            raise ValueError("FeatureRegressor needs an estimator")
        frame = as_frame(X).select_dtypes(include=[np.number, "bool"])
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        target = np.asarray(y, dtype=np.float64)
        est = clone(self.estimator)
        kw = {} if sample_weight is None else _weight_kwargs(est, sample_weight)
        with self._threads():
            est.fit(self._matrix(X), target, **kw)
        if hasattr(est, "estimators_") and getattr(est, "n_jobs", None) not in (None, 1):
            # A forest fits its trees in parallel, but predicts by adding tree outputs in whatever
            # order its threads finish: the last bits then differ between calls. One thread at
            # predict time keeps predictions reproducible.
            est.set_params(n_jobs=1)
        self.estimator_ = est
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict next-period spend, clipped at 0."""
        check_is_fitted(self, "estimator_")
        threads = current_predict_threads()
        if threads and _is_lightgbm(self.estimator_):  # LightGBM takes its thread count per call
            return non_negative(self.estimator_.predict(self._matrix(X), num_threads=threads))
        with self._threads():
            return non_negative(self.estimator_.predict(self._matrix(X)))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Impurity/split importances of tree models, or |coef| of linear ones (on their scale)."""
        check_is_fitted(self, "estimator_")
        est = self.estimator_
        if hasattr(est, "steps"):
            est = est.steps[-1][1]
        if hasattr(est, "feature_importances_"):
            return np.asarray(est.feature_importances_, dtype=np.float64)
        if hasattr(est, "coef_"):
            return np.abs(np.asarray(est.coef_, dtype=np.float64)).reshape(-1)
        raise AttributeError(f"{type(est).__name__} has no feature importances")


def _weight_kwargs(estimator: Any, sample_weight: np.ndarray) -> dict[str, np.ndarray]:
    """Return the fit keywords that give ``sample_weight`` to ``estimator``.

    A pipeline passes it to every step whose ``fit`` takes it (the scaler's means and variances are
    then weighted too, as the rows they stand for would make them).
    """
    import inspect

    if not hasattr(estimator, "steps"):
        return {"sample_weight": sample_weight}
    return {f"{name}__sample_weight": sample_weight for name, step in estimator.steps
            if step != "passthrough" and "sample_weight" in inspect.signature(step.fit).parameters}


def _is_lightgbm(estimator: Any) -> bool:
    return type(estimator).__module__.startswith("lightgbm.")


def make_ridge(alpha: float = 10.0) -> FeatureRegressor:
    """Make the ``ridge`` registry entry: ridge regression on log-transformed features."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return FeatureRegressor(make_pipeline(StandardScaler(), Ridge(alpha=alpha)), log_features=True)


def make_tweedie_glm(power: float = 1.5, alpha: float = 1e-3) -> FeatureRegressor:
    """Make the ``tweedie_glm`` registry entry: a Tweedie GLM (log link) on log-transformed features."""
    from sklearn.linear_model import TweedieRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    glm = TweedieRegressor(power=power, alpha=alpha, link="log", solver="newton-cholesky", max_iter=300)
    return FeatureRegressor(make_pipeline(StandardScaler(), glm), log_features=True)


def make_random_forest(n_estimators: int = 30, max_depth: int = 10, min_samples_leaf: int = 20,
                       max_features: float | str = 0.2, max_samples: float = 0.2, seed: int = 0) -> FeatureRegressor:
    """Make the ``random_forest`` registry entry: a small, subsampled random forest.

    Each split weighs a fifth of the features (``max_features`` 0.2; 0.3 until 2026-12-07): on CDNOW 28%
    less CPU, mean validation RMSE 18.418 -> 18.416, test 18.143 -> 18.095 (docs/performance.md).
    """
    from sklearn.ensemble import RandomForestRegressor

    rf = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                               max_features=max_features, max_samples=max_samples, n_jobs=2,
                               random_state=seed)
    return FeatureRegressor(rf)


def make_hist_gbm(learning_rate: float = 0.05, max_iter: int = 60, max_leaf_nodes: int = 31,
                  min_samples_leaf: int = 50, l2_regularization: float = 1.0, seed: int = 0) -> FeatureRegressor:
    """Make the ``hist_gbm`` registry entry: scikit-learn's histogram gradient boosting."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Poisson deviance: a log link whose fitted totals match the training totals (keeps bias near 0).
    # Learning rate 0.05: at 0.15 the log link's steps overshot on a few users (CDNOW test origin
    # 1998-05-31: predictions up to 3,311 and RMSE 41.9, against 511 and 15.2 at 0.05).
    hgb = HistGradientBoostingRegressor(loss="poisson", learning_rate=learning_rate, max_iter=max_iter,
                                        max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf,
                                        l2_regularization=l2_regularization, early_stopping=False,
                                        random_state=seed)
    return FeatureRegressor(hgb, n_threads=1)  # see make_lightgbm: OpenMP spin-waits on a shared machine


def make_lightgbm(objective: str = "tweedie", tweedie_variance_power: float = 1.3, learning_rate: float = 0.06,
                  n_estimators: int = 150, num_leaves: int = 15, min_child_samples: int = 200,
                  subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 5.0,
                  seed: int = 0) -> FeatureRegressor:
    """Fit LightGBM on the feature frame.

    Low capacity by default (15 leaves, >= 200 rows a leaf, L2 5): next-period spend is mostly noise
    around a small signal, and deeper trees fit the noise.
    """
    from lightgbm import LGBMRegressor

    kw: dict[str, Any] = {}
    if objective == "tweedie":
        kw["tweedie_variance_power"] = tweedie_variance_power
    # One thread: LightGBM's OpenMP threads spin while waiting, which on a shared 2-core machine
    # made n_jobs=2 five times slower than n_jobs=1 (measured; see docs/models-and-selection.md).
    lgb = LGBMRegressor(objective=objective, learning_rate=learning_rate, n_estimators=n_estimators,
                        num_leaves=num_leaves, min_child_samples=min_child_samples, subsample=subsample,
                        subsample_freq=1, colsample_bytree=colsample_bytree, reg_lambda=reg_lambda,
                        max_bin=63, random_state=seed, n_jobs=1, verbose=-1, deterministic=True,
                        force_row_wise=True, **kw)
    return FeatureRegressor(lgb)
