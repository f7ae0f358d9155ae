"""Permutation importance: groups, a hand-checkable model, and no change to the caller's frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spendlab.forecast.importance import covariate_groups, permutation_importance


def test_covariate_columns_are_grouped_by_user_attribute_and_other_columns_are_left_out():
    cols = ["spend_lag1", "cov_dept_share_top1_window6", "user_age__young", "user_age__missing", "user_size",
            "user_size__missing", "user_id"]
    groups = covariate_groups([c for c in cols if c != "user_id"])  # the id never reaches it: dropped before
    assert groups == {"cov_dept_share_top1_window6": ["cov_dept_share_top1_window6"],
                      "user_age": ["user_age__young", "user_age__missing"],
                      "user_size": ["user_size", "user_size__missing"]}


def test_a_covariate_the_model_ignores_has_zero_importance_and_one_it_reads_a_positive_one():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"cov_a": rng.normal(size=500), "cov_b": rng.normal(size=500)})
    y = 3.0 * X["cov_a"].to_numpy()  # a perfect model of y reads only cov_a
    before = X.copy()
    out = permutation_importance(X, y, lambda f: 3.0 * f["cov_a"].to_numpy(),
                                 {"cov_a": ["cov_a"], "cov_b": ["cov_b"]}, n_repeats=3, rng=rng)
    assert out["cov_b"] == [0.0, 0.0, 0.0]
    # shuffling cov_a: RMSE = 3 * sqrt(mean((a - a[perm])^2)) ~ 3 * sqrt(2) for unit-variance a
    assert all(3.5 < v < 5.0 for v in out["cov_a"])
    assert X.equals(before)


def test_a_group_moves_as_one_row():
    X = pd.DataFrame({"user_g__x": [1.0, 0.0, 0.0, 0.0], "user_g__missing": [0.0, 1.0, 1.0, 1.0]})
    seen = []

    def predict(frame):
        seen.append(frame.copy())
        return np.zeros(len(frame))

    permutation_importance(X, np.zeros(4), predict, {"user_g": list(X.columns)}, n_repeats=2,
                           rng=np.random.default_rng(1))
    for frame in seen:  # each shuffled row is still a one-hot row
        assert (frame.sum(axis=1) == 1.0).all()
