"""The one-scan covariate statement equals the per-user-and-category statement, value for value.

Categories with few levels, text or an order's set (``order_col``), are computed in one per-user scan
(ranked levels first); the per-user-and-category statement stays for many levels and Spark. Both are
run here on the same random lines (refunds, missing categories, ties) and a user table, for both
frequencies, per line and per order, and several declarations, and must give the same doubles.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.features import FeatureConfig, build_features, covscan
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
    # every level has a share: the distinct count is read from the shares
    CovariateConfig(window=3, category_share={"dept": 6, "store": 3}, distinct=("dept", "store")),
]


def frame(seed: int, orders: bool) -> pd.DataFrame:
    """The oracle test's random lines; with ``orders``, a user's lines of one day are one order."""
    df = lines(seed)
    return df.assign(order=df["cust"] + "-" + df["ts"].str[:10]) if orders else df


def connection(tmp_path, df: pd.DataFrame, orders: bool):
    df.to_csv(tmp_path / "l.csv", index=False)
    (tmp_path / "users.csv").write_text(USERS)
    generic = {"user_col": "cust", "attributes": ATTRS, **({"order_col": "order"} if orders else {})}
    tx = load_transactions(str(tmp_path / "l.csv"), "generic", config=ReaderConfig(generic=generic))
    tx.users = load_users(UserTableSpec(input=str(tmp_path / "users.csv"), key="cust", valid_from="since",
                                        columns={"band": "category", "size": "number"}))
    con = connect()
    tx.register(con)
    return con


def per_category(con, cfg, *, as_of, freq) -> pd.DataFrame:
    users = cov.user_columns(con, cfg, view="transactions")
    listed = cov.listed_attributes(con, cfg, view="transactions")
    sql = cov.covariates_sql(cfg, as_of=as_of, freq=freq, view="transactions", users=users, listed=listed)
    frame = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) FROM ({sql})").df()
    return frame.set_index("user_id").fillna(0.0)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, names: list[str], what: str) -> None:
    assert sorted(got.index) == sorted(want.index)
    assert got[names].abs().to_numpy().sum() > 0  # not all zero
    for name in names:
        np.testing.assert_array_equal(got[name].to_numpy(np.float64), want.loc[got.index, name].to_numpy(np.float64),
                                      err_msg=f"{name} ({what})")


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("freq, as_of", [("month", dt.date(2024, 3, 31)), ("week", dt.date(2024, 3, 17))])
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_one_scan_equals_the_per_category_statement(tmp_path, seed, freq, as_of, cfg, orders):
    con = connection(tmp_path, frame(seed, orders), orders)
    listed = cov.listed_attributes(con, cfg, view="transactions")
    assert bool(listed) == (orders and bool({*cfg.category_share, *cfg.distinct}))
    assert covscan.ranked_levels(con, cfg, as_of=as_of, freq=freq, view="transactions",
                                 listed=listed) is not None  # the scan runs
    got = build_features(con, freq=freq, as_of=as_of, config=FeatureConfig(covariates=cfg)).set_index("user_id")
    want = per_category(con, cfg, as_of=as_of, freq=freq)
    names = cov.covariate_names(cfg, cov.user_columns(con, cfg, view="transactions"))
    assert_same(got, want, names, f"seed {seed}, {freq}, orders {orders}")


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
@pytest.mark.parametrize("positive", [False, True])
def test_distinct_from_the_shares_or_from_bits_agree(tmp_path, orders, positive):
    # the shares cover every level: with positive spend the count reads them, otherwise bits; same values
    con = connection(tmp_path, frame(3, orders), orders)
    cfg, as_of = CONFIGS[4], dt.date(2024, 3, 31)
    listed = cov.listed_attributes(con, cfg, view="transactions")
    levels = covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions", listed=listed)
    assert levels.positive  # cents only
    levels = covscan.Levels(levels.ranked, positive)
    sql = covscan.scan_covariates_sql(cfg, as_of=as_of, freq="month", view="transactions", users=[], levels=levels,
                                      listed=listed)
    assert ("BIT_OR" in sql) is not positive
    got = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) FROM ({sql})").df()
    assert_same(got.set_index("user_id").fillna(0.0), per_category(con, cfg, as_of=as_of, freq="month"),
                cov.covariate_names(cfg, []), f"orders {orders}, positive {positive}")


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
    assert covscan.ranked_levels(con, cfg, as_of=dt.date(2024, 3, 31), freq="month", view="transactions") == \
        covscan.Levels({"dept": ("A", "B", "C")}, True)
    frame = build_features(con, freq="month", as_of="2024-03-31", config=FeatureConfig(covariates=cfg))
    frame = frame.set_index("user_id")
    # u1: spend 17.00, A 0, B 12.00 -> top1 (A) 0, top2 (B) 12/17; u2: all A; u3: 1.00 with no department
    assert frame.loc["u1", "cov_dept_share_top2_window2"] == 12 / 17
    assert frame.loc["u1", "cov_dept_share_top1_window2"] == 0.0
    assert frame.loc["u2", "cov_dept_share_top1_window2"] == 1.0
    assert frame.loc[:, "cov_dept_distinct_window2"].to_dict() == {"u1": 2.0, "u2": 1.0, "u3": 0.0}


def test_ranked_levels_of_order_sets_add_each_order_to_each_of_its_categories(tmp_path):
    # orders in March: o1 {A, B} 10.00 (6 + 4), o2 {B} 3.00, o3 {C} 12.00, o4 a refund {D}
    # A 10.00, B 13.00, C 12.00 -> B, C, A; an order counts for each category it holds
    (tmp_path / "l.csv").write_text(
        "cust,order,ts,amount,dept\nu1,o1,2024-03-01 09:00:00,6.00,A\nu1,o1,2024-03-01 09:00:00,4.00,B\n"
        "u2,o2,2024-03-02 09:00:00,3.00,B\nu2,o3,2024-03-03 09:00:00,12.00,C\nu3,o4,2024-03-04 09:00:00,-2.00,D\n")
    tx = load_transactions(str(tmp_path / "l.csv"), "generic", config=ReaderConfig(
        generic={"user_col": "cust", "order_col": "order", "attributes": {"dept": {"column": "dept"}}}))
    con = connect()
    tx.register(con)
    cfg = CovariateConfig(window=1, category_share={"dept": 3}, distinct=("dept",))
    levels = covscan.ranked_levels(con, cfg, as_of=dt.date(2024, 3, 31), freq="month", view="transactions",
                                   listed={"dept"})
    assert levels == covscan.Levels({"dept": ("B", "C", "A")}, True)
    got = build_features(con, freq="month", as_of="2024-03-31", config=FeatureConfig(covariates=cfg)).set_index("user_id")
    # u1: one order of 10.00 holding A and B: B 10/10, C 0, A 10/10; u2: B 3/15, C 12/15
    assert got.loc["u1", ["cov_dept_share_top1_window1", "cov_dept_share_top2_window1",
                          "cov_dept_share_top3_window1"]].tolist() == [1.0, 0.0, 1.0]
    assert got.loc["u2", "cov_dept_share_top1_window1"] == 3 / 15
    assert got.loc[:, "cov_dept_distinct_window1"].to_dict() == {"u1": 2.0, "u2": 2.0, "u3": 0.0}


def many_levels(n_levels: int, orders: bool) -> pd.DataFrame:
    """Lines over ``n_levels`` departments, every one bought in March 2024, with spend ties."""
    rng = np.random.default_rng(n_levels)
    n = 4 * n_levels
    depts = np.concatenate([np.arange(n_levels), rng.integers(0, n_levels, n - n_levels)])
    df = pd.DataFrame({"cust": rng.choice([f"u{i}" for i in range(9)], n),
                       "ts": [f"2024-03-{d:02d} 10:00:00" for d in rng.integers(1, 29, n)],
                       "amount": [f"{v / 100:.2f}" for v in rng.integers(100, 600, n)],
                       "dept": [f"d{i:02d}" for i in depts], "store": "", "disc": "", "coupon": ""})
    return df.assign(order=df["cust"] + "-" + df["ts"].str[:10]) if orders else df


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
@pytest.mark.parametrize("n_levels", [covscan.SCAN_MAX_LEVELS, covscan.SCAN_MAX_LEVELS + 1])
def test_many_levels_scan_up_to_the_limit_and_fall_back_beyond_it(tmp_path, orders, n_levels):
    con = connection(tmp_path, many_levels(n_levels, orders), orders)
    cfg, as_of = CovariateConfig(window=1, category_share={"dept": 5}, distinct=("dept",)), dt.date(2024, 3, 31)
    listed = cov.listed_attributes(con, cfg, view="transactions")
    levels = covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions", listed=listed)
    assert (levels is None) == (n_levels > covscan.SCAN_MAX_LEVELS)
    got = build_features(con, freq="month", as_of=as_of, config=FeatureConfig(covariates=cfg)).set_index("user_id")
    want = per_category(con, cfg, as_of=as_of, freq="month")
    assert_same(got, want, cov.covariate_names(cfg, []), f"{n_levels} levels, orders {orders}")
    assert got["cov_dept_distinct_window1"].max() > 20  # the high bits count


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
def test_more_levels_than_the_scan_takes_fall_back_to_the_same_values(tmp_path, monkeypatch, orders):
    con = connection(tmp_path, frame(0, orders), orders)
    cfg, as_of = CONFIGS[0], dt.date(2024, 3, 31)
    scanned = build_features(con, freq="month", as_of=as_of, config=FeatureConfig(covariates=cfg))
    monkeypatch.setattr(covscan, "SCAN_MAX_LEVELS", 2)  # dept has 4 levels in the window
    listed = cov.listed_attributes(con, cfg, view="transactions")
    assert covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions", listed=listed) is None
    fallback = build_features(con, freq="month", as_of=as_of, config=FeatureConfig(covariates=cfg))
    pd.testing.assert_frame_equal(scanned, fallback)


def _window_rows(con, dept_type: str, rows: str) -> None:
    con.execute(f"CREATE TABLE transactions (user_id VARCHAR, ts TIMESTAMP, amount DOUBLE, dept {dept_type})")
    con.execute(f"INSERT INTO transactions VALUES {rows}")


def test_ranked_levels_of_sets_skip_missing_sets_and_refuse_a_missing_level_inside_one():
    # March 2024: {A, B} 2.00, {B} 3.00, a missing set 9.00, an empty set 4.00: B 5.00, A 2.00;
    # the 0.00001 purchase is below one unit of money, so a level bought may have no spend (positive is False)
    cfg, as_of = CovariateConfig(window=1, category_share={"dept": 2}), dt.date(2024, 3, 31)
    con = connect()
    _window_rows(con, "VARCHAR[]", "('u1', '2024-03-01', 2.0, ['A', 'B']), ('u1', '2024-03-02', 3.0, ['B']), "
                 "('u2', '2024-03-03', 9.0, NULL), ('u2', '2024-03-04', 4.0, []), ('u2', '2024-03-05', 0.00001, ['C'])")
    levels = covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions", listed={"dept"})
    assert levels == covscan.Levels({"dept": ("B", "A", "C")}, False)
    con.execute("INSERT INTO transactions VALUES ('u3', '2024-03-06', 1.0, ['A', NULL])")
    assert covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions", listed={"dept"}) is None


def test_ranked_levels_skip_a_missing_text_category_and_refuse_one_that_is_not_text():
    cfg, as_of = CovariateConfig(window=1, category_share={"dept": 2}), dt.date(2024, 3, 31)
    con = connect()
    _window_rows(con, "VARCHAR", "('u1', '2024-03-01', 2.0, 'A'), ('u1', '2024-03-02', 3.0, NULL), "
                 "('u2', '2024-03-03', 1.5, 'B'), ('u2', '2024-02-03', 7.0, 'C')")
    assert covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions") == \
        covscan.Levels({"dept": ("A", "B")}, True)
    con = connect()
    _window_rows(con, "INTEGER", "('u1', '2024-03-01', 2.0, 1)")
    assert covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions") is None


def test_amount_share_of_half_unit_discounts_rounds_each_magnitude_away_from_zero():
    # the scan sums |disc| cast to money, the per-category statement the cast made absolute: the same value only
    # because the cast rounds half away from zero. March 2024, u1: spend 10.00, discounts -0.00125 and 0.00375
    # (half a unit of 0.0001 each): 0.0013 + 0.0038 = 0.0051; u2: spend 4.00, discount -0.00005: 0.0001
    cfg, as_of = CovariateConfig(window=1, amount_share=("disc",)), dt.date(2024, 3, 31)
    con = connect()
    con.execute("CREATE TABLE transactions (user_id VARCHAR, ts TIMESTAMP, amount DOUBLE, disc DOUBLE)")
    con.execute("INSERT INTO transactions VALUES ('u1', '2024-03-01', 6.0, -0.00125), ('u1', '2024-03-02', 4.0, 0.00375), "
                "('u2', '2024-03-03', 4.0, -0.00005), ('u2', '2024-03-04', 1.0, NULL)")
    levels = covscan.ranked_levels(con, cfg, as_of=as_of, freq="month", view="transactions")
    sql = covscan.scan_covariates_sql(cfg, as_of=as_of, freq="month", view="transactions", users=[], levels=levels)
    got = con.sql(sql).df().set_index("user_id")["cov_disc_amount_share_window1"]
    assert got.to_dict() == {"u1": 0.0051 / 10.0, "u2": 0.0001 / 5.0}
    want = per_category(con, cfg, as_of=as_of, freq="month")["cov_disc_amount_share_window1"]
    np.testing.assert_array_equal(got.to_numpy(), want.loc[got.index].to_numpy())
