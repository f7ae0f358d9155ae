"""Catalogue rows 1-15, 30 and 31 (format A, the ``millions`` card CSV): one case per row.

Every load goes through ``tests.conftest.load``, which asserts ``rows_in = accepted + rejected``
for each file. Fixtures are a handful of lines whose expected values are worked out by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.errors import RowError
from spendlab.io.load import connect, validation_summary
from spendlab.io.parsing import FieldError, parse_amount
from spendlab.io.rejects import write_rejects_csv
from tests.conftest import load, millions_csv, millions_row

TS = "2021-12-30 3:40:03"
GOOD = [("-1.00", TS, "600"), ("-2.50", TS, "601"), ("-3.00", TS, "602"), ("-4.25", TS, "603")]


def one_bad(write_file, bad_line: str, name: str = "a.csv"):
    """Four good rows with ``bad_line`` planted at physical line 4; returns the load."""
    rows = [GOOD[0], GOOD[1], bad_line, GOOD[2], GOOD[3]]
    return load(write_file(name, millions_csv(rows)))


def only_reject(tx):
    assert len(tx.report.rejects) == 1, tx.report.rejects
    return tx.report.rejects[0]


def test_row01_malformed_json_is_quarantined_at_its_line_in_column_data(write_file):
    """Catalogue row 1."""
    tx = one_bad(write_file, 'auth,"{""amount"":""-1.00""",2021-12-30 3:40:03,700')
    assert tx.report.accepted == 4
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "data", "JSON_DECODE")
    assert rej.raw == 'auth,"{""amount"":""-1.00""",2021-12-30 3:40:03,700'
    assert sorted(tx.to_pandas()["user_id"]) == ["600", "601", "602", "603"]


@pytest.mark.parametrize(
    ("data", "error_type"),
    [
        ('"{""value"":""-1.00""}"', "MISSING_FIELD"),
        ('"{""amount"":null}"', "MISSING_FIELD"),
        ('""', "EMPTY_FIELD"),
        ('"{""amount"":""""}"', "EMPTY_FIELD"),
    ],
    ids=["no-amount-key", "amount-null", "data-empty", "amount-empty-string"],
)
def test_row02_missing_null_or_empty_amount_is_rejected(write_file, data, error_type):
    """Catalogue row 2."""
    tx = one_bad(write_file, f"auth,{data},{TS},700")
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "data", error_type)
    assert tx.report.accepted == 4


def test_row03_duplicate_json_key_is_ambiguous_not_last_wins(write_file):
    """Catalogue row 3: Python's json keeps the last duplicate silently; spendlab refuses."""
    data = '{"amount":"-1","amount":"-100"}'
    assert json.loads(data) == {"amount": "-100"}  # why the reader must not use plain json.loads
    tx = one_bad(write_file, f'auth,"{data.replace(chr(34), chr(34) * 2)}",{TS},700')
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "data", "AMBIGUOUS_JSON")


def test_row04_thousands_separator_rejected_unless_configured(write_file):
    """Catalogue row 4."""
    path = write_file("a.csv", millions_csv([("-1,234.50", TS, "700"), GOOD[0]]))
    default = load(path)
    rej = only_reject(default)
    assert (rej.line, rej.error_type) == (2, "AMOUNT_FORMAT")
    assert "-1,234.50" in rej.message
    configured = load(path, thousands=",")
    assert configured.report.rejected == 0
    amounts = dict(zip(configured.to_pandas()["user_id"], configured.to_pandas()["amount"], strict=True))
    assert Decimal(repr(amounts["700"])) == Decimal("1234.50")
    assert parse_amount("-1,234.50", thousands=",") == float(Decimal("-1234.50"))


@pytest.mark.parametrize("amount", ["$-1.00", "-1.00 USD", "€1,00", "USD -1.00", "-1.00$"])
def test_row05_currency_symbols_and_codes_are_rejected_never_stripped(write_file, amount):
    """Catalogue row 5."""
    tx = load(write_file("a.csv", millions_csv([(amount, TS, "700")])))
    assert tx.report.accepted == 0
    rej = only_reject(tx)
    assert rej.error_type == "AMOUNT_FORMAT"
    assert amount in rej.message


@pytest.mark.parametrize(
    "data",
    [
        '{"amount":"NaN"}',
        '{"amount":"Infinity"}',
        '{"amount":"-inf"}',
        '{"amount":NaN}',
        '{"amount":-Infinity}',
        '{"amount":"1e400"}',
        '{"amount":"-1e400"}',
    ],
)
def test_row06_non_finite_amounts_are_rejected_and_never_reach_the_series(write_file, data):
    """Catalogue row 6."""
    quoted = data.replace('"', '""')
    tx = one_bad(write_file, f'auth,"{quoted}",{TS},700')
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "data", "NON_FINITE")
    assert all(math.isfinite(a) for a in tx.to_pandas()["amount"])
    summary = validation_summary(tx)
    assert math.isfinite(summary["total_spend"]) and summary["total_spend"] == 10.75


