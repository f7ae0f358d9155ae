"""bgnbd_gg's level: fitted on the latest cross-section of stacked origins, no rescale to a total."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.features.config import ORIGIN_LEVEL
from spendlab.models.customer_base import BgNbdGammaGamma

# Ten customers seen at two month ends, 30 days apart: (repeat purchase days, recency, age T, mean
# repeat spend) in days. At the later origin three repeat buyers of the first have bought again and
# the rest have been quiet, as in a cohort past its first, busiest months.
EARLY = [(3, 50, 60, 20.0), (2, 40, 60, 30.0), (1, 20, 60, 25.0), (0, 0, 60, 0.0), (0, 0, 55, 0.0),
         (4, 55, 60, 15.0), (0, 0, 50, 0.0), (1, 10, 45, 40.0), (2, 30, 40, 22.0), (0, 0, 35, 0.0)]
LATE = [(4, 85, 90, 20.0), (2, 40, 90, 30.0), (1, 20, 90, 25.0), (0, 0, 90, 0.0), (0, 0, 85, 0.0),
        (5, 88, 90, 16.0), (0, 0, 80, 0.0), (1, 10, 75, 40.0), (3, 70, 70, 24.0), (0, 0, 65, 0.0)]


def cross_section(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    f, r, t, m = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
    return pd.DataFrame({"bgnbd_frequency": f, "bgnbd_recency_days": r, "bgnbd_T_days": t,
                         "bgnbd_monetary": m, "target_days_in_period": 30.0})


def stacked(early_spend: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Both origins stacked as ``FeatureStore.stacked`` does; the early origin's next month is its
    busiest (``early_spend`` per repeat buyer), the late origin's next month is quiet."""
    X = pd.concat([cross_section(EARLY), cross_section(LATE)], ignore_index=True)
    X.index = pd.MultiIndex.from_arrays(
        [np.repeat(pd.to_datetime([dt.date(1997, 5, 31), dt.date(1997, 6, 30)]), 10), np.tile(np.arange(10), 2)],
        names=[ORIGIN_LEVEL, "row"])
    early_y = np.where(X["bgnbd_frequency"].to_numpy()[:10] > 0, early_spend, 0.0)
    late_y = np.array([20.0, 0, 0, 0, 0, 16.0, 0, 0, 0, 0])
    return X, np.concatenate([early_y, late_y])


def test_bgnbd_gg_forecast_does_not_carry_an_earlier_origins_spend_level() -> None:
    """The old default (fit on every stacked row, rescale to the stacked total) moved the forecast at
    the cutoff with the spend after the *early* origin; the model's level is now its own."""
    X_cut = cross_section(LATE)
    quiet = BgNbdGammaGamma().fit(*stacked(early_spend=10.0)).predict(X_cut)
    busy = BgNbdGammaGamma().fit(*stacked(early_spend=200.0)).predict(X_cut)
    np.testing.assert_allclose(busy, quiet, rtol=1e-12)
    # The old behaviour, kept behind the two hyperparameters, is what moved with it.
    old = {"calibrate": True, "fit_origin": "all"}
    old_quiet = BgNbdGammaGamma(**old).fit(*stacked(early_spend=10.0)).predict(X_cut)
    old_busy = BgNbdGammaGamma(**old).fit(*stacked(early_spend=200.0)).predict(X_cut)
    assert old_busy.sum() > 3 * old_quiet.sum()


def test_bgnbd_gg_is_fitted_on_the_latest_origin_of_stacked_rows() -> None:
    X, y = stacked(early_spend=50.0)
    on_stack = BgNbdGammaGamma().fit(X, y)
    on_latest = BgNbdGammaGamma().fit(cross_section(LATE), y[10:])
    assert on_stack.bg_params_ == pytest.approx(on_latest.bg_params_, rel=1e-9)
    on_all = BgNbdGammaGamma(fit_origin="all").fit(X, y)
    assert on_all.bg_params_ != pytest.approx(on_latest.bg_params_, rel=1e-3)
    # A frame without the origin level is one cross-section: every row is fitted.
    plain = BgNbdGammaGamma().fit(X.reset_index(drop=True), y)
    assert plain.bg_params_ == pytest.approx(on_all.bg_params_, rel=1e-9)


def test_bgnbd_gg_rejects_an_unknown_fit_origin() -> None:
    with pytest.raises(ValueError, match="fit_origin"):
        BgNbdGammaGamma(fit_origin="first").fit(cross_section(LATE))
