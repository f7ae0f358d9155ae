"""Materialised Parquet rows hold few-valued categories as DuckDB ENUMs; the covariates are the same doubles.

:meth:`~spendlab.io.load.Transactions.register` with ``materialise`` types a category attribute (or an
order's set of them) as an ENUM of its values; the covariate scan then compares integers. The same
lines read without materialising (text) must give the same values, column for column, through the one
scan and through the per-user-and-category statement, and the canonical rows stay text.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.features import FeatureConfig, build_features_arrow, covscan
from spendlab.features import covariates as cov
from spendlab.io import load as load_mod
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.users import load_users
from tests.features.test_covariates_oracle import ATTRS
from tests.features.test_covariates_scan import CONFIGS, USERS, frame


def _tx(tmp_path, seed: int, orders: bool):
    df = frame(seed, orders)
    # a level holding a quote and a space: the ENUM's values are SQL literals
    df["dept"] = df["dept"].replace({"D": "Kid's wear"})
    df.to_parquet(tmp_path / "l.parquet", index=False)
    generic = {"user_col": "cust", "attributes": ATTRS, **({"order_col": "order"} if orders else {})}
    tx = load_transactions(str(tmp_path / "l.parquet"), "generic", config=ReaderConfig(generic=generic))
    (tmp_path / "users.csv").write_text(USERS)
    tx.users = load_users(UserTableSpec(input=str(tmp_path / "users.csv"), key="cust", valid_from="since",
                                        columns={"band": "category", "size": "number"}))
    return tx


def _both(tmp_path, seed: int, orders: bool):
    """The same Parquet lines on two connections: materialised (ENUMs) and a plain view (text)."""
    tx = _tx(tmp_path, seed, orders)
    typed, plain = connect(), connect()
    tx.register(typed, materialise=True)
    tx.register(plain)
    return tx, typed, plain


def _types(con) -> dict[str, str]:
    return {n: t for n, t, *_ in con.execute("DESCRIBE transactions").fetchall()}


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
def test_materialised_categories_are_enums_of_their_values_and_the_canonical_rows_stay_text(tmp_path, orders):
    tx, typed, plain = _both(tmp_path, 0, orders)
    suffix = "[]" if orders else ""
    types = _types(typed)
    assert types["dept"] == f"ENUM('A', 'B', 'C', 'Kid''s wear'){suffix}"
    assert types["store"] == f"ENUM('s1', 's2', 's3'){suffix}"
    assert types["disc"] == "DOUBLE"
    assert _types(plain)["dept"] == f"VARCHAR{suffix}"
    # the same rows, value for value, once the ENUMs are read as text
    cols = "user_id, ts, amount, line, CAST(dept AS VARCHAR" + suffix + ") AS dept, CAST(store AS VARCHAR" + suffix + \
        ") AS store, disc, coupon"
    query = f"SELECT {cols} FROM transactions ORDER BY source_file, line"
    assert typed.sql(query).fetchall() == plain.sql(query).fetchall()
    assert tx.to_arrow().schema.field("dept").type == (pa.list_(pa.string()) if orders else pa.string())


@pytest.mark.parametrize("orders", [False, True], ids=["lines", "orders"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("freq, as_of", [("month", dt.date(2024, 3, 31)), ("week", dt.date(2024, 3, 17))])
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_covariates_of_enum_categories_equal_those_of_text(tmp_path, seed, freq, as_of, cfg, orders):
    _, typed, plain = _both(tmp_path, seed, orders)
    assert set(covscan.enum_types(typed, cfg, view="transactions")) == {*cfg.category_share, *cfg.distinct}
    assert covscan.enum_types(plain, cfg, view="transactions") == {}
    config = FeatureConfig(covariates=cfg)
    got = build_features_arrow(typed, freq=freq, as_of=as_of, config=config)
    want = build_features_arrow(plain, freq=freq, as_of=as_of, config=config)
    assert got.column_names == want.column_names
    names = cov.covariate_names(cfg, cov.user_columns(plain, cfg, view="transactions"))
    assert all(n in got.column_names for n in names)
    assert sum(float(np.abs(got.column(n).to_numpy()).sum()) for n in names) > 0  # not all zero
    for name in got.column_names:
        assert got.column(name).equals(want.column(name)), name
    # the per-user-and-category statement (many levels, Spark's) reads the ENUMs to the same values
    for con in (typed, plain):
        listed = cov.listed_attributes(con, cfg, view="transactions")
        sql = cov.covariates_sql(cfg, as_of=as_of, freq=freq, view="transactions",
                                 users=cov.user_columns(con, cfg, view="transactions"), listed=listed)
        con.execute(f"CREATE OR REPLACE TEMP TABLE per_cat AS SELECT * FROM ({sql})")
    order = "SELECT * FROM per_cat ORDER BY user_id"
    assert typed.sql(order).fetchall() == plain.sql(order).fetchall()


def test_the_scan_casts_its_levels_to_the_enum(tmp_path):
    _, typed, _ = _both(tmp_path, 0, True)
    cfg, as_of = CONFIGS[0], dt.date(2024, 3, 31)
    listed = cov.listed_attributes(typed, cfg, view="transactions")
    levels = covscan.ranked_levels(typed, cfg, as_of=as_of, freq="month", view="transactions", listed=listed)
    enums = covscan.enum_types(typed, cfg, view="transactions")
    sql = covscan.scan_covariates_sql(cfg, as_of=as_of, freq="month", view="transactions", users=[], levels=levels,
                                      listed=listed, typed=enums)
    assert f"list_contains(\"dept\", CAST('{levels.ranked['dept'][0]}' AS {enums['dept']}))" in sql


def test_a_category_with_more_values_than_an_enum_takes_stays_text(tmp_path, monkeypatch):
    monkeypatch.setattr(load_mod, "MAX_ENUM_LEVELS", 3)  # dept has 4 values, store 3
    tx = _tx(tmp_path, 0, True)
    con = connect()
    tx.register(con, materialise=True)
    types = _types(con)
    assert types["dept"] == "VARCHAR[]"
    assert types["store"] == "ENUM('s1', 's2', 's3')[]"
