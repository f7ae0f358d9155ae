"""The experiment report's tables on tiny hand-computed predictions, and its page's contents."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.report import (
    best_peer,
    calibration_table,
    clv_table,
    gain_table,
    leaderboard_markdown,
    report_tables,
    segment_table,
    tracking_table,
)
from spendlab.forecast.report_render import render_report


def _preds() -> pd.DataFrame:
    """Two test origins x 4 users and one validation origin, models a (good ranking) and b (flat)."""
    rows = []
    actual = {"2023-10-31": [0.0, 10.0, 20.0, 70.0], "2023-11-30": [5.0, 5.0, 0.0, 30.0]}
    seg = ["lapsed", "active", "active", "new"]
    for cutoff, y in actual.items():
        for i, yt in enumerate(y):
            rows.append({"model": "a", "split": "test", "cutoff": cutoff, "target_period": cutoff[:8] + "01",
                         "user_id": f"u{i}", "segment": seg[i], "y_true": yt, "y_pred": [1.0, 8.0, 22.0, 60.0][i]})
            rows.append({"model": "b", "split": "test", "cutoff": cutoff, "target_period": cutoff[:8] + "01",
                         "user_id": f"u{i}", "segment": seg[i], "y_true": yt, "y_pred": 20.0})
    rows.append({"model": "a", "split": "validation", "cutoff": "2023-09-30", "target_period": "2023-10-01",
                 "user_id": "u0", "segment": "new", "y_true": 1000.0, "y_pred": 0.0})
    return pd.DataFrame(rows)


def test_tracking_table_sums_actual_and_predicted_spend_per_test_origin() -> None:
    t = tracking_table(_preds(), ["a", "b"])
    assert t["cutoff"].tolist() == ["2023-10-31", "2023-11-30"]  # the validation origin is left out
    assert t["actual"].tolist() == [100.0, 40.0]
    assert t["a"].tolist() == [91.0, 91.0] and t["b"].tolist() == [80.0, 80.0]


def test_calibration_deciles_are_cut_within_each_origin_then_pooled() -> None:
    t = calibration_table(_preds(), "a", n_bins=2)
    # Per origin the two lowest forecasts (1, 8) form group 1, the highest (22, 60) group 2.
    assert t["n"].tolist() == [4, 4]
    assert t["mean_pred"].tolist() == pytest.approx([(1 + 8) / 2, (22 + 60) / 2])
    assert t["mean_actual"].tolist() == pytest.approx([(0 + 10 + 5 + 5) / 4, (20 + 70 + 0 + 30) / 4])


def test_gain_curve_of_a_perfect_ranking_equals_the_perfect_curve_and_flat_forecasts_keep_row_order() -> None:
    g = gain_table(_preds(), ["a", "b"], n_points=5)  # user shares 0, .25, .5, .75, 1
    # Origin 1: a ranks u3 (70), u2 (20), u1 (10), u0 (0) = perfect; origin 2: u3 (30), u2 (0), u1 (5), u0 (5).
    np.testing.assert_allclose(g["a"], [0, (0.70 + 0.75) / 2, (0.90 + 0.75) / 2, (1.0 + 0.875) / 2, 1.0])
    np.testing.assert_allclose(g["perfect"], [0, (0.70 + 0.75) / 2, (0.90 + 0.875) / 2, 1.0, 1.0])
    # b predicts 20 for all: ties keep row order u0, u1, u2, u3.
    np.testing.assert_allclose(g["b"], [0, (0.0 + 0.125) / 2, (0.1 + 0.25) / 2, (0.3 + 0.25) / 2, 1.0])
    assert g["random"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_segment_table_pools_origins_and_measures_bias_against_the_segment_spend() -> None:
    t = segment_table(_preds(), ["a"]).set_index("segment")
    assert t.index.tolist() == ["new", "active", "lapsed"]
    assert t.loc["new", "user_origins"] == 2 and t.loc["active", "user_origins"] == 4
    assert t.loc["new", "rmse"] == pytest.approx(math.sqrt(((60 - 70) ** 2 + (60 - 30) ** 2) / 2))
    assert t.loc["lapsed", "bias"] == pytest.approx((1 + 1 - 0 - 5) / 5)
    assert t.loc["new", "actual_share"] == pytest.approx(100 / 140)


def test_clv_table_uses_logged_means_and_computes_only_the_missing_metrics() -> None:
    means = {"a": {"test_top10_capture": 0.123}, "b": {"test_top10_capture": 0.5}}
    t, computed = clv_table(_preds(), means, ["a", "b"])
    t = t.set_index("model")
    assert computed == ["gini_norm", "spearman", "decile_mape"]
    assert t.loc["a", "top10_capture"] == 0.123  # taken from the backtest's means
    assert t.loc["a", "gini_norm"] < 1.0 and t.loc["a", "gini_norm"] > 0.5
    # Flat forecasts: every ordering is a tie, the expected Gini of ties is 0; no rank correlation.
    assert t.loc["b", "gini_norm"] == pytest.approx(0.0) and math.isnan(t.loc["b", "spearman"])
    _, none = clv_table(_preds(), {m: {f"test_{c}": 1.0 for c in ("gini_norm", "spearman", "decile_mape",
                                                                    "top10_capture")} for m in "ab"}, ["a", "b"])
    assert none == []


def _board() -> pd.DataFrame:
    return pd.DataFrame({"model": ["a", "b", "last_period", "zero"], "rmse": [5.0, 25.0, 30.0, 40.0],
                         "validation_rmse": [4.0, 20.0, 35.0, 30.0], "bias": [-0.1, 0.2, 0.0, -1.0],
                         "champion": [True, False, False, False], "tuned": [False] * 4})


def test_best_peer_is_the_best_baseline_on_validation_else_the_best_other_model() -> None:
    assert best_peer(_board(), "a") == "zero"  # baselines only: zero 30 < last_period 35
    assert best_peer(_board()[_board()["model"].isin(["a", "b"])], "a") == "b"


def test_leaderboard_markdown_has_a_champion_line_and_every_model_within_the_tag_limit() -> None:
    md = leaderboard_markdown(_board(), "a", name="exp|1")
    assert md.startswith("**Champion: a**") and "test RMSE 5" in md
    assert md.count("\n| ") == 4 + 1 and "| **a** |" in md
    short = leaderboard_markdown(_board(), "a", name="x", max_chars=300)
    assert len(short) <= 300 and "| zero |" in short


def test_report_page_is_self_contained_escaped_and_shows_all_five_figures() -> None:
    preds = _preds()
    preds.loc[preds["model"] == "b", "model"] = "<b>"
    board = _board().replace({"model": {"b": "<b>"}})
    tables = report_tables("demo", board, "a", preds, {"a": {}, "<b>": {}}, peer="<b>")
    html = render_report(tables)
    assert html.count('src="data:image/png;base64,') == 5
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "&lt;b&gt;" in html and "<b>" not in html.replace("<b>test</b>", "")
    assert "gini_norm, spearman, decile_mape, top10_capture computed by the report" in html
