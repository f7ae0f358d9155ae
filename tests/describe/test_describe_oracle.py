"""``spendlab describe`` against an independent plain-pandas implementation on seeded synthetic data.

The synthetic Parquet (400 users, 14 months, 5% refunds) goes through the Parquet path of the reader,
so the DuckDB view is SQL over the file; the oracle reads the same rows with ``Transactions.to_pandas``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from spendlab.describe import insights as ins
from spendlab.describe.tables import prepare
from spendlab.io import load_transactions
from spendlab.io.load import connect, validation_summary
from spendlab.jobs.describe import run_describe

CENT = 0.005 + 1e-9  # written values are rounded to cents; allow the rounding itself


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from spendlab.jobs.datasets import synth_transactions

    base = tmp_path_factory.mktemp("oracle")
    path = base / "synth.parquet"
    synth_transactions(path, users=400, months=14, seed=7, refund_rate=0.05)
    tx = load_transactions(str(path), "generic")
    out = base / "out"
    run_describe(tx, out, top_n=10, net_refunds=True)
    df = tx.to_pandas()
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert (df["amount"] < 0).sum() > 0, "the oracle data must contain refunds"
    return tx, df, out


def _per_group(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    pos = df["amount"].where(df["amount"] > 0, 0.0)
    neg = -df["amount"].where(df["amount"] < 0, 0.0)
    g = df.assign(pos=pos, neg=neg, is_pos=df["amount"] > 0, is_neg=df["amount"] < 0).groupby(keys)
    out = pd.DataFrame({
        "n_transactions": g.size(),
        "spend": g["pos"].sum(),
        "n_spend_transactions": g["is_pos"].sum(),
        "n_refunds": g["is_neg"].sum(),
        "refunds": g["neg"].sum(),
        "net_spend": g["amount"].sum(),
    })
    out["avg_transaction_value"] = out["spend"] / out["n_spend_transactions"].replace(0, np.nan)
    return out


def _assert_money(got: pd.Series, want: pd.Series) -> None:
    diff = (got.astype(float) - want.astype(float)).abs()
    both_nan = got.isna() & want.isna()
    assert ((diff <= CENT) | both_nan).all(), diff[~((diff <= CENT) | both_nan)].head()


def test_per_user_table_matches_pandas(synth) -> None:
    _, df, out = synth
    want = _per_group(df, ["user_id"])
    got = pd.read_csv(out / "avg_transaction_value_per_user.csv", dtype={"user_id": str}).set_index("user_id")
    assert sorted(got.index) == sorted(want.index) and got.index.is_unique
    want = want.loc[got.index]
    for col in ("n_transactions", "n_spend_transactions", "n_refunds"):
        assert (got[col] == want[col]).all(), col
    _assert_money(got["total_spend"], want["spend"])
    for col in ("avg_transaction_value", "refunds", "net_spend"):
        _assert_money(got[col], want[col])


def test_monthly_table_matches_pandas(synth) -> None:
    _, df, out = synth
    want = _per_group(df.assign(month=df["ts"].dt.strftime("%Y-%m")), ["user_id", "month"])
    got = pd.read_csv(out / "monthly_spend_per_user.csv", dtype={"user_id": str, "month": str}).set_index(
        ["user_id", "month"])
    assert len(got) == len(want) and got.index.is_unique
    want = want.loc[got.index]
    assert (got["n_transactions"] == want["n_transactions"]).all()
    for col in ("spend", "avg_transaction_value", "refunds", "net_spend"):
        _assert_money(got[col], want[col])


def test_days_per_week_matches_pandas_isocalendar(synth) -> None:
    _, df, out = synth
    spend = df[df["amount"] > 0].copy()
    iso = spend["ts"].dt.isocalendar()
    spend["iso_year"], spend["iso_week"] = iso["year"].astype(int), iso["week"].astype(int)
    spend["day"] = spend["ts"].dt.normalize()
    spend["week_start"] = (spend["day"] - pd.to_timedelta(spend["day"].dt.day_of_week, unit="D")).dt.strftime("%Y-%m-%d")
    want = spend.groupby(["user_id", "iso_year", "iso_week", "week_start"])["day"].nunique().rename("days_with_spend")
    got = pd.read_csv(out / "days_spent_per_week.csv", dtype={"user_id": str, "week_start": str}).set_index(
        ["user_id", "iso_year", "iso_week", "week_start"])["days_with_spend"]
    assert got.sort_index().equals(want.sort_index().astype(got.dtype))


def test_summary_matches_pandas_and_validation_summary(synth) -> None:
    tx, df, out = synth
    s = json.loads((out / "summary.json").read_text())
    v = validation_summary(tx)
    assert s["n_transactions"] == len(df) == tx.report.accepted
    assert s["n_users"] == df["user_id"].nunique() == v["users"]
    assert s["total_spend"] == pytest.approx(df.loc[df["amount"] > 0, "amount"].sum(), abs=CENT) == v["total_spend"]
    assert s["avg_transaction_value"] == pytest.approx(df.loc[df["amount"] > 0, "amount"].mean(), abs=CENT)
    assert (s["n_refunds"], s["refund_amount"]) == (v["refunds"], v["refund_amount"])
    assert s["net_spend"] == pytest.approx(df["amount"].sum(), abs=CENT)


def test_insights_match_pandas(synth) -> None:
    tx, df, out = synth
    con = connect()
    tx.register(con)
    prepare(con)
    spend = df[df["amount"] > 0]
    per_user = df.assign(pos=df["amount"].clip(lower=0)).groupby("user_id")["pos"].sum().sort_values(ascending=False)
    conc = ins.concentration_table(con).set_index("top_share_of_users")
    k = math.ceil(0.10 * len(per_user))
    assert conc.loc[0.10, "share_of_spend"] == pytest.approx(per_user.iloc[:k].sum() / per_user.sum())
    x = np.sort(per_user.to_numpy())
    n = len(x)
    gini = 2 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n
    assert ins.lorenz_table(con)[1] == pytest.approx(gini)

    months = spend.assign(month=spend["ts"].dt.to_period("M"))
    first = months.groupby("user_id")["month"].min()
    active = months[["user_id", "month"]].drop_duplicates()
    active = active.assign(new=active["month"] == active["user_id"].map(first))
    want = active.groupby("month")["new"].agg(["sum", "size"])
    got = ins.new_returning_table(con, "month")
    assert got["new_users"].tolist() == want["sum"].tolist()
    assert got["active_users"].tolist() == want["size"].tolist()

    monthly = months.groupby(["user_id", "month"])["amount"].sum().unstack(fill_value=0.0)
    full = monthly.reindex(columns=pd.period_range(monthly.columns.min(), monthly.columns.max(), freq="M"),
                           fill_value=0.0)
    diff = full.diff(axis=1).iloc[:, 1:]
    prev = full.shift(axis=1).iloc[:, 1:]
    now = full.iloc[:, 1:]
    by_month = ins.mom_by_month_table(con).set_index("month")
    for period in now.columns:
        m = str(period)
        assert by_month.loc[m, "increased"] == int(((prev[period] > 0) & (now[period] > prev[period])).sum())
        assert by_month.loc[m, "stopped"] == int(((prev[period] > 0) & (now[period] == 0)).sum())
        assert by_month.loc[m, "started"] == int(((prev[period] == 0) & (now[period] > 0)).sum())
        assert by_month.loc[m, "net_change"] == pytest.approx(diff[period].sum())

    weekly = ins.active_users_weekly_table(con)
    iso = spend["ts"].dt.isocalendar()
    want_w = spend.assign(y=iso["year"], w=iso["week"]).groupby(["y", "w"])["user_id"].nunique()
    assert weekly["active_users"].tolist() == want_w.tolist()
