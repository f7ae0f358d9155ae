"""Customer-base models: BG/NBD purchases times Gamma-Gamma spend per purchase (``lifetimes``).

Why ``lifetimes`` and not ``pymc-marketing``: see docs/models-and-selection.md.
The fitters read the lifetimes-style columns of the as-of feature frame (``bgnbd_frequency`` =
repeat purchase days, ``bgnbd_recency_days``, ``bgnbd_T_days``, ``bgnbd_monetary`` = mean spend of
the repeat purchase days). Times are fitted in weeks, which keeps the optimiser well scaled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from spendlab.features.config import ORIGIN_LEVEL
from spendlab.models.base import as_frame, non_negative, quiet_library_fit, require
from spendlab.models.learned import make_lightgbm

RFM_COLUMNS = ("bgnbd_frequency", "bgnbd_recency_days", "bgnbd_T_days", "bgnbd_monetary")
_DAYS_PER_WEEK = 7.0


def _rfm(X: pd.DataFrame) -> pd.DataFrame:
    frame = as_frame(X)
    require(frame, RFM_COLUMNS, "bgnbd_gg")
    f = frame["bgnbd_frequency"].to_numpy(dtype=np.float64)
    T = frame["bgnbd_T_days"].to_numpy(dtype=np.float64) / _DAYS_PER_WEEK
    r = np.minimum(frame["bgnbd_recency_days"].to_numpy(dtype=np.float64) / _DAYS_PER_WEEK, T)
    m = frame["bgnbd_monetary"].to_numpy(dtype=np.float64)
    return pd.DataFrame({"frequency": np.round(f), "recency": r, "T": T, "monetary": np.clip(m, 0.0, None)})


def _mean_monetary(rfm: pd.DataFrame, weight: np.ndarray | None) -> float:
    """Return the buyers' (weighted) mean spend per purchase: the fallback where Gamma-Gamma gives none."""
    buyer = (rfm["monetary"] > 0).to_numpy()
    if not buyer.any():
        return 0.0
    if weight is None:
        return float(rfm.loc[buyer, "monetary"].mean())
    return float(np.average(rfm["monetary"].to_numpy()[buyer], weights=weight[buyer]))


