"""A hurdle model: P(spend > 0) times the expected spend of a buyer.

Per-user spend is mostly zeros with a heavy-tailed positive part. One regressor has to fit both with
one loss; a hurdle splits them: a classifier for whether the user buys next period (calibrated, so
its probabilities are frequencies and the product stays unbiased) and a regressor fitted on the
buyers only. The forecast is ``P(y > 0 | x) * E[y | y > 0, x]`` -- the mean of ``y``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from spendlab.models.base import as_frame, non_negative
from spendlab.models.learned import make_lightgbm


class HurdleRegressor(RegressorMixin, BaseEstimator):
    """Calibrated LightGBM classifier for ``y > 0`` x LightGBM (gamma, log link) spend of buyers.

    Parameters
    ----------
    num_leaves, min_child_samples, n_estimators, learning_rate
        Capacity of both LightGBM parts (low by default: the targets are noisy).
    calibration
        ``"isotonic"`` or ``"sigmoid"``: :class:`~sklearn.calibration.CalibratedClassifierCV` over
        ``calibration_folds`` unshuffled folds of the training rows.
    calibration_folds
        Folds of that calibration (2 when either class has fewer rows). 2 by default: each fold's
        classifier fits half the rows, against two thirds at 3 folds, and there is one classifier
        fewer -- on CDNOW 43% less CPU, validation RMSE 18.292 -> 18.242 (docs/performance.md).
    seed
        LightGBM's seed.
    """

    def __init__(self, num_leaves: int = 15, min_child_samples: int = 200, n_estimators: int = 150,
                 learning_rate: float = 0.05, calibration: str = "isotonic", calibration_folds: int = 2,
                 seed: int = 0) -> None:
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.seed = seed

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        frame = as_frame(X)
        return np.ascontiguousarray(frame[list(self.feature_names_in_)].to_numpy(dtype=np.float64))

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: np.ndarray | None = None) -> HurdleRegressor:
        """Fit P(spend > 0) on every row and the amount on the spending rows; return ``self``.

        ``sample_weight`` weighs the classifier's rows and its calibration, and the amount regressor's.
        """
        from lightgbm import LGBMClassifier
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import KFold

        frame = as_frame(X).select_dtypes(include=[np.number, "bool"])
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        target = np.asarray(y, dtype=np.float64)
        buys = (target > 0).astype(int)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.base_rate_ = float(np.average(buys, weights=w))
        common = {"num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                  "n_estimators": self.n_estimators, "learning_rate": self.learning_rate}
        if 0 < buys.sum() < len(buys):
            clf = LGBMClassifier(**common, subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                                 max_bin=63, random_state=self.seed, n_jobs=1, verbose=-1, deterministic=True,
                                 force_row_wise=True)
            n_folds = self.calibration_folds if min(buys.sum(), len(buys) - buys.sum()) >= self.calibration_folds else 2
            folds = KFold(n_splits=n_folds, shuffle=False)
            self.classifier_ = CalibratedClassifierCV(clf, method=self.calibration, cv=folds).fit(
                self._matrix(X), buys, **({} if w is None else {"sample_weight": w}))
        else:
            self.classifier_ = None
        pos = target > 0
        self.mean_spend_ = float(np.average(target[pos], weights=None if w is None else w[pos])) if pos.any() else 0.0
        self.spend_ = None
        if pos.sum() >= 20:
            self.spend_ = make_lightgbm(objective="gamma", **common, seed=self.seed).fit(
                frame[pos], target[pos], sample_weight=None if w is None else w[pos])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict the expected spend: P(spend > 0) times the expected amount when spending."""
        check_is_fitted(self, "feature_names_in_")
        if self.classifier_ is None:
            p = np.full(len(X), self.base_rate_)
        else:
            p = self.classifier_.predict_proba(self._matrix(X))[:, 1]
        spend = self.spend_.predict(as_frame(X)) if self.spend_ is not None else np.full(len(X), self.mean_spend_)
        return non_negative(p * spend)

    @property
    def feature_importances_(self) -> np.ndarray:
        """Return the amount regressor's feature importances (zeros when no row spent)."""
        check_is_fitted(self, "feature_names_in_")
        if self.spend_ is None:
            return np.zeros(self.n_features_in_)
        return self.spend_.feature_importances_

