"""The one-scan covariate statement equals the per-user-and-category statement, value for value.

Text categories with few levels are computed in one per-user scan (ranked levels first); the
per-user-and-category statement stays for order-level category sets, many levels and Spark. Both are
run here on the same random lines (refunds, missing categories, ties) and a user table, for both
frequencies and several declarations, and must give the same doubles.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.features import FeatureConfig, build_features
from spendlab.features import covariates as cov
from spendlab.features.config import CovariateConfig
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.users import load_users
from tests.features.test_covariates_oracle import ATTRS, lines

USERS = """cust,since,band,size
u1,,low,2
u2,2024-02-20,high,
u3,2024-05-01,mid,4
u5,,,1
"""
CONFIGS = [
    CovariateConfig(window=2, category_share={"dept": 3, "store": 2}, amount_share=("disc",), use_rate=("coupon",),
                    distinct=("dept", "store"), user_attributes=("band", "size")),
    CovariateConfig(window=1, category_share={"store": 6}, distinct=("dept",), user_attributes=("band",)),
    CovariateConfig(window=4, category_share={"dept": 1}, use_rate=("disc", "coupon")),
    CovariateConfig(window=3, distinct=("store",), amount_share=("coupon",)),
]


def connection(tmp_path, seed):
    lines(seed).to_csv(tmp_path / "l.csv", index=False)
    (tmp_path / "users.csv").write_text(USERS)
    tx = load_transactions(str(tmp_path / "l.csv"), "generic",
                           config=ReaderConfig(generic={"user_col": "cust", "attributes": ATTRS}))
    tx.users = load_users(UserTableSpec(input=str(tmp_path / "users.csv"), key="cust", valid_from="since",
                                        columns={"band": "category", "size": "number"}))
    con = connect()
    tx.register(con)
    return con


def per_category(con, cfg, *, as_of, freq) -> pd.DataFrame:
    users = cov.user_columns(con, cfg, view="transactions")
    sql = cov.covariates_sql(cfg, as_of=as_of, freq=freq, view="transactions", users=users)
    frame = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) FROM ({sql})").df()
    return frame.set_index("user_id").fillna(0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("freq, as_of", [("month", dt.date(2024, 3, 31)), ("week", dt.date(2024, 3, 17))])
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_one_scan_equals_the_per_category_statement(tmp_path, seed, freq, as_of, cfg):
    con = connection(tmp_path, seed)
    assert cov.ranked_levels(con, cfg, as_of=as_of, freq=freq, view="transactions") is not None  # the scan runs
    got = build_features(con, freq=freq, as_of=as_of, config=FeatureConfig(covariates=cfg)).set_index("user_id")
    want = per_category(con, cfg, as_of=as_of, freq=freq)
    names = cov.covariate_names(cfg, cov.user_columns(con, cfg, view="transactions"))
    assert sorted(got.index) == sorted(want.index)
    assert got[names].abs().to_numpy().sum() > 0  # not all zero
    for name in names:
        np.testing.assert_array_equal(got[name].to_numpy(np.float64), want.loc[got.index, name].to_numpy(np.float64),
                                      err_msg=f"{name} (seed {seed}, {freq})")


def test_ranked_levels_order_by_window_spend_then_name(tmp_path):
    # window 2 months to 2024-03-31: B 12.00, A 12.00 (a tie: by name), C 5.00; D only in January, E a refund
    (tmp_path / "l.csv").write_text("cust,ts,amount,dept\nu1,2024-02-01 09:00:00,12.00,B\n"
                                    "u2,2024-03-01 09:00:00,7.00,A\nu2,2024-03-02 09:00:00,5.00,A\n"
                                    "u1,2024-03-05 09:00:00,5.00,C\nu1,2024-01-05 09:00:00,50.00,D\n"
                                    "u3,2024-03-06 09:00:00,-9.00,E\nu3,2024-03-07 09:00:00,1.00,\n")
    tx = load_transactions(str(tmp_path / "l.csv"), "generic",
                           config=ReaderConfig(generic={"user_col": "cust", "attributes": {"dept": {"column": "dept"}}}))
    con = connect()
    tx.register(con)
    cfg = CovariateConfig(window=2, category_share={"dept": 2}, distinct=("dept",))
    assert cov.ranked_levels(con, cfg, as_of=dt.date(2024, 3, 31), freq="month", view="transactions") == \
        {"dept": ("A", "B", "C")}
    frame = build_features(con, freq="month", as_of="2024-03-31", config=FeatureConfig(covariates=cfg))
    frame = frame.set_index("user_id")
    # u1: spend 17.00, A 0, B 12.00 -> top1 (A) 0, top2 (B) 12/17; u2: all A; u3: 1.00 with no department
    assert frame.loc["u1", "cov_dept_share_top2_window2"] == 12 / 17
    assert frame.loc["u1", "cov_dept_share_top1_window2"] == 0.0
    assert frame.loc["u2", "cov_dept_share_top1_window2"] == 1.0
    assert frame.loc[:, "cov_dept_distinct_window2"].to_dict() == {"u1": 2.0, "u2": 1.0, "u3": 0.0}


def test_more_levels_than_the_scan_takes_fall_back_to_the_same_values(tmp_path, monkeypatch):
    con = connection(tmp_path, 0)
    cfg, as_of = CONFIGS[0], dt.date(2024, 3, 31)
    scanned = build_features(con, freq="month", as_of=as_of, config=FeatureConfig(covariates=cfg))
    monkeypatch.setattr(cov, "SCAN_MAX_LEVELS", 2)  # dept has 4 levels in the window
    assert cov.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions") is None
    fallback = build_features(con, freq="month", as_of=as_of, config=FeatureConfig(covariates=cfg))
    pd.testing.assert_frame_equal(scanned, fallback)