class BgNbdGammaGamma(RegressorMixin, BaseEstimator):
    """Expected next-period spend = E[purchases in the period | RFM] x E[spend per purchase | RFM].

    BG/NBD and Gamma-Gamma are probabilistic models of each customer's whole purchase history, so
    they are fitted on one cross-section: the most recent origin of stacked training rows (the
    ``origin`` index level that ``FeatureStore.stacked`` sets), else on all rows as given. Earlier
    origins are censored views of the same histories; stacking them would count each customer's
    early, heavier months once per origin (docs/models-and-selection.md).

    Parameters
    ----------
    penalizer
        L2 penalty of both lifetimes fitters (0 = plain maximum likelihood).
    horizon_days
        Length of the target period when the frame has no ``target_days_in_period`` column.
    calibrate
        Default ``False``: the fitted model's own expectation is the forecast. ``True`` multiplies
        by sum(y) / sum(fitted) over all training rows (every stacked origin); that factor carries
        the level of whichever calendar months the training window holds.
    fit_origin
        ``"latest"`` (default): fit on the latest origin's rows when the frame's index has an
        ``origin`` level; ``"all"``: fit on every row (the stacked duplicates weighted as rows).
    seasonal
        ``True``: a seasonal level. For a forecast at cutoff ``c`` (the ``origin`` level of the frame
        passed to :meth:`predict`), multiply by the training ratio sum(y) / sum(fitted) pooled over every
        earlier origin whose target is the same month of the year (or week, 52 weeks apart)
        (:func:`seasonal_factor`): that month's level in every year seen, the fit's own level error
        included. Without a full year of training origins before ``c`` (or without the origin level)
        the factor is 1. The ratios count established customers only (:data:`ESTABLISHED_PERIODS`): a
        young cohort's next month deviates from the fit for its age, which is not a season.
    """

    def __init__(self, penalizer: float = 0.0, horizon_days: float = 30.4, calibrate: bool = False,
                 fit_origin: str = "latest", seasonal: bool = False) -> None:
        self.penalizer = penalizer
        self.horizon_days = horizon_days
        self.calibrate = calibrate
        self.fit_origin = fit_origin
        self.seasonal = seasonal

    def fit(self, X: pd.DataFrame, y: Any = None, sample_weight: np.ndarray | None = None) -> BgNbdGammaGamma:
        """Fit BG/NBD and Gamma-Gamma on each user's history at the latest origin; return ``self``.

        ``sample_weight`` (with ``fit_origin="all"``: a row stands for that many) weighs both likelihoods.
        """
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        if self.fit_origin not in ("latest", "all"):
            raise ValueError(f"bgnbd_gg: fit_origin must be 'latest' or 'all', got {self.fit_origin!r}")
        frame = as_frame(X)
        rows = latest_origin_rows(frame) if self.fit_origin == "latest" else frame
        rfm = _rfm(rows)
        if len(rfm) == 0:
            raise ValueError("bgnbd_gg cannot be fitted on an empty frame")
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if rows is not frame:
                origin = frame.index.get_level_values(ORIGIN_LEVEL)
                w = w[np.asarray(origin == origin.max())]
        # Identical (frequency, recency, T) triples are fitted once with a weight (lifetimes'
        # likelihood accepts weights): one-time buyers share few triples, stacked origins repeat them.
        keys = rfm[["frequency", "recency", "T"]].round(6)
        if w is None:
            grouped = keys.value_counts().reset_index(name="weight")
        else:
            grouped = keys.assign(weight=w).groupby(["frequency", "recency", "T"], sort=False)["weight"].sum(
                ).reset_index()
        bg = _fit_with_retry(lambda pen: BetaGeoFitter(penalizer_coef=pen).fit(
            grouped["frequency"], grouped["recency"], grouped["T"], weights=grouped["weight"]), self.penalizer)
        if bg is None:
            raise ValueError("BG/NBD did not converge even with a penalty; too few repeat purchases?")
        is_repeat = ((rfm["frequency"] > 0) & (rfm["monetary"] > 0)).to_numpy()
        repeat = rfm[is_repeat]
        gg_kw = {} if w is None else {"weights": w[is_repeat]}
        gg = None
        if len(repeat) >= 3:
            gg = _fit_with_retry(lambda pen: GammaGammaFitter(penalizer_coef=pen).fit(
                repeat["frequency"], repeat["monetary"], **gg_kw), self.penalizer)
        # No Gamma-Gamma fit (too few repeat buyers, or no convergence): keep their plain mean.
        self.gg_params_ = None if gg is None else dict(gg.params_)
        self.bg_params_ = dict(bg.params_)
        self.mean_monetary_ = _mean_monetary(rfm, w)
        self.n_features_in_ = frame.shape[1]
        self.scale_ = 1.0
        self.origin_totals_: dict[pd.Timestamp, tuple[float, float]] = {}
        if (self.calibrate or self.seasonal) and y is not None:
            fitted = self._raw(X)
            target = np.asarray(y, dtype=np.float64)
            total = float(fitted.sum())
            if self.calibrate:
                self.scale_ = float(target.sum()) / total if total > 0 else 1.0
            if self.seasonal and ORIGIN_LEVEL in (frame.index.names or []):
                self.origin_totals_ = _established_totals(frame, target, fitted)
        return self

    def _horizon_weeks(self, X: pd.DataFrame) -> np.ndarray:
        frame = as_frame(X)
        if "target_days_in_period" in frame.columns:
            return frame["target_days_in_period"].to_numpy(dtype=np.float64) / _DAYS_PER_WEEK
        return np.full(len(frame), self.horizon_days / _DAYS_PER_WEEK)

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        rfm = _rfm(X)
        r, alpha, a, b = (self.bg_params_[k] for k in ("r", "alpha", "a", "b"))
        purchases = _bgnbd_expected(self._horizon_weeks(X), rfm["frequency"].to_numpy(),
                                    rfm["recency"].to_numpy(), rfm["T"].to_numpy(), r, alpha, a, b)
        x = rfm["frequency"].to_numpy()
        m = rfm["monetary"].to_numpy()
        if self.gg_params_ is None:
            spend = np.where(x > 0, m, self.mean_monetary_)
        else:
            p, q, v = (self.gg_params_[k] for k in ("p", "q", "v"))
            population = p * v / (q - 1) if q > 1 else self.mean_monetary_
            w = (q - 1) / (p * x + q - 1)
            spend = np.where(x > 0, w * population + (1 - w) * m, population)
        return non_negative(purchases * spend)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict each user's expected spend over the horizon (seasonally adjusted when enabled)."""
        check_is_fitted(self, "bg_params_")
        out = self._raw(X) * self.scale_
        frame = as_frame(X)
        if self.seasonal and ORIGIN_LEVEL in (frame.index.names or []):
            codes, origins = pd.factorize(frame.index.get_level_values(ORIGIN_LEVEL))
            period_days = "asof_days_in_period" if "asof_days_in_period" in frame.columns else "target_days_in_period"
            weekly = period_days in frame.columns and bool((frame[period_days] == 7).all())
            scaled = "target_days_in_period" in frame.columns  # the fitted spend follows the target's days
            factors = np.asarray([seasonal_factor(getattr(self, "origin_totals_", {}), pd.Timestamp(o), weekly=weekly,
                                                  days_scaled=scaled) for o in origins], dtype=np.float64)
            out = out * factors[codes]  # one factor per origin, spread by code (no per-row Python loop)
        return non_negative(out)


