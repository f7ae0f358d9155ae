"""The field's ranking and calibration metrics, on tables small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spendlab.forecast.metrics import decile_mape, normalized_gini, origin_metrics, spearman


def test_normalized_gini_is_one_for_the_perfect_order_and_minus_one_for_the_reverse() -> None:
    y = np.array([0.0, 0.0, 10.0, 30.0])
    assert normalized_gini(y, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1.0)
    assert normalized_gini(y, np.array([4.0, 3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_normalized_gini_by_hand() -> None:
    # Ranked by prediction: 0, 10, 0, 30 -> cumulative shares 0, 0, .25, .25, 1 at x = 0, .25, .5, .75, 1:
    # area .25, Gini -0.5. Perfect order 30, 10, 0, 0: area .8125, Gini .625. Normalised: -0.8.
    y = np.array([0.0, 10.0, 0.0, 30.0])
    assert normalized_gini(y, np.array([4.0, 3.0, 2.0, 1.0])) == pytest.approx(-0.8)


def test_normalized_gini_credits_tied_predictions_with_the_average_order_not_the_row_order() -> None:
    y = np.array([0.0, 0.0, 10.0, 30.0])
    assert normalized_gini(y, np.zeros(4)) == pytest.approx(0.0)
    assert normalized_gini(y[::-1], np.zeros(4)) == pytest.approx(0.0)
    assert math.isnan(normalized_gini(np.zeros(3), np.array([1.0, 2.0, 3.0])))


def test_spearman_by_hand_and_nan_for_constant_predictions() -> None:
    # rank differences 0, 1, 1, 0: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert math.isnan(spearman(np.array([1.0, 2.0]), np.array([5.0, 5.0])))


def test_decile_mape_by_hand_and_skips_groups_without_spend() -> None:
    # Two groups by prediction: {1, 2} predict 1.5 vs actual 1 (50%); {3, 4} predict 3.5 vs 4 (12.5%).
    y, p = np.array([0.0, 2.0, 2.0, 6.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert decile_mape(y, p, n_groups=2) == pytest.approx(0.3125)
    # Ten users, one per decile: the three lowest have no spend and are skipped; the others are 10% high.
    y10 = np.array([0, 0, 0, 10, 20, 30, 40, 50, 60, 70], dtype=float)
    assert decile_mape(y10, np.where(y10 > 0, 1.1 * y10, 5.0)) == pytest.approx(0.1)


def test_origin_metrics_reports_the_new_metrics_with_top10_capture() -> None:
    y = np.array([0.0, 0.0, 10.0, 30.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    m = origin_metrics(y, y.copy())
    assert m["gini_norm"] == pytest.approx(1.0)
    assert m["top10_capture"] == pytest.approx(30.0 / 45.0)
    assert m["decile_mape"] == pytest.approx(0.0)
    assert {"spearman", "gini_norm", "decile_mape"} <= set(m)