def test_row07_huge_amount_is_out_of_range_and_sub_cent_follows_policy(write_file):
    """Catalogue row 7 (fixed cases): exact Decimal parse, explicit maximum and sub-cent policy."""
    path = write_file("a.csv", millions_csv([("-99999999999999999999.99", TS, "1"), ("-0.001", TS, "2"),
                                             ("-10000000.00", TS, "3"), ("-10000000.01", TS, "4")]))
    tx = load(path)
    assert {r.line: r.error_type for r in tx.report.rejects} == {2: "OUT_OF_RANGE", 3: "SUB_CENT", 5: "OUT_OF_RANGE"}
    assert tx.to_pandas()["amount"].tolist() == [1e7]
    kept = load(path, sub_cent="keep")
    assert {r.line for r in kept.report.rejects} == {2, 5}
    assert sorted(kept.to_pandas()["amount"]) == [0.001, 1e7]
    rounded = load(path, sub_cent="round")  # -0.001 to whole cents, half to even: 0.00, kept as a zero amount
    assert {r.line for r in rounded.report.rejects} == {2, 5}
    assert sorted(rounded.to_pandas()["amount"]) == [0.0, 1e7]


cents = st.integers(min_value=-10**9, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2))
days = st.dates(min_value=dt.date(2021, 1, 1), max_value=dt.date(2021, 12, 31))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(cents, days, st.integers(0, 3)), min_size=1, max_size=30))
def test_row07_decimal_round_trip_and_monthly_sums_equal_a_decimal_oracle(tmp_path, rows):
    """Catalogue row 7 (property): parse -> format round-trips; monthly sums match Decimal sums."""
    lines = [(f"{-amount:.2f}", f"{day} 12:00:00", f"u{user}") for amount, day, user in rows]
    path = tmp_path / "prop.csv"
    path.write_bytes(millions_csv(lines))
    tx = load(path)
    assert tx.report.rejected == 0
    for amount, *_ in rows:
        assert Decimal(repr(parse_amount(f"{amount:.2f}"))).quantize(Decimal("0.01")) == amount
        assert f"{Decimal(repr(parse_amount(f'{amount:.2f}'))):.2f}" == f"{amount:.2f}"
    oracle: dict[tuple[str, int], Decimal] = {}
    for amount, day, user in rows:
        key = (f"u{user}", day.month)
        oracle[key] = oracle.get(key, Decimal(0)) + amount  # canonical amount = spend positive
    con = connect()
    tx.register(con)
    got = con.execute(
        "SELECT user_id, month(ts), CAST(sum(CAST(amount AS DECIMAL(18, 2))) AS VARCHAR) "
        "FROM transactions GROUP BY ALL"
    ).fetchall()
    assert {(u, m): Decimal(s) for u, m, s in got} == oracle


@pytest.mark.parametrize(("refunds", "spend"), [("separate", 10.0), ("net", 6.0)])
def test_row08_positive_amount_is_a_counted_refund_and_spend_is_gross_or_net(write_file, refunds, spend):
    """Catalogue row 8: spend -10 (two purchases) plus a refund +4 (written "+4.00")."""
    path = write_file("a.csv", millions_csv([("-6.00", TS, "1"), ("-4.00", TS, "1"), ("+4.00", TS, "1")]))
    tx = load(path, refunds=refunds)
    assert tx.report.rejected == 0
    assert tx.report.files[0].warnings["REFUND"] == 1
    summary = validation_summary(tx)
    assert summary["refunds"] == 1 and summary["refund_amount"] == 4.0
    assert summary["total_spend"] == 10.0  # gross: the headline figure in every config
    assert summary["net_spend"] == 6.0
    assert summary["spend"] == spend  # the figure the configured policy asks for


def test_row09_zero_and_negative_zero_normalise_to_zero_and_exclusion_is_counted(write_file):
    """Catalogue row 9."""
    path = write_file("a.csv", millions_csv([("-0.00", TS, "1"), ("0", TS, "2"), ("-1.00", TS, "3")]))
    tx = load(path)
    amounts = tx.to_pandas().set_index("user_id")["amount"]
    assert amounts["1"] == 0 and math.copysign(1, amounts["1"]) == 1.0
    assert amounts["2"] == 0 and math.copysign(1, amounts["2"]) == 1.0
    assert validation_summary(tx)["total_spend"] == 1.0
    excluded = load(path, zero_amounts="exclude")
    assert excluded.report.accepted == 1
    assert [(r.line, r.error_type) for r in excluded.report.rejects] == [(2, "ZERO_AMOUNT"), (3, "ZERO_AMOUNT")]


