"""Covariate features: hand-computed values (month, week, with and without order_col), the user table
as of the cutoff, and leakage (attributes and user rows dated after the cutoff change nothing)."""

from __future__ import annotations

import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.errors import ConfigError
from spendlab.features import FeatureConfig, build_features
from spendlab.features.config import CovariateConfig
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.users import link_counts, load_users

#: Worked by hand in the comments of each test. O5 is after every cutoff; u3 buys only in January.
LINES = """order,cust,ts,amount,dept,disc,coupon
O1,u1,2024-01-10 10:00:00,10.00,A,0,0
O2,u1,2024-02-05 10:00:00,6.00,A,-1.00,0
O2,u1,2024-02-05 10:00:00,4.00,B,0,0.50
O3,u1,2024-03-20 10:00:00,5.00,C,-0.50,0
O4,u2,2024-03-02 10:00:00,8.00,B,0,0
O5,u2,2024-04-02 10:00:00,99.00,A,-5.00,1
O6,u3,2024-01-15 10:00:00,3.00,A,0,0
"""
USERS = """hh,since,age,size
u1,,young,2
u1,2024-03-15,old,3
u2,2024-05-01,young,1
zz,,mid,4
"""
ATTRS = {"dept": {"column": "dept"}, "disc": {"column": "disc", "type": "amount"},
         "coupon": {"column": "coupon", "type": "amount"}}
COV = CovariateConfig(window=2, category_share={"dept": 2}, amount_share=("disc",), use_rate=("coupon",),
                      distinct=("dept",), user_attributes=("age", "size"))
SHARE = ["cov_dept_share_top1_window2", "cov_dept_share_top2_window2", "cov_disc_amount_share_window2",
         "cov_coupon_use_rate_window2", "cov_dept_distinct_window2"]
USER = ["user_age__mid", "user_age__old", "user_age__young", "user_age__missing", "user_size", "user_size__missing"]


def features(tmp_path, *, as_of, freq="month", orders=False, lines=LINES, users=USERS, cov=COV):
    (tmp_path / "l.csv").write_text(lines)
    (tmp_path / "users.csv").write_text(users)
    generic = {"user_col": "cust", "attributes": ATTRS, **({"order_col": "order"} if orders else {})}
    tx = load_transactions(str(tmp_path / "l.csv"), "generic", config=ReaderConfig(generic=generic))
    tx.users = load_users(UserTableSpec(input=str(tmp_path / "users.csv"), key="hh", valid_from="since",
                                        columns={"age": "category", "size": "number"}))
    con = connect()
    tx.register(con)
    link_counts(tx.users, con)
    frame = build_features(con, freq=freq, as_of=as_of, config=FeatureConfig(covariates=cov))
    return frame.set_index("user_id"), tx


def rows(frame, cols):
    return {u: [round(v, 12) for v in frame.loc[u, cols]] for u in frame.index}


def test_monthly_line_level_covariates_match_the_hand_computation(tmp_path):
    # window Feb..Mar. Lines: u1 6 A (disc -1), 4 B (coupon .5), 5 C (disc -.5); u2 8 B. Ranking B 12, A 6, C 5.
    frame, _ = features(tmp_path, as_of="2024-03-31")
    assert rows(frame, SHARE) == {"u1": [round(4 / 15, 12), round(6 / 15, 12), 0.1, round(1 / 3, 12), 3.0],
                                  "u2": [1.0, 0.0, 0.0, 0.0, 1.0], "u3": [0.0, 0.0, 0.0, 0.0, 0.0]}


def test_monthly_order_level_covariates_count_an_order_for_each_of_its_categories(tmp_path):
    # orders: u1 O2 10.00 {A, B} (disc -1, coupon .5), O3 5.00 {C}; u2 O4 8.00 {B}. Ranking B 18, A 10, C 5.
    frame, _ = features(tmp_path, as_of="2024-03-31", orders=True)
    assert rows(frame, SHARE) == {"u1": [round(10 / 15, 12), round(10 / 15, 12), 0.1, 0.5, 3.0],
                                  "u2": [1.0, 0.0, 0.0, 0.0, 1.0], "u3": [0.0, 0.0, 0.0, 0.0, 0.0]}


