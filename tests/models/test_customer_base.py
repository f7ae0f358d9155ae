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


# --- bgnbd_seasonal: the target month's ratio to the fit, pooled over every earlier year -------------


def test_seasonal_factor_by_hand() -> None:
    from spendlab.models.customer_base import seasonal_factor

    ends = [pd.Timestamp("2023-04-30") + pd.offsets.MonthEnd(k) for k in range(13)]  # 2023-04 .. 2024-04
    totals = {o: (100.0, 100.0) for o in ends}
    totals[ends[1]] = (150.0, 100.0)  # the origin of 2023-05-31: its next month (June) ran 50% above fitted
    cutoff = pd.Timestamp("2024-05-31")  # forecasting June 2024: last June's ratio
    assert seasonal_factor(totals, cutoff) == pytest.approx(1.5)
    assert seasonal_factor(totals, pd.Timestamp("2024-04-30")) == pytest.approx(1.0)  # last May ran as fitted
    # Every earlier June counts, as a ratio of sums: one two years back that ran at half its fit.
    totals[pd.Timestamp("2022-05-31")] = (30.0, 60.0)
    assert seasonal_factor(totals, cutoff) == pytest.approx(180.0 / 160.0)
    # An origin at or after the cutoff is never read (its target month is not over by the cutoff).
    totals[cutoff] = (1e6, 1.0)
    assert seasonal_factor(totals, cutoff) == pytest.approx(180.0 / 160.0)
    del totals[ends[5]]
    assert seasonal_factor(totals, cutoff) == 1.0  # a year with a hole: no seasonal level
    assert seasonal_factor(totals, pd.Timestamp("2024-05-30")) == 1.0  # not a month end
    start = pd.Timestamp("2024-01-07")
    weeks = {start + pd.Timedelta(weeks=k): (10.0, 10.0) for k in range(53)}
    weeks[start] = (5.0, 10.0)
    assert seasonal_factor(weeks, start + pd.Timedelta(weeks=52), weekly=True) == pytest.approx(0.5)
    weeks[start - pd.Timedelta(weeks=52)] = (15.0, 10.0)  # the same week a year before: pooled
    weeks[start - pd.Timedelta(weeks=26)] = (99.0, 1.0)  # half a year off: not the same week
    assert seasonal_factor(weeks, start + pd.Timedelta(weeks=52), weekly=True) == pytest.approx(1.0)


def test_seasonal_factor_reads_a_leap_february_as_a_february() -> None:
    """Fitted spend that scales with the days: February 2024's fitted total is 29/28 of a common one's."""
    from spendlab.models.customer_base import seasonal_factor

    ends = [pd.Timestamp("2023-01-31") + pd.offsets.MonthEnd(k) for k in range(25)]  # 2023-01 .. 2025-01
    totals = {o: (100.0, 100.0) for o in ends}
    leap = pd.Timestamp("2024-01-31")  # the origin whose target is February 2024
    totals[leap] = (100.0, 100.0 * 29 / 28)  # the month spent as a common February, fitted for 29 days
    assert seasonal_factor(totals, pd.Timestamp("2025-01-31"), days_scaled=True) == pytest.approx(1.0)
    assert seasonal_factor(totals, pd.Timestamp("2025-01-31")) == pytest.approx(200.0 / (100.0 + 100.0 * 29 / 28))
    # Forecasting the leap February: last February's ratio, brought back from the 29 fitted days to 28.
    assert seasonal_factor(totals, leap, days_scaled=True) == pytest.approx(28 / 29)
    assert seasonal_factor(totals, leap) == pytest.approx(1.0)
    for cutoff in ends[13:24]:  # March 2024 .. January 2025: the days do not enter
        assert seasonal_factor(totals, cutoff, days_scaled=True) == seasonal_factor(totals, cutoff)


def _year_of_origins(season: dict[int, float]) -> tuple[pd.DataFrame, np.ndarray]:
    """14 month ends of the LATE cross-section; each origin's target spend = 10 x the month's season
    for the repeat buyers (the fitted model does not move with y: only the level does)."""
    origins = [pd.Timestamp("2023-01-31") + pd.offsets.MonthEnd(k) for k in range(14)]
    base = cross_section(LATE * 4).assign(n_periods=6.0)  # 40 established customers an origin
    X = pd.concat([base] * len(origins), ignore_index=True)
    X.index = pd.MultiIndex.from_arrays([np.repeat(origins, len(base)), np.tile(np.arange(len(base)), len(origins))],
                                        names=[ORIGIN_LEVEL, "row"])
    buyers = (base["bgnbd_frequency"] > 0).to_numpy()
    y = np.concatenate([np.where(buyers, 10.0 * season.get((o + pd.Timedelta(days=1)).month, 1.0), 0.0)
                        for o in origins])
    return X, y


