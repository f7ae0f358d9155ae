"""Realized accuracy: the join keeps the scores' rows, and every metric matches a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.errors import SpendlabError
from spendlab.forecast.metrics import origin_metrics
from spendlab.monitor.accuracy import bootstrap_interval, join_realized, realized_accuracy


def _scores(pred, p_spend=None, lower=None, upper=None, segment=None, users=None) -> pd.DataFrame:
    n = len(pred)
    return pd.DataFrame({"user_id": users or [f"u{i}" for i in range(n)], "prediction": pred,
                         "p_spend": p_spend or [0.5] * n, "lower": lower or [0.0] * n, "upper": upper or [0.0] * n,
                         "segment": segment or ["active"] * n, "basis": ["model"] * n})


def test_join_keeps_score_order_and_gives_unseen_users_zero() -> None:
    scores = _scores([8.0, 1.0, 0.0], users=["c", "a", "b"])
    realized = pd.DataFrame({"user_id": ["a", "c", "d"], "target": [0.0, 10.0, 5.0]})
    joined = join_realized(scores, realized)
    assert joined["user_id"].tolist() == ["c", "a", "b"]  # the scores' order; d (not scored) is left out
    assert joined["y_true"].tolist() == [10.0, 0.0, 0.0]
    assert "y_true" not in scores.columns  # the input is not changed


def test_join_refuses_a_user_scored_twice_and_missing_columns() -> None:
    with pytest.raises(SpendlabError, match="more than once"):
        join_realized(_scores([1.0, 2.0], users=["a", "a"]), pd.DataFrame({"user_id": [], "target": []}))
    with pytest.raises(SpendlabError, match="p_spend"):
        join_realized(_scores([1.0]).drop(columns="p_spend"), pd.DataFrame({"user_id": [], "target": []}))


def test_metrics_of_a_three_user_period_by_hand() -> None:
    # y = [10, 0, 0], prediction = [8, 1, 0]: errors -2, +1, 0
    scores = _scores([8.0, 1.0, 0.0], p_spend=[0.9, 0.2, 0.1], lower=[5.0, 0.0, 0.0], upper=[9.0, 0.0, 0.0],
                     segment=["active", "active", "lapsed"], users=["a", "b", "c"])
    joined = join_realized(scores, pd.DataFrame({"user_id": ["a"], "target": [10.0]}))
    acc = realized_accuracy(joined).set_index("group")
    overall = acc.loc["all"]
    assert overall["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert overall["mae"] == pytest.approx(1.0)
    assert overall["bias"] == pytest.approx(-0.1)  # (-2 + 1 + 0) / 10
    assert overall["interval_coverage"] == pytest.approx(2 / 3)  # 10 is above [5, 9]; 0 in [0, 0] twice
    assert overall["brier_p_spend"] == pytest.approx(((0.9 - 1) ** 2 + 0.2 ** 2 + 0.1 ** 2) / 3)
    assert overall["top10_capture"] == pytest.approx(1.0)  # the top user (8.0) made all the spend
    assert acc.loc["active", "rmse"] == pytest.approx(math.sqrt(5 / 2))
    assert acc.loc["lapsed", "n_users"] == 1 and math.isnan(acc.loc["lapsed", "bias"])  # no spend: no ratio
    assert list(acc.index) == ["all", "active", "lapsed"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500)), min_size=1, max_size=40))
def test_point_metrics_are_the_backtests_own(rows: list[tuple[float, float]]) -> None:
    """Any period: overall rmse, mae, bias, gini and top-10% capture equal :func:`origin_metrics`
    on the same rows, and rmse / mae equal a plain numpy computation."""
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    scores = _scores(p.tolist())
    joined = join_realized(scores, pd.DataFrame({"user_id": scores["user_id"], "target": y}))
    got = realized_accuracy(joined).iloc[0]
    want = origin_metrics(y, p)
    for m in ("rmse", "mae", "bias", "gini_norm", "top10_capture"):
        assert (math.isnan(got[m]) and math.isnan(want[m])) or got[m] == want[m]
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    assert got["mae"] == pytest.approx(np.mean(np.abs(p - y)))


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    y = rng.gamma(0.5, 50, 400)
    scores = _scores((y * 0.8 + 3).tolist(), lower=[0.0] * 400, upper=(y * 1.5).tolist())
    joined = join_realized(scores, pd.DataFrame({"user_id": scores["user_id"], "target": y}))
    acc = realized_accuracy(joined).iloc[0]
    for metric in ("rmse", "realized_total", "interval_coverage"):
        lo, hi = bootstrap_interval(joined, metric=metric, n_boot=300, seed=7)
        assert (lo, hi) == bootstrap_interval(joined, metric=metric, n_boot=300, seed=7)
        assert lo <= acc[metric] <= hi
    with pytest.raises(ValueError, match="no bootstrap"):
        bootstrap_interval(joined, metric="gini_norm")
