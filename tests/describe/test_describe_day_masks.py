"""Describe's day masks equal the distinct counts they replace (issue 19), on seeded synthetic data.

Days with spend per ISO week and users with spend per day come from a per-(user, week) 7-bit day
mask; the oracle is plain pandas ``nunique`` over the same rows, int64 and text ids alike.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.describe import insights as ins
from spendlab.describe.tables import days_per_week_sql, prepare
from spendlab.io import load_transactions
from spendlab.io.load import connect


@pytest.fixture(scope="module", params=["text", "int64"])
def loaded(request, tmp_path_factory):
    from spendlab.jobs.datasets import synth_transactions

    path = tmp_path_factory.mktemp("masks") / "synth.parquet"
    synth_transactions(path, users=300, months=13, seed=5, refund_rate=0.05)
    if request.param == "int64":
        table = pq.read_table(path)
        ids = pa.array([int(u[1:]) for u in table.column("user_id").to_pylist()], pa.int64())
        pq.write_table(table.set_column(0, "user_id", ids), path)
    tx = load_transactions(str(path), "generic")
    con = connect(threads=2)
    tx.register(con)
    prepare(con)
    df = tx.to_pandas()
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    return con, df


def test_days_with_spend_per_week_equal_distinct_purchase_days(loaded) -> None:
    con, df = loaded
    spend = df[df["amount"] > 0].assign(day=lambda d: d["ts"].dt.normalize())
    spend = spend.assign(week_start=spend["day"] - pd.to_timedelta(spend["day"].dt.day_of_week, unit="D"))
    want = spend.groupby(["user_id", "week_start"])["day"].nunique().sort_index()
    got = con.execute(f"SELECT user_id, week_start, days_with_spend FROM ({days_per_week_sql()}) "
                      "ORDER BY user_id, week_start").fetchdf()
    assert got["days_with_spend"].tolist() == want.tolist()
    assert str(got["days_with_spend"].dtype) == "int64"


def test_daily_active_users_equal_distinct_users_with_spend(loaded) -> None:
    con, df = loaded
    spend = df[df["amount"] > 0]
    want = spend.groupby(spend["ts"].dt.normalize())["user_id"].nunique()
    daily = ins.daily_spend_table(con).set_index("date")
    assert (daily.loc[want.index, "active_users"] == want).all()
    assert (daily.drop(index=want.index)["active_users"] == 0).all()  # refund-only and empty days

