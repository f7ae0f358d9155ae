"""``spendlab describe`` against a hand-computed 11-row fixture (``fixtures/describe_small.csv``).

The fixture, worked out by hand (UTC):

====  ===================  =======  ===============================================
user  ts                   amount   note
====  ===================  =======  ===============================================
u1    2021-12-27 10:00       10.00  Mon, ISO 2021-W52 (week starts 2021-12-27)
u1    2021-12-27 15:00        5.50  same day
u1    2021-12-31 09:00       20.00  Fri, 2021-W52; New Year's Day (observed)
u1    2022-01-01 12:00        4.50  Sat, still 2021-W52 (week spanning New Year)
u1    2022-01-03 08:00       30.00  Mon, 2022-W01
u1    2022-01-05 08:00       -5.50  refund, Wed 2022-W01: no day with spend
u2    2022-01-04 13:00      100.00  the user with a single transaction
u3    2022-02-07 10:00       12.25  u3 is active in one month only
u3    2022-02-09 10:00        7.75
u4    2022-02-15 11:00       -3.00  a user with only a refund
u5    2022-02-16 11:00         abc  rejected: AMOUNT_FORMAT
====  ===================  =======  ===============================================
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.describe import insights as ins
from spendlab.describe import tables as qt
from spendlab.describe.tables import prepare
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.jobs.describe import run_describe

FIXTURE = Path(__file__).parent / "fixtures" / "describe_small.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small_tx():
    return load_transactions(str(FIXTURE), "generic")


@pytest.fixture(scope="module")
def gross_out(small_tx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("describe") / "out"
    run_describe(small_tx, out, top_n=5)
    return out


@pytest.fixture(scope="module")
def net_out(small_tx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("describe_net") / "out"
    run_describe(small_tx, out, top_n=5, net_refunds=True)
    return out


@pytest.fixture(scope="module")
def con(small_tx):
    c = connect()
    small_tx.register(c)
    prepare(c)
    return c


def test_summary_counts_every_row_but_averages_over_spend_transactions(gross_out: Path) -> None:
    s = json.loads((gross_out / "summary.json").read_text())
    assert s["n_transactions"] == 10
    assert s["n_spend_transactions"] == 8
    assert s["n_zero_amount"] == 0
    assert s["n_users"] == 4
    assert s["total_spend"] == 190.00
    assert s["avg_transaction_value"] == 23.75  # 190 / 8
    assert (s["n_refunds"], s["refund_amount"]) == (2, 8.50)
    assert s["period_start"] == "2021-12-27T10:00:00"
    assert s["period_end"] == "2022-02-15T11:00:00"
    assert (s["rows_in"], s["rows_accepted"], s["rows_rejected"]) == (11, 10, 1)
    assert s["rejected_by_type"] == {"AMOUNT_FORMAT": 1}
    assert "net_spend" not in s


def test_per_user_table_matches_hand_computed_values(gross_out: Path) -> None:
    rows = read_rows(gross_out / "avg_transaction_value_per_user.csv")
    assert list(rows[0])[:4] == ["user_id", "n_transactions", "total_spend", "avg_transaction_value"]
    got = {r["user_id"]: (r["n_transactions"], r["total_spend"], r["avg_transaction_value"],
                          r["n_spend_transactions"], r["n_refunds"], r["refunds"]) for r in rows}
    assert got == {
        "u1": ("6", "70.00", "14.00", "5", "1", "5.50"),
        "u2": ("1", "100.00", "100.00", "1", "0", "0.00"),  # single transaction
        "u3": ("2", "20.00", "10.00", "2", "0", "0.00"),
        "u4": ("1", "0.00", "", "0", "1", "3.00"),  # refund only: no average
    }
    assert [r["user_id"] for r in rows] == ["u1", "u2", "u3", "u4"]


def test_monthly_spend_is_the_sum_per_calendar_month_with_refunds_beside_it(gross_out: Path) -> None:
    rows = read_rows(gross_out / "monthly_spend_per_user.csv")
    assert list(rows[0])[:5] == ["user_id", "month", "n_transactions", "spend", "avg_transaction_value"]
    got = [(r["user_id"], r["month"], r["n_transactions"], r["spend"], r["avg_transaction_value"],
            r["n_spend_transactions"], r["n_refunds"], r["refunds"]) for r in rows]
    assert got == [
        ("u1", "2021-12", "3", "35.50", "11.83", "3", "0", "0.00"),  # 35.50 / 3, rounded only when written
        ("u1", "2022-01", "3", "34.50", "17.25", "2", "1", "5.50"),  # 4.50 + 30.00; refund apart
        ("u2", "2022-01", "1", "100.00", "100.00", "1", "0", "0.00"),
        ("u3", "2022-02", "2", "20.00", "10.00", "2", "0", "0.00"),  # active in one month only
        ("u4", "2022-02", "1", "0.00", "", "0", "1", "3.00"),
    ]
    assert list(rows[0]) == ["user_id", "month", "n_transactions", "spend", "avg_transaction_value",
                             "n_spend_transactions", "n_refunds", "refunds"]  # no net_spend unless asked


def test_days_per_week_counts_a_week_spanning_new_year_as_one_iso_week(gross_out: Path) -> None:
    rows = read_rows(gross_out / "days_spent_per_week.csv")
    assert list(rows[0]) == ["user_id", "iso_year", "iso_week", "week_start", "days_with_spend"]
    got = [tuple(r.values()) for r in rows]
    assert got == [
        ("u1", "2021", "52", "2021-12-27", "3"),  # 12-27 (twice), 12-31, 2022-01-01
        ("u1", "2022", "1", "2022-01-03", "1"),  # the refund day 01-05 is not a day with spend
        ("u2", "2022", "1", "2022-01-03", "1"),
        ("u3", "2022", "6", "2022-02-07", "2"),
    ]


def test_net_refunds_adds_net_spend_beside_gross(net_out: Path) -> None:
    s = json.loads((net_out / "summary.json").read_text())
    assert s["total_spend"] == 190.00 and s["net_spend"] == 181.50
    per_user = {r["user_id"]: (r["total_spend"], r["net_spend"])
                for r in read_rows(net_out / "avg_transaction_value_per_user.csv")}
    assert per_user == {"u1": ("70.00", "64.50"), "u2": ("100.00", "100.00"), "u3": ("20.00", "20.00"),
                        "u4": ("0.00", "-3.00")}
    monthly = {(r["user_id"], r["month"]): r["net_spend"] for r in read_rows(net_out / "monthly_spend_per_user.csv")}
    assert monthly[("u1", "2022-01")] == "29.00"


def test_concentration_and_gini_match_hand_computation(con) -> None:
    conc = ins.concentration_table(con).set_index("top_share_of_users")
    # spend per user: u2 100, u1 70, u3 20, u4 0; the top 1% and 10% of 4 users is ceil(.04) = ceil(.4) = 1 user
    assert conc.loc[0.01, "n_users"] == 1 and conc.loc[0.10, "n_users"] == 1
    assert conc.loc[0.10, "share_of_spend"] == pytest.approx(100 / 190)
    assert conc.loc[0.50, "share_of_spend"] == pytest.approx(170 / 190)
    curve, gini = ins.lorenz_table(con)
    # ascending 0, 20, 70, 100: 2 * (1*0 + 2*20 + 3*70 + 4*100) / (4 * 190) - 5/4
    assert gini == pytest.approx(2 * 650 / 760 - 1.25)
    assert curve["spend_share"].tolist() == pytest.approx([0, 0, 20 / 190, 90 / 190, 1])
    assert ins.concentration_takeaway(ins.concentration_table(con), gini) == (
        "The top 1% of users (1) make 52.6% of spend; the top 10% of users (1) make 52.6% of spend (Gini 0.46).")


def test_month_over_month_change_per_user(gross_out: Path, con) -> None:
    rows = read_rows(gross_out / "insights" / "mom_change_per_user.csv")
    got = [(r["user_id"], r["month"], r["prev_spend"], r["spend"], r["change"], r["direction"]) for r in rows]
    assert got == [
        ("u1", "2022-01", "35.50", "34.50", "-1.00", "decreased"),
        ("u1", "2022-02", "34.50", "0.00", "-34.50", "stopped"),
        ("u2", "2022-01", "0.00", "100.00", "100.00", "started"),
        ("u2", "2022-02", "100.00", "0.00", "-100.00", "stopped"),
        ("u3", "2022-02", "0.00", "20.00", "20.00", "started"),
    ]
    by_month = ins.mom_by_month_table(con)
    assert by_month[["month", "increased", "decreased", "started", "stopped"]].values.tolist() == [
        ["2022-01", 0, 1, 1, 0], ["2022-02", 0, 0, 1, 2]]
    assert by_month["net_change"].tolist() == pytest.approx([99.0, -114.5])
    movers = ins.mom_movers_table(con, "2022-02", 5)
    assert movers["user_id"].tolist() == ["u3", "u1", "u2"]
    assert ins.mom_takeaway(by_month, movers) == (
        "In 2022-02, 1 users spent more than in the month before (1 of them after a month without spend) and "
        "2 spent less (2 spent nothing), a net change of -114.50; the biggest increase was user u3 (+20.00).")


def test_new_returning_and_cohort_retention(con) -> None:
    monthly = ins.new_returning_table(con, "month")
    assert monthly[["new_users", "returning_users", "active_users"]].values.tolist() == [
        [1, 0, 1], [1, 1, 2], [1, 0, 1]]
    weekly = ins.new_returning_table(con, "week")
    assert weekly[["iso_year", "iso_week", "new_users", "returning_users"]].values.tolist() == [
        [2021, 52, 1, 0], [2022, 1, 1, 1], [2022, 6, 1, 0]]
    cohorts = ins.cohort_retention_table(con)
    assert cohorts[["cohort_month", "months_since_first", "active_users", "retention"]].values.tolist() == [
        ["2021-12", 0, 1, 1.0], ["2021-12", 1, 1, 1.0], ["2022-01", 0, 1, 1.0], ["2022-02", 0, 1, 1.0]]
    active = ins.active_users_weekly_table(con)
    assert active["active_users"].tolist() == [1, 2, 1]
    assert active["spend"].tolist() == pytest.approx([40.0, 130.0, 20.0])


def test_daily_spend_fills_empty_days_and_marks_new_year(con) -> None:
    from spendlab.calendar import calendar_events

    daily = ins.daily_spend_table(con, calendar_events("2021-12-27", "2022-02-15"))
    assert len(daily) == 51  # 2021-12-27 .. 2022-02-15 inclusive, zero days filled
    by_day = daily.set_index(daily["date"].dt.strftime("%Y-%m-%d"))
    assert by_day.loc["2021-12-27", "spend"] == pytest.approx(15.5)
    assert by_day.loc["2021-12-28", "spend"] == 0
    assert by_day.loc["2022-01-05", ["n_refunds", "refunds"]].tolist() == [1, 5.5]
    assert "New Year" in by_day.loc["2022-01-01", "events"]
    assert "New Year" in by_day.loc["2021-12-31", "events"]  # observed on the Friday
    assert ins.daily_spend_takeaway(daily).startswith("The biggest day was 2022-01-04 with 100.00 of spend")


def test_weekday_hour_and_transaction_size(con) -> None:
    grid = ins.weekday_hour_table(con)
    assert len(grid) == 7 * 24
    cell = grid[(grid["weekday"] == 1) & (grid["hour"] == 10)].iloc[0]
    assert (cell["n_transactions"], cell["spend"]) == (2, pytest.approx(22.25))  # u1 12-27 10:00, u3 02-07 10:00
    assert grid["n_transactions"].sum() == 8
    ins.amount_counts(con)
    q = ins.transaction_size_quantiles(con)
    # sorted: 4.5 5.5 7.75 10 12.25 20 30 100 -> median (10 + 12.25) / 2
    assert q["p50"] == pytest.approx(11.125) and q["mean"] == pytest.approx(23.75)
    hist = ins.transaction_size_table(con)
    assert hist["n_transactions"].sum() == 8
    assert ((hist["bin_lower"] <= 4.5) & (4.5 < hist["bin_upper"]) & (hist["n_transactions"] >= 1)).any()


def test_top_and_bottom_spenders_skip_users_without_spend(gross_out: Path) -> None:
    top = read_rows(gross_out / "insights" / "top_spenders.csv")
    bottom = read_rows(gross_out / "insights" / "bottom_spenders.csv")
    assert [r["user_id"] for r in top] == ["u2", "u1", "u3"]
    assert [r["user_id"] for r in bottom] == ["u3", "u1", "u2"]
    assert [(r["rank"], r["total_spend"], r["avg_transaction_value"], r["n_spend_transactions"], r["n_refunds"])
            for r in top] == [("1", "100.00", "100.00", "1", "0"), ("2", "70.00", "14.00", "5", "1"),
                              ("3", "20.00", "10.00", "2", "0")]
    assert float(top[0]["share_of_spend"]) == pytest.approx(100 / 190, abs=1e-6)


def test_report_html_has_every_section_and_computed_takeaways(gross_out: Path) -> None:
    html = (gross_out / "report.html").read_text()
    for anchor in ('id="q1"', 'id="q2"', 'id="insights"', "insight-daily_spend", "insight-weekday_hour",
                   "insight-transaction_size", "insight-concentration", "insight-spenders", "insight-mom_change",
                   "insight-new_returning", "insight-cohort_retention", "insight-active_users"):
        assert anchor in html
    assert html.count('src="data:image/png;base64,') == 10
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch
    assert "The average transaction is worth 23.75" in html


def test_rerun_is_idempotent_and_a_failed_run_leaves_the_old_output(small_tx, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    run_describe(small_tx, out, top_n=5)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    run_describe(small_tx, out, top_n=5)
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == second

    import spendlab.jobs.describe as d

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(d, "render_html", boom)
    with pytest.raises(RuntimeError):
        run_describe(small_tx, out, top_n=5)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left behind


def test_empty_load_is_a_clear_error(tmp_path: Path) -> None:
    from spendlab.errors import NoDataError

    f = tmp_path / "header_only.csv"
    f.write_text("user_id,ts,amount\n")
    tx = load_transactions(str(f), "generic")
    with pytest.raises(NoDataError, match="no accepted transactions"):
        run_describe(tx, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_money_is_summed_in_full_precision_and_rounded_only_when_written(tmp_path: Path) -> None:
    # three sub-cent amounts: rounding each first would give 0.00 + 0.00 + 0.00; the sum is 0.012 -> 0.01
    f = tmp_path / "subcent.csv"
    f.write_text("user_id,ts,amount\nu,2022-03-01T00:00:00Z,0.004\nu,2022-03-02T00:00:00Z,0.004\n"
                 "u,2022-03-03T00:00:00Z,0.004\n")
    from spendlab.config import ReaderConfig

    tx = load_transactions(str(f), "generic", config=ReaderConfig(sub_cent="keep"))
    run_describe(tx, tmp_path / "out")
    rows = read_rows(tmp_path / "out" / "avg_transaction_value_per_user.csv")
    assert rows[0]["total_spend"] == "0.01"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["total_spend"] == 0.01
    monthly = pd.read_csv(tmp_path / "out" / "monthly_spend_per_user.csv", dtype=str)
    assert monthly["spend"].tolist() == ["0.01"]


def test_parquet_input_is_aggregated_in_duckdb_without_materialising_rows(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spendlab.io.load import Transactions

    table = pa.table({"user_id": ["a", "a", "b"],
                      "ts": pa.array(pd.to_datetime(["2023-01-02", "2023-01-03", "2023-02-01"], utc=True)),
                      "amount": [1.25, 2.50, -1.00]})
    pq.write_table(table, tmp_path / "t.parquet")
    tx = load_transactions(str(tmp_path / "t.parquet"), "generic")
    assert tx.table is None  # a SQL view over the file

    def refuse(self):
        raise AssertionError("describe must not pull raw rows out of DuckDB")

    monkeypatch.setattr(Transactions, "to_arrow", refuse)
    monkeypatch.setattr(Transactions, "to_pandas", refuse)
    result = run_describe(tx, tmp_path / "out")
    assert (result["summary"]["n_transactions"], result["summary"]["total_spend"]) == (3, 3.75)
    assert result["files"]["monthly_spend_per_user.csv"] == 2  # a in 2023-01, b in 2023-02


def test_half_cent_ties_round_away_from_zero_from_exact_sums_in_every_writer(tmp_path: Path) -> None:
    # 0.5025 + 0.5025 = 1.005 exactly; in binary floating point the sum is 1.00499999..., which float
    # rounding writes as 1.00. Exact decimal sums give 1.01 in the DuckDB and pandas writers alike.
    assert f"{0.5025 + 0.5025:.2f}" == "1.00"
    f = tmp_path / "ties.csv"
    f.write_text("user_id,ts,amount\nu,2022-03-01T00:00:00Z,0.5025\nu,2022-03-02T00:00:00Z,0.5025\n")
    from spendlab.config import ReaderConfig

    tx = load_transactions(str(f), "generic", config=ReaderConfig(sub_cent="keep"))
    run_describe(tx, tmp_path / "out")
    out = tmp_path / "out"
    assert read_rows(out / "avg_transaction_value_per_user.csv")[0]["total_spend"] == "1.01"
    assert read_rows(out / "monthly_spend_per_user.csv")[0]["spend"] == "1.01"
    assert json.loads((out / "summary.json").read_text())["total_spend"] == 1.01
    assert read_rows(out / "insights" / "top_spenders.csv")[0]["total_spend"] == "1.01"  # pandas writer
    assert read_rows(out / "monthly_overview.csv")[0]["spend"] == "1.01"


@settings(max_examples=60, deadline=None)
@given(amounts=st.lists(st.sampled_from([0.01, 0.5, 1.0, 2.25, 9.99, 10.0, 19.5, 100.0, 2500.75, 1e6]),
                        min_size=1, max_size=80),
       extra=st.lists(st.floats(0.01, 1e5, allow_nan=False).map(lambda x: round(x, 2)), max_size=40))
def test_quantiles_from_the_amount_histogram_equal_quantile_cont_over_the_rows(amounts: list[float],
                                                                               extra: list[float]) -> None:
    """Oracle: DuckDB's own quantile_cont over the rows (ties, one row, repeated values, wide ranges)."""
    rows = [a for a in amounts + extra if a > 0]
    con = duckdb.connect()
    con.execute(f"CREATE OR REPLACE TEMP MACRO spendlab_money(x) AS CAST(x AS {qt.MONEY_TYPE})")
    con.execute("CREATE TABLE transactions AS SELECT unnest(?::DOUBLE[]) AS amount", [rows])
    ins.amount_counts(con)
    got = ins.transaction_size_quantiles(con)
    want = con.execute("SELECT quantile_cont(amount, 0.5), quantile_cont(amount, 0.9), quantile_cont(amount, 0.99), "
                       "sum(spendlab_money(amount)) / count(*) FROM transactions").fetchone()
    assert [got["p50"], got["p90"], got["p99"], got["mean"]] == pytest.approx([float(w) for w in want], rel=1e-12)