@pytest.mark.parametrize("orders", [False, True])
def test_weekly_covariates_match_the_hand_computation(tmp_path, orders):
    # ISO weeks Mar 11..24: only O3 (u1, 5.00, C, disc -.5). Ranking C alone; top2 is empty.
    frame, _ = features(tmp_path, as_of="2024-03-24", freq="week", orders=orders)
    assert rows(frame, SHARE) == {"u1": [1.0, 0.0, 0.1, 0.0, 1.0], "u2": [0.0] * 5, "u3": [0.0] * 5}
    # weeks Feb 26..Mar 10: only O4 (u2, 8.00, B)
    frame, _ = features(tmp_path, as_of="2024-03-10", freq="week", orders=orders)
    assert rows(frame, SHARE) == {"u1": [0.0] * 5, "u2": [1.0, 0.0, 0.0, 0.0, 1.0], "u3": [0.0] * 5}


def test_user_attributes_are_joined_as_of_the_cutoff_with_an_explicit_missing_level(tmp_path):
    # at 03-31 u1 holds its 03-15 row (old, 3); u2's only row starts 05-01: missing; u3 has no row
    frame, tx = features(tmp_path, as_of="2024-03-31")
    assert rows(frame, USER) == {"u1": [0, 1, 0, 0, 3, 0], "u2": [0, 0, 0, 1, 0, 1], "u3": [0, 0, 0, 1, 0, 1]}
    # at 03-10 u1's 03-15 row is not known yet: its undated row (young, 2)
    frame, _ = features(tmp_path, as_of="2024-03-10", freq="week")
    assert rows(frame, USER)["u1"] == [0, 0, 1, 0, 2, 0]
    assert (tx.users.unused_keys, tx.users.missing_users) == (1, 1)  # zz unused; u3 without a row
    assert (tx.users.report.rows_in, tx.users.report.accepted) == (4, 4)


POISON_LINES = LINES + """O7,u1,2024-04-01 00:00:00,500.00,Z,-400.00,9
O8,u9,2024-04-03 00:00:00,1.00,Y,0,0
O9,u1,2024-04-05 00:00:00,7.00,A,-2,1
"""
POISON_USERS = USERS + """u1,2024-04-01,mid,99
u3,2024-04-01,old,5
u2,2024-04-30,old,8
"""


@pytest.mark.parametrize("orders", [False, True])
@pytest.mark.parametrize("freq, as_of", [("month", "2024-03-31"), ("week", "2024-03-31")])
def test_attributes_and_user_rows_after_the_cutoff_change_nothing(tmp_path, orders, freq, as_of):
    cov = COV.model_copy(update={"user_levels": {"age": ("mid", "old", "young")}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean, _ = features(tmp_path / "a", as_of=as_of, freq=freq, orders=orders, cov=cov)
    poisoned, _ = features(tmp_path / "b", as_of=as_of, freq=freq, orders=orders, lines=POISON_LINES,
                           users=POISON_USERS, cov=cov)
    assert list(poisoned.columns) == list(clean.columns)
    assert poisoned.equals(clean)


def test_covariates_name_a_missing_attribute_or_user_table(tmp_path):
    with pytest.raises(ConfigError, match="store"):
        features(tmp_path, as_of="2024-03-31", cov=CovariateConfig(distinct=("store",)))
    with pytest.raises(ConfigError, match="no column 'income'"):
        features(tmp_path, as_of="2024-03-31", cov=CovariateConfig(user_attributes=("income",)))


def test_a_bad_user_row_is_rejected_naming_line_and_column(tmp_path):
    bad = USERS + "u4,2024-13-01,old,2\nu5,,old,two\n,,old,1\nu1,,old,2\n"
    _, tx = features(tmp_path, as_of="2024-03-31", users=bad)
    got = [(r.line, r.column, r.error_type) for r in tx.users.rejects]
    assert got == [(6, "since", "DATE_PARSE"), (7, "size", "NUMBER_FORMAT"), (8, "hh", "NULL_KEY"),
                   (9, "hh", "DUPLICATE_KEY")]
    r = tx.users.report
    assert (r.rows_in, r.accepted, r.rejected) == (8, 4, 4)