def test_bgnbd_seasonal_scales_the_forecast_by_the_target_months_ratio_a_year_before() -> None:
    from spendlab.features.config import at_origin

    X, y = _year_of_origins({12: 2.0, 1: 0.5})
    plain = BgNbdGammaGamma().fit(X, y)
    seasonal = BgNbdGammaGamma(seasonal=True).fit(X, y)
    assert seasonal.bg_params_ == pytest.approx(plain.bg_params_, rel=1e-12)  # the same fit, a level on top
    X_cut = cross_section(LATE).assign(n_periods=6.0)
    origins = X.index.get_level_values(ORIGIN_LEVEL)
    fitted = plain.predict(X.reset_index(drop=True))  # independent: the plain model on every origin's rows
    ratio = {o: y[origins == o].sum() / fitted[origins == o].sum() for o in pd.unique(origins)}
    for cutoff, month in ((pd.Timestamp("2024-01-31"), "February"), (pd.Timestamp("2024-02-29"), "March")):
        expected = ratio[cutoff - pd.offsets.MonthEnd(12)]  # the only earlier origin of that month
        if month == "February":  # 2024's, fitted for 29 days, read as a February of 28 (February 2023's)
            expected *= 28 / 29
        got = seasonal.predict(at_origin(X_cut, cutoff.date())) / plain.predict(X_cut)
        np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=month)
    # Forecasting January 2024 (cutoff 2023-12-31): last year's origin 2022-12-31 is not in training: 1.
    np.testing.assert_allclose(seasonal.predict(at_origin(X_cut, dt.date(2023, 12, 31))), plain.predict(X_cut))
    # Without the cutoff (a frame with no origin level) there is no seasonal level.
    np.testing.assert_allclose(seasonal.predict(X_cut), plain.predict(X_cut))


def test_bgnbd_seasonal_reads_the_season_off_the_calendar_months() -> None:
    """A strong December in the training year lifts the forecast made at the next November's end."""
    from spendlab.features.config import at_origin

    X, y = _year_of_origins({12: 3.0})
    seasonal = BgNbdGammaGamma(seasonal=True).fit(X, y)
    plain = BgNbdGammaGamma().fit(X, y)
    X_cut = cross_section(LATE).assign(n_periods=6.0)
    # the training year holds origins 2023-01-31 .. 2024-02-29: December's origin is 2023-11-30
    up = seasonal.predict(at_origin(X_cut, dt.date(2024, 11, 30)))  # needs 2023-11-30 .. 2024-10-31: missing
    np.testing.assert_allclose(up, plain.predict(X_cut))
    X2, y2 = _year_of_origins({3: 3.0})  # March strong (origin 2023-02-28)
    X0, y0 = _year_of_origins({})
    s2, s0 = BgNbdGammaGamma(seasonal=True).fit(X2, y2), BgNbdGammaGamma(seasonal=True).fit(X0, y0)
    at = at_origin(X_cut, dt.date(2024, 2, 29))
    np.testing.assert_allclose(s2.predict(at) / s0.predict(at), 3.0, rtol=1e-9)  # three times a flat March
    at_april = at_origin(X_cut, dt.date(2024, 3, 31))  # April: as flat as in the flat world
    np.testing.assert_allclose(s2.predict(at_april), s0.predict(at_april), rtol=1e-9)


def test_bgnbd_seasonal_reads_its_ratios_off_established_customers_only() -> None:
    """A newly acquired cohort's first months deviate from BG/NBD's fit for their age; counted, they
    would pass for a season. Customers with fewer than 3 periods of history are left out of the ratios."""
    from spendlab.features.config import at_origin

    X, y = _year_of_origins({})
    rows = X.index.get_level_values("row").to_numpy()
    X = X.assign(n_periods=np.where(rows < 10, 1.0, 6.0))  # a quarter of every origin is brand new
    young = X["n_periods"].to_numpy() < 3
    origins = X.index.get_level_values(ORIGIN_LEVEL)
    y_young_spike = np.where(young & (origins == pd.Timestamp("2023-02-28")), y * 20 + 50, y)
    flat = BgNbdGammaGamma(seasonal=True).fit(X, y)
    spiked = BgNbdGammaGamma(seasonal=True).fit(X, y_young_spike)
    X_cut = cross_section(LATE).assign(n_periods=6.0)
    at = at_origin(X_cut, dt.date(2024, 2, 29))  # last year's origin is the spiked 2023-02-28
    np.testing.assert_allclose(spiked.predict(at), flat.predict(at), rtol=1e-12)
    counted = BgNbdGammaGamma(seasonal=True).fit(X.drop(columns=["n_periods"]), y_young_spike)
    assert (counted.predict(at.drop(columns=["n_periods"])) > 1.5 * flat.predict(at)).all()


def test_bgnbd_seasonal_reads_no_target_month_that_ends_after_the_cutoff() -> None:
    """Leakage: the spend of the months after the cutoff (any origin from the cutoff on) changes nothing."""
    from spendlab.features.config import at_origin

    X, y = _year_of_origins({2: 2.0})
    origins = X.index.get_level_values(ORIGIN_LEVEL)
    cutoff = pd.Timestamp("2024-01-31")  # forecasting February 2024; origins 2024-01-31 and 2024-02-29 are later
    rng = np.random.default_rng(3)
    y_late = np.where(origins >= cutoff, y * rng.uniform(0.0, 5.0, len(y)), y)
    a, b = BgNbdGammaGamma(seasonal=True).fit(X, y), BgNbdGammaGamma(seasonal=True).fit(X, y_late)
    at = at_origin(cross_section(LATE).assign(n_periods=6.0), cutoff.date())
    np.testing.assert_allclose(a.predict(at), b.predict(at), rtol=1e-12)
    assert a.origin_totals_[cutoff] != b.origin_totals_[cutoff]  # the fit holds the later spend, unread here
