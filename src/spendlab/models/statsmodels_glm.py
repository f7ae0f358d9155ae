"""A pooled statsmodels Tweedie GLM: the statistical model with inference output.

Per-user exponential smoothing would mean ~190k tiny fits per CDNOW experiment (23,570 users x
8 origins) on series that are mostly zeros; a pooled GLM over the as-of features is where
statsmodels is strongest here: one IRLS fit whose coefficient table (standard errors, z, p,
confidence intervals) is kept in ``summary_text_`` and logged to MLflow as an artifact.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from spendlab.features.config import HAS_LAST_YEAR, SAME_PERIOD_LAST_YEAR, lag_name, rolling_name
from spendlab.models.base import as_frame, non_negative
from spendlab.models.learned import signed_log1p

#: Named features the GLM reads when the frame has them, beside the spend lags 1..3 and every
#: rolling mean of spend the feature set declares (its windows depend on the frequency: 3/6/12
#: months, 4/13/26 weeks), so the same model reads a weekly frame as fully as a monthly one.
NAMED_COLUMNS: tuple[str, ...] = (
    SAME_PERIOD_LAST_YEAR, HAS_LAST_YEAR, "days_since_last_purchase", "n_transactions_total",
    "mean_basket", "tenure_days", "n_active_periods", "bgnbd_frequency", "target_days_in_period",
)
SPEND_LAGS = 3
_SPEND_MEAN = re.compile(re.escape(rolling_name("spend", "mean", 0))[:-1] + r"(\d+)")


def default_columns(columns: list[str]) -> list[str]:
    """Pick the GLM's columns among ``columns``: spend lags 1..3, every spend rolling mean, the named ones."""
    lags = [lag_name("spend", i) for i in range(1, SPEND_LAGS + 1)]
    means = sorted((int(m.group(1)), c) for c in columns if (m := _SPEND_MEAN.fullmatch(c)))
    wanted = [*lags, *(c for _, c in means), *NAMED_COLUMNS]
    return [c for c in wanted if c in columns]


class StatsmodelsTweedieGLM(RegressorMixin, BaseEstimator):
    """Pooled Tweedie GLM (log link) on log-compressed, standardised features.

    Parameters
    ----------
    var_power
        Tweedie variance power (1 = Poisson, 2 = Gamma; between them a compound Poisson-Gamma
        with a point mass at zero, which is what per-user spend looks like).
    columns
        Feature columns to use; ``None`` = :func:`default_columns` of the frame, or every
        numeric column when it has none of them.
    max_iter
        Solver iterations (Newton's method, or IRLS when Newton does not converge).
    """

    def __init__(self, var_power: float = 1.5, columns: tuple[str, ...] | None = None, max_iter: int = 100) -> None:
        self.var_power = var_power
        self.columns = columns
        self.max_iter = max_iter

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        frame = as_frame(X)
        m = signed_log1p(frame[list(self.feature_names_in_)].to_numpy(dtype=np.float64))
        z = (m - self.center_) / self.scale_
        return np.column_stack([np.ones(len(z)), z])

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: np.ndarray | None = None) -> StatsmodelsTweedieGLM:
        """Fit the Tweedie GLM with statsmodels on the GLM's columns; return ``self``.

        ``sample_weight`` enters as statsmodels' ``freq_weights``: a row of weight ``w`` counts as ``w``
        rows (in the standardisation too), so a thinned, reweighted training set estimates the full one.
        """
        import statsmodels.api as sm

        frame = as_frame(X)
        if self.columns is not None:
            cols = list(self.columns)
        else:
            cols = default_columns(list(frame.columns)) or list(
                frame.select_dtypes(include=[np.number, "bool"]).columns)
        m = signed_log1p(frame[cols].to_numpy(dtype=np.float64))
        if sample_weight is None:
            center, sd = m.mean(axis=0), m.std(axis=0)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            center = np.average(m, axis=0, weights=w)
            sd = np.sqrt(np.average((m - center) ** 2, axis=0, weights=w))
        keep = sd > 0  # constant columns make the design singular
        self.feature_names_in_ = np.asarray([c for c, k in zip(cols, keep, strict=True) if k], dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.center_ = center[keep]
        self.scale_ = sd[keep]
        family = sm.families.Tweedie(var_power=self.var_power, link=sm.families.links.Log())
        target = np.asarray(y, dtype=np.float64)
        kw = {} if sample_weight is None else {"freq_weights": np.asarray(sample_weight, dtype=np.float64)}
        result = _fit_glm(sm.GLM(target, self._design(X), family=family, **kw), self.max_iter)
        self.coef_ = np.asarray(result.params, dtype=np.float64)
        names = ["const", *self.feature_names_in_]
        self.summary_text_ = result.summary(xname=names).as_text()
        # Plain lists and arrays (not a DataFrame), so the fitted model can be stored without a pickle.
        self.coef_stats_ = {"feature": names, **{k: np.asarray(v, dtype=np.float64) for k, v in (
            ("coef", result.params), ("std_err", result.bse), ("z", result.tvalues), ("p_value", result.pvalues))}}
        return self

    @property
    def coef_table_(self) -> pd.DataFrame:
        """Coefficient table: feature, coef, std_err, z, p_value (one row per design column)."""
        check_is_fitted(self, "coef_")
        return pd.DataFrame(self.coef_stats_)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict next-period spend from the fitted coefficients."""
        check_is_fitted(self, "coef_")
        eta = np.clip(self._design(X) @ self.coef_, -50.0, 30.0)
        return non_negative(np.exp(eta))

    @property
    def feature_importances_(self) -> np.ndarray:
        """|coefficient| on the standardised scale (intercept excluded)."""
        check_is_fitted(self, "coef_")
        return np.abs(self.coef_[1:])


def _fit_glm(model: Any, max_iter: int) -> Any:
    """Fit ``model`` by Newton's method after three IRLS steps, with IRLS's standard errors.

    On a full-rank design Newton's method from IRLS's start reaches IRLS's optimum in a few steps
    (CDNOW's largest training set: 3 against 14; coefficients, standard errors and predictions equal to
    1e-14; half the CPU); ``cov_type="eim"`` takes the standard errors from the expected information,
    as IRLS does. A rank-deficient design (early origins, where two rolling means coincide) has no
    unique optimum: it, and any Newton fit that meets a singular Hessian, does not converge or has no
    standard errors, is fitted by plain IRLS (least squares picks the minimum-norm coefficients).
    """
    import warnings

    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

    exog = np.asarray(model.exog)
    if np.linalg.matrix_rank(exog) == exog.shape[1]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # IRLS follows, and warns if it fails too
                warnings.simplefilter("ignore", HessianInversionWarning)
                result = model.fit(method="newton", maxiter=max_iter, cov_type="eim")
        except np.linalg.LinAlgError:  # a singular Hessian on the way: IRLS's least squares copes
            result = None
        if (result is not None and result.mle_retvals.get("converged", False)
                and np.isfinite(np.asarray(result.bse)).all()):
            return result
    return model.fit(maxiter=max_iter)
