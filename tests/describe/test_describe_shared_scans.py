"""Tables derived from shared aggregates equal the same tables computed from the rows in pandas.

Daily spend, the weekday x hour grid and the period bounds come from one per-day-and-hour table;
new/returning users count the new ones from first periods (returning = active - new); cohorts read
the per-user first month. Oracle: pandas over the raw rows (refunds, zero amounts, refund-only users).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.describe import insights as ins
from spendlab.describe import tables as qt
from spendlab.io import load_transactions
from spendlab.io.load import connect


@pytest.fixture(scope="module", params=[5, 11])
def loaded(request, tmp_path_factory):
    from spendlab.jobs.datasets import synth_transactions

    path = tmp_path_factory.mktemp("shared") / "synth.parquet"
    synth_transactions(path, users=250, months=14, seed=request.param, refund_rate=0.08)
    table = pq.read_table(path)
    amounts = table.column("amount").to_pylist()
    amounts[::37] = [0.0] * len(amounts[::37])  # some zero amounts
    pq.write_table(table.set_column(2, "amount", pa.array(amounts, pa.float64())), path)
    tx = load_transactions(str(path), "generic")
    con = connect(threads=2)
    tx.register(con)
    qt.prepare(con)
    df = tx.to_pandas()
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    return con, df


def _new_returning_oracle(df: pd.DataFrame, period: str) -> pd.DataFrame:
    spend = df[df["amount"] > 0]
    start = (spend["ts"].dt.to_period("M").dt.start_time if period == "month"
             else spend["ts"].dt.normalize() - pd.to_timedelta(spend["ts"].dt.weekday, unit="D"))
    active = pd.DataFrame({"user_id": spend["user_id"], "p": start}).drop_duplicates()
    first = active.groupby("user_id")["p"].transform("min")
    out = active.assign(new=(active["p"] == first).astype(int)).groupby("p").agg(
        new_users=("new", "sum"), active_users=("user_id", "size"))
    out["returning_users"] = out["active_users"] - out["new_users"]
    return out.sort_index()


@pytest.mark.parametrize("period", ["week", "month"])
def test_new_returning_equals_pandas(loaded, period: str) -> None:
    con, df = loaded
    got = ins.new_returning_table(con, period).set_index("period_start")
    want = _new_returning_oracle(df, period)
    assert list(got.index) == list(want.index)
    for col in ("new_users", "returning_users", "active_users"):
        assert got[col].tolist() == want[col].tolist(), col
        assert str(got[col].dtype) == "int64"


def test_cohort_sizes_and_month_zero_equal_pandas(loaded) -> None:
    con, df = loaded
    spend = df[df["amount"] > 0]
    first = spend.groupby("user_id")["ts"].min().dt.strftime("%Y-%m")
    cohorts = ins.cohort_retention_table(con)
    zero = cohorts[cohorts["months_since_first"] == 0].set_index("cohort_month")
    want = first.value_counts().sort_index()
    assert zero["cohort_size"].tolist() == want.tolist()
    assert zero["active_users"].tolist() == want.tolist()


def test_daily_and_weekday_hour_equal_pandas(loaded) -> None:
    con, df = loaded
    daily = ins.daily_spend_table(con).set_index("date")
    day = df["ts"].dt.normalize()
    pos, neg = df[df["amount"] > 0], df[df["amount"] < 0]
    assert daily["n_transactions"].reindex(day.unique()).tolist() == \
        df.groupby(day).size().reindex(day.unique()).tolist()
    spend = pos.groupby(pos["ts"].dt.normalize())["amount"].sum()
    assert daily.loc[spend.index, "spend"].tolist() == pytest.approx(spend.tolist(), abs=1e-6)
    refunds = -neg.groupby(neg["ts"].dt.normalize())["amount"].sum()
    assert daily.loc[refunds.index, "refunds"].tolist() == pytest.approx(refunds.tolist(), abs=1e-6)
    assert int(daily["n_refunds"].sum()) == len(neg)
    assert str(daily["n_transactions"].dtype) == "int64"
    grid = ins.weekday_hour_table(con).set_index(["weekday", "hour"])
    want = pos.groupby([pos["ts"].dt.weekday + 1, pos["ts"].dt.hour]).size()
    assert grid.loc[want.index, "n_transactions"].tolist() == want.tolist()
    assert int(grid["n_transactions"].sum()) == len(pos)
    start, end, zero = con.execute(f"SELECT period_start, period_end, n_zero_amount FROM {qt.PERIOD}").fetchall()[0]
    assert (pd.Timestamp(start), pd.Timestamp(end)) == (df["ts"].min(), df["ts"].max())
    assert zero == int((df["amount"] == 0).sum()) > 0


def test_weekly_active_users_and_spend_equal_pandas(loaded) -> None:
    """Weekly spend comes from the per-day-and-hour table: equal to pandas over the rows, and exactly
    equal (decimal) to the per-(user, week) sums it replaced."""
    con, df = loaded
    got = ins.active_users_weekly_table(con)
    spend = df[df["amount"] > 0]
    iso = spend["ts"].dt.isocalendar()
    want = spend.assign(y=iso["year"].astype("int64"), w=iso["week"].astype("int64")).groupby(["y", "w"]).agg(
        active_users=("user_id", "nunique"), spend=("amount", "sum")).reset_index()
    assert got["iso_year"].tolist() == want["y"].tolist()
    assert got["iso_week"].tolist() == want["w"].tolist()
    assert got["active_users"].tolist() == want["active_users"].tolist()
    assert got["spend"].astype(float).to_numpy() == pytest.approx(want["spend"].to_numpy(), abs=1e-6)
    assert (got["spend_per_active_user"] == got["spend"] / got["active_users"]).all()
    exact = con.execute(
        "SELECT week_start, sum(spend) AS spend FROM (SELECT user_id, CAST(date_trunc('week', ts) AS DATE) AS "
        "week_start, sum(CAST(amount AS DECIMAL(18, 6))) AS spend FROM transactions WHERE amount > 0 GROUP BY ALL) "
        "GROUP BY week_start ORDER BY week_start").fetchall()
    assert [d for d, _ in exact] == [ts.date() for ts in got["week_start"]]
    from_days = con.execute(
        f"SELECT CAST(date_trunc('week', date) AS DATE) AS week_start, sum(spend) FROM {qt.DAY_HOUR} "
        "WHERE n_spend_transactions > 0 GROUP BY 1 ORDER BY 1").fetchall()
    assert from_days == exact  # Decimal == Decimal: the same exact sums, week by week