def test_row10_exact_duplicates_are_kept_and_counted_or_removed_on_opt_in(write_file):
    """Catalogue row 10."""
    path = write_file("a.csv", millions_csv([GOOD[0], GOOD[0], GOOD[1], GOOD[0]]))
    kept = load(path)
    assert kept.report.accepted == 4
    assert kept.report.files[0].warnings["DUPLICATE_ROW"] == 2
    deduped = load(path, dedupe=True)
    assert (deduped.report.rows_in, deduped.report.accepted, deduped.report.rejected) == (4, 2, 2)
    assert [(r.line, r.error_type) for r in deduped.report.rejects] == [(3, "DUPLICATE_ROW"), (5, "DUPLICATE_ROW")]


def test_row11_single_digit_hour_is_the_documented_format(write_file):
    """Catalogue row 11."""
    tx = load(write_file("a.csv", millions_csv([("-1.00", "2021-12-30 3:40:03", "1")])))
    assert tx.to_pandas()["ts"].tolist() == [dt.datetime(2021, 12, 30, 3, 40, 3, tzinfo=dt.UTC)]


def test_row12_offsets_convert_to_utc_before_the_month_and_a_mix_is_warned(write_file):
    """Catalogue row 12: 2021-12-31 23:30:00-05:00 is January in UTC; naive + aware = MIXED_TZ."""
    rows = [("-1.00", "2021-12-31 23:30:00-05:00", "1"), ("-1.00", "2021-12-30T03:40:03Z", "2"),
            ("-1.00", "2021-12-30 09:10:03+05:30", "3"), ("-1.00", "2021-12-30 3:40:03", "4")]
    tx = load(write_file("mixed.csv", millions_csv(rows)))
    ts = tx.to_pandas().set_index("user_id")["ts"]
    utc = dt.UTC
    assert ts["1"] == dt.datetime(2022, 1, 1, 4, 30, tzinfo=utc) and ts["1"].month == 1
    assert ts["2"] == ts["3"] == ts["4"] == dt.datetime(2021, 12, 30, 3, 40, 3, tzinfo=utc)
    assert tx.report.files[0].warnings["MIXED_TZ"] == 1
    con = connect()
    tx.register(con)
    assert con.execute("SELECT month(ts) FROM transactions WHERE user_id = '1'").fetchone() == (1,)
    aware_only = load(write_file("aware.csv", millions_csv(rows[:3])))
    assert aware_only.report.files[0].warnings["MIXED_TZ"] == 0


@pytest.mark.parametrize("created_at", ["2021-02-30 1:00:00", "2021-13-01 1:00:00", "2021-12-30 24:00:00",
                                        "2021-12-30 23:59:60", "2021-12-30 23:60:00", "30/12/2021 3:40:03", ""])
def test_row13_impossible_timestamps_are_date_parse_rejects_quoting_the_value(write_file, created_at):
    """Catalogue row 13."""
    tx = one_bad(write_file, millions_row("-1.00", created_at, "700"))
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "created_at", "DATE_PARSE")
    assert repr(created_at) in rej.message


@pytest.mark.parametrize("created_at", ["1900-01-01 0:00:00", "9999-12-31 23:59:59", "1600-01-01 0:00:00"])
def test_row14_out_of_window_timestamps_are_rejects_not_pandas_overflow(write_file, created_at):
    """Catalogue row 14 (pandas' nanosecond range is 1677-2262: these must never reach it)."""
    tx = one_bad(write_file, millions_row("-1.00", created_at, "700"))
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (4, "created_at", "OUT_OF_WINDOW")
    assert len(tx.to_pandas()) == 4


def test_row14_after_the_run_date_is_out_of_window(write_file):
    """Catalogue row 14: the default window ends at the run date."""
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    tx = load(write_file("a.csv", millions_csv([("-1.00", f"{tomorrow} 1:00:00", "1"), GOOD[0]])))
    assert [(r.line, r.error_type) for r in tx.report.rejects] == [(2, "OUT_OF_WINDOW")]
    pinned = load(write_file("b.csv", millions_csv([("-1.00", "2021-06-01 1:00:00", "1")])),
                  window_end=dt.date(2021, 5, 31))
    assert pinned.report.errors()["OUT_OF_WINDOW"] == 1