#: A customer counts towards the seasonal level once this many periods of history lie behind the origin
#: (``n_periods``): a newly acquired customer's next period runs off BG/NBD's fit for reasons of age, not
#: of the calendar. An origin with fewer established customers has no ratio (so no seasonal level uses it).
ESTABLISHED_PERIODS = 3
MIN_ESTABLISHED = 30


def _established_totals(frame: pd.DataFrame, y: np.ndarray, fitted: np.ndarray) -> dict[pd.Timestamp, tuple[float, float]]:
    """Sum, per origin, (y, fitted) over the established customers.

    Established: with :data:`ESTABLISHED_PERIODS` periods of history (all rows when the frame has no
    ``n_periods``); origins with too few of them are left out.
    """
    origin = frame.index.get_level_values(ORIGIN_LEVEL)
    keep = frame["n_periods"].to_numpy() >= ESTABLISHED_PERIODS if "n_periods" in frame.columns else \
        np.ones(len(frame), dtype=bool)
    rows = pd.DataFrame({"origin": origin[keep], "y": y[keep], "fitted": fitted[keep]})
    sums = rows.groupby("origin").agg(y=("y", "sum"), fitted=("fitted", "sum"), n=("y", "size"))
    return {pd.Timestamp(o): (float(r.y), float(r.fitted)) for o, r in sums.iterrows() if r.n >= MIN_ESTABLISHED}


def seasonal_factor(totals: dict[pd.Timestamp, tuple[float, float]], cutoff: pd.Timestamp, *,
                    weekly: bool = False, days_scaled: bool = False) -> float:
    """Return the seasonal level of the period after ``cutoff``, pooled over every year seen.

    sum(y) / sum(fitted) over the training origins before ``cutoff`` whose target is the same calendar
    month (month ends), or the same week 52, 104, ... weeks earlier (``totals[origin] = (sum y, sum
    fitted)``). Month totals are read per calendar month: when the fitted spend scales with the
    target's days (``days_scaled``), a leap February's fitted total is taken at 28 days, and a
    forecast of a leap February is brought back to 28/29 of its days-scaled spend (its 29th day adds
    nothing; one February of history cannot tell the two apart within its own noise). 1 when an
    origin of the year before ``cutoff`` is missing or a total is not positive.
    """
    weekly_or_flat = weekly or not days_scaled
    if weekly:
        year = [cutoff - pd.Timedelta(weeks=k) for k in range(52, 0, -1)]
    else:
        year = [cutoff - pd.offsets.MonthEnd(k) if cutoff.is_month_end else None for k in range(12, 0, -1)]
    if any(o is None or o not in totals for o in year):
        return 1.0
    if weekly:
        same = [o for o in totals if o < cutoff and (cutoff - o) % pd.Timedelta(weeks=52) == pd.Timedelta(0)]
    else:
        same = [o for o in totals if o < cutoff and o.is_month_end and o.month == cutoff.month]
    y_sum = sum(totals[o][0] for o in same)
    f_sum = sum(totals[o][1] * _calendar_month_days(o, weekly_or_flat) for o in same)
    if min(y_sum, f_sum) <= 0:
        return 1.0
    return y_sum / f_sum * _calendar_month_days(cutoff, weekly_or_flat)


