"""The rebuilt features equal the frozen pre-issue-19 SQL (:mod:`tests.features.reference_sql`).

A matrix of data sets (CDNOW, seeded synthetic users with int64 and string ids, a random set with
refunds, zero amounts and refund-only users) x frequency x as-of dates (month ends, Sundays, a
mid-week day, an early cutoff with users still arriving) x feature configs (the default and one that
declares every panel column, odd windows and all weekly-activity windows). Same columns in the same
order, same users in the same order (ids compared as the strings written out), every value within
1e-9 (absolute or relative).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.features import FeatureConfig, build_features_arrow
from spendlab.io import load_transactions
from spendlab.io.load import connect
from tests.features.conftest import random_transactions
from tests.features.reference_sql import reference_features

CUSTOM = FeatureConfig.model_validate({
    "weekly_activity_windows": [1, 5, 30],
    "month": {"lags": {"spend": 2, "refund_amount": 4, "n_transactions": 1, "active_days": 5},
              "rolling": [{"column": "spend", "stats": ["max", "mean"], "windows": [1, 2, 7]},
                          {"column": "refund_amount", "stats": ["std"], "windows": [5]},
                          # not std: the old SQL squared active_days as TINYINT and overflowed at 12
                          {"column": "active_days", "stats": ["mean", "max"], "windows": [4, 24]}],
              "trend_windows": [2, 3, 30]},
    "week": {"lags": {"spend": 1, "refund_amount": 2},
             "rolling": [{"column": "n_transactions", "stats": ["std", "mean"], "windows": [3, 60]}],
             "trend_windows": [5]},
})
CONFIGS = {"default": FeatureConfig(), "custom": CUSTOM}


def _con_over(table: pa.Table) -> duckdb.DuckDBPyConnection:
    con = connect(threads=2)
    con.register("transactions__arrow", table)
    con.execute("CREATE OR REPLACE TEMP VIEW transactions AS SELECT user_id, ts, amount FROM transactions__arrow")
    return con


def _as_string_ids(table: pa.Table) -> pa.Table:
    return table.set_column(0, "user_id", table.column("user_id").cast(pa.string()))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    from spendlab.jobs.datasets import synth_transactions

    cdnow = load_transactions("builtin:cdnow", "cdnow").table.select(["user_id", "ts", "amount"])
    path = Path(tmp_path_factory.mktemp("synth")) / "synth.parquet"
    synth_transactions(path, users=1500, months=24, seed=3, refund_rate=0.05)
    synth = pq.read_table(path).select(["user_id", "ts", "amount"])
    ids = pa.array([int(u[1:]) for u in synth.column("user_id").to_pylist()], pa.int64())
    synth_int = synth.set_column(0, "user_id", ids).sort_by("ts")  # time-ordered, native int64 ids
    rnd = pa.Table.from_pandas(random_transactions(11, users=60, rows=1500, start="2021-01-01", days=700),
                               preserve_index=False)
    return {"cdnow": cdnow, "synth": synth, "synth_int": synth_int, "random": rnd}


CASES = [
    ("cdnow", "month", dt.date(1997, 2, 28)),
    ("cdnow", "month", dt.date(1997, 12, 31)),
    ("cdnow", "month", dt.date(1998, 6, 30)),
    ("cdnow", "week", dt.date(1997, 3, 16)),
    ("cdnow", "week", dt.date(1998, 2, 11)),   # a Wednesday
    ("cdnow", "week", dt.date(1998, 6, 28)),
    ("synth", "month", dt.date(2023, 11, 15)),
    ("synth", "month", dt.date(2024, 12, 31)),
    ("synth", "week", dt.date(2023, 11, 26)),
    ("synth", "week", dt.date(2024, 12, 29)),
    ("synth_int", "month", dt.date(2024, 6, 30)),
    ("synth_int", "week", dt.date(2024, 3, 6)),
    ("random", "month", dt.date(2021, 3, 31)),
    ("random", "month", dt.date(2022, 7, 31)),
    ("random", "week", dt.date(2021, 8, 4)),
    ("random", "week", dt.date(2022, 11, 27)),
]


def assert_same_features(new: pa.Table, old: pa.Table, tol: float = 1e-9) -> None:
    assert new.column_names == old.column_names
    assert new.column("user_id").cast(pa.string()).to_pylist() == old.column("user_id").cast(pa.string()).to_pylist()
    for name in old.column_names[1:]:
        assert new.schema.field(name).type == pa.float64(), name
        a = new.column(name).to_numpy()
        b = old.column(name).to_numpy()
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize(("data", "freq", "as_of"), CASES)
def test_features_equal_the_frozen_reference_sql(datasets: dict[str, pa.Table], data: str, freq: str,
                                                 as_of: dt.date, config_name: str) -> None:
    config = CONFIGS[config_name]
    table = datasets[data]
    new = build_features_arrow(_con_over(table), freq=freq, as_of=as_of, config=config)
    # The old reader cast every id to a string; the reference sees what it saw.
    old = reference_features(_con_over(_as_string_ids(table)), freq=freq, as_of=as_of, config=config)
    assert new.num_rows > 0
    assert_same_features(new, old)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), freq=st.sampled_from(["month", "week"]),
       day=st.integers(0, 760), config_name=st.sampled_from(sorted(CONFIGS)),
       users=st.integers(1, 30), int_ids=st.booleans())
def test_features_equal_the_reference_on_random_sets(seed: int, freq: str, day: int, config_name: str,
                                                     users: int, int_ids: bool) -> None:
    """The class, not the examples: random users, gaps, refunds, zero amounts and cutoffs (also before
    some users arrive and past the data), ids as text or int64."""
    frame = random_transactions(seed, users=users, rows=20 * users, start="2021-01-01", days=700)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if int_ids:
        table = table.set_column(0, "user_id", pa.array([int(u[1:]) for u in frame["user_id"]], pa.int64()))
    as_of = dt.date(2021, 1, 1) + dt.timedelta(days=day)
    config = CONFIGS[config_name]
    new = build_features_arrow(_con_over(table), freq=freq, as_of=as_of, config=config)
    old = reference_features(_con_over(_as_string_ids(table)), freq=freq, as_of=as_of, config=config)
    assert_same_features(new, old)


@pytest.mark.parametrize("chunk_rows", [150, 4000])
@pytest.mark.parametrize(("data", "freq", "as_of"), [c for c in CASES if c[0] != "cdnow"])
def test_user_stats_in_hash_chunks_equal_one_aggregate(datasets: dict[str, pa.Table], data: str, freq: str,
                                                       as_of: dt.date, chunk_rows: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Past STATS_CHUNK_ROWS the per-user stats run in user-hash chunks: same users, same values, same order
    (hundreds of chunks on the synthetic sets at 150 rows, a few, some empty, on the small random set; at
    4000 rows the random set is one aggregate)."""
    import spendlab.features.build as build

    table = datasets[data]
    monkeypatch.setattr(build, "STATS_CHUNK_ROWS", chunk_rows)
    new = build_features_arrow(_con_over(table), freq=freq, as_of=as_of, config=CUSTOM)
    old = reference_features(_con_over(_as_string_ids(table)), freq=freq, as_of=as_of, config=CUSTOM)
    assert_same_features(new, old)
