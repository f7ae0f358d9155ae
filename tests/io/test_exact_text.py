"""Issue 15 item 4: text parsing is exact (ASCII digits, valid UTC offsets, one id policy)."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.io.parsing import FieldError, normalise_user_id, parse_amount, parse_timestamp
from tests.conftest import load, millions_csv

UTC = dt.UTC


def _non_ascii_digit_forms(text: str) -> list[str]:
    """``text`` with its ASCII digits replaced by the same digits of other scripts."""
    zeros = [0x0660, 0x06F0, 0x0966, 0xFF10, 0x1D7CE, 0x0E50]  # Arabic-Indic, Persian, Devanagari, full-width, math, Thai
    return ["".join(chr(z + int(c)) if c.isdigit() else c for c in text) for z in zeros]


@pytest.mark.parametrize("text", _non_ascii_digit_forms("12.00") + ["１２.００", "١٢.٠٠", "1２.00"])
def test_amounts_take_ascii_digits_only(text):
    assert all(unicodedata.digit(c, None) is not None for c in text if c != ".")  # digits, just not ASCII
    with pytest.raises(FieldError) as exc:
        parse_amount(text)
    assert exc.value.error_type == "AMOUNT_FORMAT"


@pytest.mark.parametrize("text", _non_ascii_digit_forms("2021-12-30 03:40:03"))
def test_timestamps_take_ascii_digits_only(text):
    with pytest.raises(FieldError) as exc:
        parse_timestamp(text)
    assert exc.value.error_type == "DATE_PARSE"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=6))
def test_no_decimal_digit_of_another_script_is_ever_a_number(digits):
    """Property: any run of Unicode decimal digits that is not plain ASCII is an AMOUNT_FORMAT reject."""
    if digits.isascii():
        assert parse_amount(digits, max_abs=1e12, sub_cent="keep") == float(digits)
        return
    with pytest.raises(FieldError) as exc:
        parse_amount(digits)
    assert exc.value.error_type == "AMOUNT_FORMAT"


@pytest.mark.parametrize(
    ("offset", "ok"),
    [("+05:30", True), ("-05:00", True), ("+14:00", True), ("-14:00", True), ("+0545", True),
     ("+05:99", False), ("+05:60", False), ("+14:01", False), ("+15:00", False), ("-23:59", False),
     ("+99:00", False)],
)
def test_utc_offsets_have_minutes_below_60_and_at_most_14_hours(offset, ok):
    text = f"2021-12-31 23:30:00{offset}"
    if ok:
        ts, aware = parse_timestamp(text)
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        assert aware and ts == dt.datetime(2021, 12, 31, 23, 30, tzinfo=UTC) - sign * delta
    else:
        with pytest.raises(FieldError) as exc:
            parse_timestamp(text)
        assert exc.value.error_type == "DATE_PARSE" and "offset" in str(exc.value)


def test_cdnow_dates_and_items_take_ascii_digits_only(write_file):
    path = write_file("c.txt", "00001 19970101 1 11.77\n00002 １９９７0101 1 1.00\n00003 19970102 ١ 1.00\n"
                               "00004 19970102 1 ١.00\n")
    tx = load(path, "cdnow")
    assert tx.report.accepted == 1
    assert sorted((r.line, r.column, r.error_type) for r in tx.report.rejects) == [
        (2, "date", "DATE_PARSE"), (3, "n_items", "INVALID_ITEMS"), (4, "dollar_value", "AMOUNT_FORMAT")]


IDS = [("007", "007"), (" 7 ", "7"), ("\xa0u1\xa0", "u1"), ("\u2007u1\u3000", "u1"), ("\x1fu1\x1e", "u1"),
       ("\tu1\x0b", "u1"), ("u 1", "u 1"), ("u\xa01", None), ("u\x00x", None), ("\u200bu1", None),
       ("u\u202e1", None), ("\x1b[31mu1", None), ("", None), ("\xa0\u3000", None), ("u\ufeff1", None)]


@pytest.mark.parametrize(("raw", "expected"), IDS)
def test_ids_are_normalised_the_same_in_csv_and_parquet(tmp_path, raw, expected):
    """Whitespace around an id (non-breaking, ideographic, separators) is trimmed; control and format
    characters left inside make it INVALID_KEY; an empty one is NULL_KEY. Same in every reader."""
    csv_path = tmp_path / "a.csv"
    quoted = '"' + raw.replace('"', '""') + '"'
    csv_path.write_text(f"user_id,ts,amount\n{quoted},2021-06-01 00:00:00,1.00\n", encoding="utf-8")
    pq_path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"user_id": [raw], "ts": ["2021-06-01 00:00:00"], "amount": ["1.00"]}), pq_path)
    millions = tmp_path / "m.csv"
    millions.write_bytes(millions_csv([("-1.00", "2021-06-01 0:00:00", quoted)]))
    outcomes = []
    for path, fmt in ((csv_path, "generic"), (pq_path, "generic"), (millions, "millions")):
        tx = load(path, fmt)
        ids = tx.to_pandas()["user_id"].tolist()
        outcomes.append((ids, [r.error_type for r in tx.report.rejects]))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    try:
        want = normalise_user_id(raw)
    except FieldError as exc:
        assert expected is None and outcomes[0] == ([], [exc.error_type])
    else:
        assert want == expected and outcomes[0] == ([expected], [])
