"""Catalogue rows 33-36 (format B, the whitespace-separated CDNOW master file)."""

from __future__ import annotations

import datetime as dt

import pytest

from spendlab.io.load import validation_summary
from tests.conftest import load, millions_csv

UTC = dt.UTC


def test_row33_runs_of_spaces_tabs_and_blank_lines_are_accepted_and_blanks_counted(write_file):
    """Catalogue row 33."""
    text = (
        " 00001 19970101  1   11.77\n"
        "\n"
        "00002\t19970112\t1\t12.00   \n"
        "   \t  \n"
        "  00002 \t 19970112 2 \t 24.50\r\n"
    )
    tx = load(write_file("cd.txt", text), "cdnow")
    f = tx.report.files[0]
    assert (f.rows_in, f.accepted, f.rejected, f.blank_lines) == (3, 3, 0, 2)
    df = tx.to_pandas()
    assert df["user_id"].tolist() == ["00001", "00002", "00002"]
    assert df["line"].tolist() == [1, 3, 5]
    assert df["n_items"].tolist() == [1, 1, 2]
    assert df["amount"].tolist() == [11.77, 12.00, 24.50]
    assert df["ts"].tolist() == [dt.datetime(1997, 1, 1, tzinfo=UTC), dt.datetime(1997, 1, 12, tzinfo=UTC),
                                 dt.datetime(1997, 1, 12, tzinfo=UTC)]
    assert validation_summary(tx)["total_spend"] == 48.27


@pytest.mark.parametrize("date", ["1997-01-01", "19970230", "970101", "19971301", "1997010a"])
def test_row34_bad_dates_are_date_parse_rejects(write_file, date):
    """Catalogue row 34."""
    tx = load(write_file("cd.txt", f"00001 19970101 1 11.77\n00002 {date} 1 5.00\n"), "cdnow")
    (rej,) = tx.report.rejects
    assert (rej.line, rej.column, rej.error_type) == (2, "date", "DATE_PARSE")
    assert date in rej.message


@pytest.mark.parametrize(
    ("n_items", "dollars", "column", "error_type"),
    [
        ("2.5", "5.00", "n_items", "INVALID_ITEMS"),
        ("-1", "5.00", "n_items", "INVALID_ITEMS"),
        ("x", "5.00", "n_items", "INVALID_ITEMS"),
        ("1", "-5.00", "dollar_value", "NEGATIVE_AMOUNT"),
        ("1", "five", "dollar_value", "AMOUNT_FORMAT"),
        ("1", "$5.00", "dollar_value", "AMOUNT_FORMAT"),
        ("1", "nan", "dollar_value", "NON_FINITE"),
    ],
)
def test_row35_bad_items_or_dollar_value_are_rejected_with_their_column(write_file, n_items, dollars, column,
                                                                       error_type):
    """Catalogue row 35 (the reject half)."""
    tx = load(write_file("cd.txt", f"00001 19970101 1 11.77\n00002 19970102 {n_items} {dollars}\n"), "cdnow")
    (rej,) = tx.report.rejects
    assert (rej.line, rej.column, rej.error_type) == (2, column, error_type)
    assert tx.report.accepted == 1


def test_row35_the_same_purchases_in_format_a_and_b_give_the_same_spend(write_file):
    """Catalogue row 35: A writes spend as a negative ``amount``, B as a positive ``dollar_value``."""
    purchases = [("00001", "19970101", "12.34"), ("00001", "19970315", "0.99"), ("00002", "19970102", "100.00")]
    b = load(write_file("b.txt", "".join(f"{u} {d} 1 {v}\n" for u, d, v in purchases)), "cdnow")
    a = load(write_file("a.csv", millions_csv(
        [(f"-{v}", f"{d[:4]}-{d[4:6]}-{d[6:]} 0:00:00", u) for u, d, v in purchases])))
    cols = ["user_id", "ts", "amount"]
    assert a.to_pandas()[cols].equals(b.to_pandas()[cols])
    assert validation_summary(a)["total_spend"] == validation_summary(b)["total_spend"] == 113.33


@pytest.mark.parametrize("line", ["00002 19970102 1", "00002 19970102 1 5.00 extra", "00002"])
def test_row36_fewer_or_more_than_four_fields_is_field_count(write_file, line):
    """Catalogue row 36."""
    tx = load(write_file("cd.txt", f"00001 19970101 1 11.77\n{line}\n00003 19970103 1 1.00\n"), "cdnow")
    (rej,) = tx.report.rejects
    assert (rej.line, rej.error_type, rej.raw) == (2, "FIELD_COUNT", line)
    assert tx.report.accepted == 2


def test_cdnow_header_line_is_skipped_and_line_numbers_stay_physical(write_file):
    """The CDNOW file may start with a ``customer_id date ...`` header; it is not a data row."""
    tx = load(write_file("cd.txt", " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n"
                         " 00002 1997011 1 1.00\n"), "cdnow")
    assert (tx.report.rows_in, tx.report.accepted) == (2, 1)
    assert tx.report.rejects[0].line == 3 and tx.to_pandas()["line"].tolist() == [2]


def test_an_overlong_cdnow_line_is_line_too_long_and_later_lines_keep_their_numbers(write_file):
    """Catalogue row 29 for the whitespace format (no quoting: one physical line is one record)."""
    text = "00001 19970101 1 11.77\n00002 19970102 1 " + "9" * (2 << 20) + "\n00003 19970103 1 1.00\n"
    tx = load(write_file("cd.txt", text), "cdnow")
    (rej,) = tx.report.rejects
    assert (rej.line, rej.error_type) == (2, "LINE_TOO_LONG") and len(rej.raw) < 300
    assert tx.to_pandas()["line"].tolist() == [1, 3]
