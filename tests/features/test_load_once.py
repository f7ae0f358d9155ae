"""A feature store reads a Parquet line-item input once per run; the frames are those of a plain view."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.features import FeatureConfig
from spendlab.features.store import FeatureStore
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.jobs.covariates import with_users
from tests.features.test_covariates import ATTRS, COV, LINES, USERS

CUTOFFS = ["2024-01-31", "2024-02-29", "2024-03-31"]


def parquet_lines(tmp_path) -> str:
    records = list(csv.DictReader(io.StringIO(LINES)))
    pq.write_table(pa.table({k: [r[k] for r in records] for k in records[0]}), tmp_path / "l.parquet")
    (tmp_path / "users.csv").write_text(USERS)
    return str(tmp_path / "l.parquet")


def load(tmp_path, orders: bool):
    generic = {"user_col": "cust", "attributes": ATTRS, **({"order_col": "order"} if orders else {})}
    tx = load_transactions(parquet_lines(tmp_path), "generic", config=ReaderConfig(generic=generic))
    assert tx.sql is not None and tx.table is None  # a Parquet input: rows behind SQL, not in memory
    spec = UserTableSpec(input=str(tmp_path / "users.csv"), key="hh", valid_from="since",
                         columns={"age": "category", "size": "number"})
    return with_users(tx, spec)


@pytest.mark.parametrize("orders", [False, True])
@pytest.mark.parametrize("freq", ["month", "week"])
def test_a_store_over_loaded_transactions_gives_the_frames_of_a_plain_view(tmp_path, orders, freq):
    tx = load(tmp_path, orders)
    config = FeatureConfig(covariates=COV)
    plain = connect()
    tx.register(plain)  # the rows re-read from the files at every query
    before = FeatureStore(plain, freq=freq, horizon=1, feature_config=config)
    after = FeatureStore.from_source(tx, freq=freq, horizon=1, feature_config=config)
    for cutoff in CUTOFFS:
        day = pd.Timestamp(cutoff).date()
        got, want = after.features(day), before.features(day)
        assert any(c.startswith("cov_") for c in got.columns)
        pd.testing.assert_frame_equal(got, want)
        assert (after.target(day) == before.target(day)).all()


def test_the_store_reads_the_files_once_so_later_cutoffs_do_not_need_them(tmp_path):
    tx = load(tmp_path, orders=True)
    config = FeatureConfig(covariates=COV)
    want = FeatureStore.from_source(tx, freq="month", horizon=1, feature_config=config).features(
        pd.Timestamp(CUTOFFS[-1]).date())
    store = FeatureStore.from_source(tx, freq="month", horizon=1, feature_config=config)
    (tmp_path / "l.parquet").unlink()  # a re-scan at a later cutoff would fail now
    pd.testing.assert_frame_equal(store.features(pd.Timestamp(CUTOFFS[-1]).date()), want)
    assert len(store.features(pd.Timestamp(CUTOFFS[0]).date())) == 2  # u1, u3 bought in January


def test_with_users_returns_a_new_transactions_and_leaves_its_input_unchanged(tmp_path):
    generic = {"user_col": "cust", "attributes": ATTRS}
    tx = load_transactions(parquet_lines(tmp_path), "generic", config=ReaderConfig(generic=generic))
    spec = UserTableSpec(input=str(tmp_path / "users.csv"), key="hh", valid_from="since",
                         columns={"age": "category", "size": "number"})
    out = with_users(tx, spec)
    assert out is not tx and tx.users is None
    assert (out.users.unused_keys, out.users.missing_users) == (1, 1)  # zz never buys; u3 has no row
    assert out.sql == tx.sql and out.report is tx.report
    assert with_users(tx, None) is tx