def test_row15_dst_gap_and_overlap_follow_the_policy_never_a_silent_nat(write_file):
    """Catalogue row 15: America/New_York, 2021-03-14 02:30 never existed; 2021-11-07 01:30 happened twice."""
    rows = [("-1.00", "2021-03-14 2:30:00", "gap"), ("-1.00", "2021-11-07 1:30:00", "overlap"),
            ("-1.00", "2021-07-01 12:00:00", "summer"), ("-1.00", "2021-01-15 12:00:00", "winter")]
    path = write_file("a.csv", millions_csv(rows))
    tx = load(path, timezone="America/New_York")
    assert {r.line: r.error_type for r in tx.report.rejects} == {2: "DST_NONEXISTENT", 3: "DST_AMBIGUOUS"}
    ts = tx.to_pandas().set_index("user_id")["ts"]
    utc = dt.UTC
    assert ts["summer"] == dt.datetime(2021, 7, 1, 16, tzinfo=utc)  # EDT = UTC-4
    assert ts["winter"] == dt.datetime(2021, 1, 15, 17, tzinfo=utc)  # EST = UTC-5
    shifted = load(path, timezone="America/New_York", dst_policy="shift_forward")
    assert shifted.report.rejected == 0
    ts = shifted.to_pandas().set_index("user_id")["ts"]
    assert ts["gap"] == dt.datetime(2021, 3, 14, 7, 30, tzinfo=utc)  # 03:30 EDT, one hour forward
    assert ts["overlap"] == dt.datetime(2021, 11, 7, 5, 30, tzinfo=utc)  # the first 01:30 (EDT)
    assert not shifted.to_pandas()["ts"].isna().any()


@pytest.mark.parametrize("type_", ["", "card_refund"])
def test_row30_unknown_type_is_quarantined_or_accepted_with_a_count(write_file, type_):
    """Catalogue row 30."""
    path = write_file("a.csv", millions_csv([GOOD[0], ("-5.00", TS, "9", type_), GOOD[1]]))
    tx = load(path)
    rej = only_reject(tx)
    assert (rej.line, rej.column, rej.error_type) == (3, "type", "UNKNOWN_TYPE")
    assert validation_summary(tx)["total_spend"] == 3.5
    accepted = load(path, unknown_types="accept")
    assert accepted.report.rejected == 0
    assert accepted.report.files[0].warnings["UNKNOWN_TYPE"] == 1


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x.example","y")', "+1", "@SUM(A1)", "-2+3"])
def test_row31_formula_like_text_is_data_and_is_neutralised_in_the_rejects_csv(write_file, tmp_path, text):
    """Catalogue row 31: accepted verbatim as a user id; every rejects-CSV cell is neutralised."""
    user = '"' + text.replace('"', '""') + '"'
    type_ = text.replace('"', "").replace(",", ";")  # an unquoted formula-like type on the rejected row
    path = write_file("a.csv", millions_csv([f'auth,"{{""amount"":""-1.00""}}",{TS},{user}',
                                             f'{type_},"{{""amount"":""-1.00""}}",{TS},7']))
    tx = load(path)
    assert tx.to_pandas()["user_id"].tolist() == [text]
    rej = only_reject(tx)
    assert (rej.line, rej.error_type) == (3, "UNKNOWN_TYPE")
    assert rej.raw.startswith(type_)
    out = tmp_path / "rejects.csv"
    write_rejects_csv(tx.report.rejects, out)
    with open(out, newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["raw"] == "'" + rej.raw
    assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_strict_mode_stops_at_the_first_bad_row_naming_file_line_and_column(write_file):
    """Validation modes: strict raises on the first bad row; collect lists every bad row."""
    rows = [GOOD[0], ("-1.00", "2021-02-30 1:00:00", "9"), ("abc", TS, "8")]
    path = write_file("modes.csv", millions_csv(rows))
    with pytest.raises(RowError) as strict:
        load(path, mode="strict")
    assert str(path) in str(strict.value) and "line 3" in str(strict.value) and "created_at" in str(strict.value)
    with pytest.raises(RowError) as collect:
        load(path, mode="collect")
    assert collect.value.n_errors == 2
    assert "line 3" in str(collect.value) and "line 4" in str(collect.value)


def test_field_errors_carry_their_catalogue_type():
    with pytest.raises(FieldError) as exc:
        parse_amount("1.00 EUR")
    assert exc.value.error_type == "AMOUNT_FORMAT"


@settings(max_examples=200, deadline=None)
@given(amount=st.text(max_size=8), ws=st.sampled_from(["", " ", "\t", "\n", "\r\n", "\x0c", "\u00a0"]))
def test_the_data_fast_path_agrees_with_the_json_parser(amount, ws):
    """``{"amount":"..."}`` is read without json.loads; it must accept and reject exactly as json does."""
    from spendlab.io.millions import parse_data_amount

    data = f'{ws}{{{ws}"amount"{ws}:{ws}{json.dumps(amount)}{ws}}}{ws}'
    try:
        expected = json.loads(data)["amount"]
    except json.JSONDecodeError:
        with pytest.raises(FieldError):
            parse_data_amount(data)
    else:
        assert parse_data_amount(data) == expected