def _calendar_month_days(origin: pd.Timestamp, flat: bool) -> float:
    """Return the share of the target month's days a calendar month counts: 28/29 for a leap February."""
    target = origin + pd.Timedelta(days=1)
    return 28.0 / 29.0 if not flat and target.month == 2 and target.is_leap_year else 1.0


def _fit_with_retry(fit: Any, penalizer: float) -> Any:
    """Fit a lifetimes model; on non-convergence retry with a growing L2 penalty, else ``None``."""
    import lifetimes.fitters
    from lifetimes.utils import ConvergenceError

    for pen in (penalizer, max(penalizer, 1e-3), max(penalizer, 1e-2), max(penalizer, 1e-1)):
        # lifetimes prints the optimiser's report on failure: keep this thread's stdout clean
        with quiet_library_fit(lifetimes.fitters):
            try:
                return fit(pen)
            except ConvergenceError:
                continue
    return None


def _bgnbd_expected(t: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                    r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10), vectorised over t.

    Same formula as ``BetaGeoFitter.conditional_expected_number_of_purchases_up_to_time``, which
    takes a scalar ``t``; here every user has their own target-period length.
    """
    from scipy.special import hyp2f1

    x = np.asarray(x, dtype=np.float64)
    _a, _b, _c = r + x, b + x, a + b + x - 1
    _z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        ln_hyp = np.log(hyp2f1(_a, _b, _c, _z))
        alt = np.log(hyp2f1(_c - _a, _c - _b, _c, _z)) + (_c - _a - _b) * np.log(1 - _z)
        ln_hyp = np.where(np.isinf(ln_hyp), alt, ln_hyp)
        first_term = (a + b + x - 1) / (a - 1) * (1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + t + T))))
        denom = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        out = first_term / denom
    return np.where(np.isfinite(out), out, 0.0)


def latest_origin_rows(X: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of the most recent origin when ``X``'s index has an ``origin`` level, else ``X``."""
    if ORIGIN_LEVEL not in (X.index.names or []):
        return X
    origin = X.index.get_level_values(ORIGIN_LEVEL)
    return X[origin == origin.max()]


class ClvBoostedRegressor(RegressorMixin, BaseEstimator):
    """Gradient boosting on the as-of features plus the BG/NBD x Gamma-Gamma expected spend.

    The customer-base model is fitted on the training rows only (its own, uncalibrated
    prediction becomes the feature ``clv_expected_spend``); LightGBM then learns how far to trust
    it against the recent-spend features. ``lightgbm_params`` are those of :func:`make_lightgbm` (its
    defaults for the rest); ``penalizer`` is the lifetimes fitters'.
    """

    def __init__(self, penalizer: float = 0.0, lightgbm_params: dict[str, Any] | None = None) -> None:
        self.penalizer = penalizer
        self.lightgbm_params = lightgbm_params

    def _augment(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = as_frame(X)
        return frame.assign(clv_expected_spend=self.clv_.predict(frame))

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: np.ndarray | None = None) -> ClvBoostedRegressor:
        """Fit the booster on the features plus the BG/NBD-Gamma-Gamma columns; return ``self``.

        ``sample_weight`` weighs the rows of both fits (the customer-base likelihoods and the booster's loss).
        """
        frame = as_frame(X)
        self.clv_ = BgNbdGammaGamma(penalizer=self.penalizer, calibrate=False, fit_origin="all").fit(
            frame, sample_weight=sample_weight)
        self.booster_ = make_lightgbm(**dict(self.lightgbm_params or {})).fit(self._augment(frame), y,
                                                                            sample_weight=sample_weight)
        self.n_features_in_ = frame.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict next-period spend (non-negative)."""
        check_is_fitted(self, "booster_")
        return non_negative(self.booster_.predict(self._augment(X)))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Return the booster's feature importances."""
        return self.booster_.feature_importances_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Return the names of the features the booster was fitted on."""
        return self.booster_.feature_names_in_
