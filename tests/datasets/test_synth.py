"""Embedded CDNOW and the seeded synthetic generator."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spendlab.errors import SpendlabError
from spendlab.io.builtin import builtin_path
from spendlab.io.load import validation_summary
from spendlab.jobs.datasets import synth_transactions
from tests.conftest import load


@pytest.fixture(scope="module")
def synth18(tmp_path_factory):
    """3,000 users over the default 18 months (one file shared by the behaviour tests)."""
    path = tmp_path_factory.mktemp("synth") / "s.parquet"
    stats = synth_transactions(path, users=3_000, months=18, seed=11, chunk_users=1_000)
    return path, stats, pq.read_table(path).to_pandas()


def test_cdnow_is_read_from_the_installed_lifetimes_distribution_without_importing_it():
    path = builtin_path("cdnow")
    assert path.name == "CDNOW_master.txt"
    assert path == importlib.metadata.distribution("lifetimes").locate_file("lifetimes/datasets/CDNOW_master.txt")
    probe = ("import sys; from spendlab.io.builtin import builtin_path; builtin_path('cdnow'); "
             "print('lifetimes' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
    with pytest.raises(SpendlabError, match="unknown built-in dataset 'nope'"):
        builtin_path("nope")


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    for fmt, ext in (("parquet", "parquet"), ("millions", "csv")):
        a, b, c = (tmp_path / f"{n}.{ext}" for n in "abc")
        synth_transactions(a, users=400, months=6, fmt=fmt, seed=5, chunk_users=150)
        synth_transactions(b, users=400, months=6, fmt=fmt, seed=5, chunk_users=150)
        synth_transactions(c, users=400, months=6, fmt=fmt, seed=6, chunk_users=150)
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_writes_the_canonical_schema_with_about_one_percent_refunds(synth18):
    path, stats, df = synth18
    schema = pq.read_schema(path)
    assert [(f.name, f.type) for f in schema] == [
        ("user_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())]
    assert stats == {"users": 3_000, "transactions": len(df)}
    assert df["user_id"].nunique() == 3_000
    assert df["ts"].min() >= dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    assert df["ts"].max() < dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    assert 0.005 < (df["amount"] < 0).mean() < 0.02
    assert (df["amount"] != 0).all() and (df["amount"].round(2) == df["amount"]).all()


def test_about_thirty_transactions_per_user_over_eighteen_months(synth18):
    _, _, df = synth18
    assert 26 < len(df) / 3_000 < 35


def test_purchase_counts_are_overdispersed_like_gamma_poisson(synth18):
    """Heterogeneous rates: per-user count variance far above a Poisson's (variance = mean)."""
    _, _, df = synth18
    counts = df.groupby("user_id").size()
    assert counts.var() / counts.mean() > 5
    spend = df[df["amount"] > 0].groupby("user_id")["amount"].mean()
    assert spend.quantile(0.9) / spend.quantile(0.1) > 2  # user-level basket sizes differ too


def test_december_is_busier_than_its_neighbouring_months_and_weekends_beat_mondays(synth18):
    _, _, df = synth18
    ts = df["ts"].dt.tz_convert(None)
    counts = ts.dt.to_period("M").value_counts()
    per_day = counts / counts.index.days_in_month
    oct_, dec, jan = (per_day[month] for month in ("2023-10", "2023-12", "2024-01"))
    assert dec > 1.2 * max(oct_, jan)
    weekday = ts.dt.day_of_week.value_counts()
    assert weekday[5] > 1.3 * weekday[0]  # Saturday vs Monday (weights 1.35 vs 0.9)


def test_millions_format_output_validates_with_zero_rejects_and_matches_the_parquet(tmp_path):
    csv_path, pq_path = tmp_path / "m.csv", tmp_path / "m.parquet"
    synth_transactions(csv_path, users=300, months=6, fmt="millions", seed=2, chunk_users=100)
    synth_transactions(pq_path, users=300, months=6, fmt="parquet", seed=2, chunk_users=100)
    tx = load(csv_path, "millions")
    assert tx.report.rejected == 0 and tx.report.rows_in == pq.read_metadata(pq_path).num_rows
    from_csv = validation_summary(tx)
    from_parquet = validation_summary(load(pq_path, "generic"))
    for key in ("users", "total_spend", "refunds", "refund_amount"):
        assert from_csv[key] == from_parquet[key], key


def test_bad_generator_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SpendlabError, match="unknown synthetic format"):
        synth_transactions(tmp_path / "x", users=10, fmt="xlsx")
    with pytest.raises(SpendlabError, match="must be positive"):
        synth_transactions(tmp_path / "x", users=0)
    assert not (tmp_path / "x").exists()


def test_a_users_first_transaction_is_a_purchase_never_a_refund(synth18):
    _, _, df = synth18
    first = df.sort_values(["user_id", "ts"], kind="stable").groupby("user_id").head(1)
    assert (first["amount"] > 0).all()


def _weekly_habits(df):
    """Per user with 20+ purchases: purchases per month between first and last, modal weekday share."""
    buys = df[df["amount"] > 0].assign(ts=lambda d: d["ts"].dt.tz_convert(None))
    g = buys.groupby("user_id")["ts"]
    n = g.size()
    span = (g.max().dt.to_period("M") - g.min().dt.to_period("M")).apply(lambda p: p.n) + 1
    modal = buys.groupby("user_id")["ts"].agg(lambda s: s.dt.day_of_week.value_counts().iloc[0] / len(s))
    keep = n >= 20
    return (n / span)[keep], modal[keep]


def test_grocery_profile_buys_about_weekly_on_a_habitual_weekday_and_rarely_churns(tmp_path, synth18):
    path = tmp_path / "g.parquet"
    synth_transactions(path, users=3_000, months=18, seed=11, chunk_users=1_000, profile="grocery")
    grocery = pq.read_table(path).to_pandas()
    _, _, retail = synth18
    g_rate, g_modal = _weekly_habits(grocery)
    _, r_modal = _weekly_habits(retail)
    assert 3.5 < g_rate.median() < 5.5  # about one purchase a week
    assert g_modal.median() > 0.3 > r_modal.median()  # a habitual shopping day (weight 3 of 9)

    def still_buying(df):  # acquired in the first 6 months, still buying in the last 3
        ts = df["ts"].dt.tz_convert(None)
        first, last = ts.groupby(df["user_id"]).min(), ts.groupby(df["user_id"]).max()
        early = first < dt.datetime(2023, 7, 1)
        return (last[early] >= dt.datetime(2024, 4, 1)).mean()

    g, r = still_buying(grocery), still_buying(retail)
    assert g > 0.8 and g > r + 0.2, (g, r)  # retail: ~7% monthly churn on average, ~half left


def test_cli_synth_writes_the_oracle_beside_the_output(tmp_path):
    from typer.testing import CliRunner

    from spendlab.cli import app

    out = tmp_path / "data" / "tx.parquet"
    result = CliRunner().invoke(app, ["datasets", "synth", "--out", str(out), "--users", "50", "--months", "3",
                                      "--profile", "grocery", "--oracle", "--freq", "week"])
    assert result.exit_code == 0, result.output
    oracle = pq.read_table(out.parent / "oracle.parquet").to_pandas()
    assert oracle["user_id"].nunique() == 50
    assert {d.weekday() for d in oracle["period_start"]} == {0}
    result = CliRunner().invoke(app, ["datasets", "synth", "--out", str(tmp_path / "x.parquet"), "--profile", "bakery"])
    assert isinstance(result.exception, SpendlabError) and "unknown synthetic profile" in str(result.exception)
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "oracle.parquet").exists()
