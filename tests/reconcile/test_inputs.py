"""Delta and summary loading (formats.md section 4; catalogue rows 40, 41, 45, 54 and the reader contract)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from spendlab.errors import InputFileError, SpendlabError
from spendlab.io.load import connect
from spendlab.reconcile.inputs import discover_deltas, load_reconcile_inputs, natural_key

HEADER = "user_id,total_spend,count_saved_items,loyalty_credits,batch_id"
SUMMARY = HEADER + "\nu1,10,1,0,5\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def load(tmp_path: Path, deltas: dict[str, str | bytes], summary: str = SUMMARY):
    for name, text in deltas.items():
        write(tmp_path / "d" / name, text)
    plat = write(tmp_path / "platform.csv", summary)
    src = write(tmp_path / "source.csv", summary)
    con = connect()
    return con, load_reconcile_inputs(con, str(tmp_path / "d" / "*"), plat, src)


def test_natural_order_puts_delta2_before_delta10(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        write(tmp_path / f"delta{n}.csv", HEADER + "\n")
    files, ignored = discover_deltas(str(tmp_path / "*.csv"))
    assert [f.name for f in files] == ["delta1.csv", "delta2.csv", "delta10.csv"]
    assert ignored == []
    assert sorted(["delta10", "delta9"], key=natural_key) == ["delta9", "delta10"]


def test_glob_lists_non_delta_files_as_ignored(tmp_path: Path) -> None:
    """Row 54: summary.csv, .DS_Store and an Office lock file are listed, never loaded."""
    write(tmp_path / "delta_1.csv", HEADER + "\nu1,1,1,1,1\n")
    write(tmp_path / "acme_delta-2_export.csv", HEADER + "\nu1,2,1,1,2\n")
    for junk in ("summary.csv", ".DS_Store", "~$delta3.csv", "notes.txt"):
        write(tmp_path / junk, "x")
    files, ignored = discover_deltas(str(tmp_path / "*"))
    assert [f.name for f in files] == ["delta_1.csv", "acme_delta-2_export.csv"]
    assert ignored == [".DS_Store", "notes.txt", "summary.csv", "~$delta3.csv"]


def test_glob_with_no_delta_file_names_the_ignored_ones(tmp_path: Path) -> None:
    write(tmp_path / "summary.csv", HEADER + "\n")
    with pytest.raises(SpendlabError, match="summary.csv"):
        discover_deltas(str(tmp_path / "*.csv"))


def test_zero_byte_delta_is_listed_as_empty_delta(tmp_path: Path) -> None:
    """Row 40."""
    _, inp = load(tmp_path, {"delta1.csv": HEADER + "\nu1,10,1,0,5\n", "delta2.csv": b""})
    assert [(f.name, f.status, f.report.rows_in) for f in inp.deltas] == [
        ("delta1.csv", "ok", 1), ("delta2.csv", "EMPTY_DELTA", 0)]


def test_header_only_delta_loads_zero_rows_and_is_listed(tmp_path: Path) -> None:
    """Row 41."""
    con, inp = load(tmp_path, {"delta1.csv": HEADER + "\n"})
    assert [(f.name, f.status, f.report.rows_in) for f in inp.deltas] == [("delta1.csv", "HEADER_ONLY", 0)]
    assert con.execute("SELECT count(*) FROM deltas").fetchone()[0] == 0


@pytest.mark.parametrize("batch", ["-3", "-0", "12a", "3.0", "9223372036854775808", "", " ", "+4", "1e3",
                                   "\u0661\u0662", "\uff11"])
def test_bad_batch_id_is_rejected_with_file_and_line(tmp_path: Path, batch: str) -> None:
    """Row 45: negative, non-integer, non-ASCII-digit and above-int64 batch ids are rejected (0 is valid)."""
    text = f"{HEADER}\nu1,10,1,0,5\nu2,10,1,0,{batch}\nu3,10,1,0,9223372036854775807\n"
    con, inp = load(tmp_path, {"delta1.csv": text})
    rep = inp.deltas[0].report
    assert (rep.rows_in, rep.accepted, rep.rejected) == (3, 2, 1)
    rej = con.execute('SELECT file, line, "column", error_type, raw FROM rejects').fetchall()
    assert rej == [("delta1.csv", 3, "batch_id", "INVALID_BATCH_ID", f"u2,10,1,0,{batch}")]


@pytest.mark.parametrize(("row", "column", "error"), [
    ("u2,-1,1,0,5", "total_spend", "INVALID_NUMBER"),
    ("u2,1O,1,0,5", "total_spend", "INVALID_NUMBER"),
    ("u2,10,2.5,0,5", "count_saved_items", "INVALID_NUMBER"),
    ("u2,10,1,NaN,5", "loyalty_credits", "INVALID_NUMBER"),
    (",10,1,0,5", "user_id", "NULL_KEY"),
    ("u2,10,1,0", "", "MISSING_COLUMNS"),
    ("u2,10,1,0,5,6", "", "TOO_MANY_COLUMNS"),
])
def test_bad_values_are_rejected_naming_the_column(tmp_path: Path, row: str, column: str, error: str) -> None:
    con, inp = load(tmp_path, {"delta1.csv": f"{HEADER}\n{row}\nu3,1,1,1,1\n"})
    assert inp.deltas[0].report.rejected == 1
    assert con.execute('SELECT line, "column", error_type FROM rejects').fetchall() == [(2, column, error)]


def test_conservation_and_blank_lines_are_counted_apart(tmp_path: Path) -> None:
    text = f"{HEADER}\nu1,1,1,1,1\n\nu2,x,1,1,1\n   \nu3,1,1,1,2\n"
    _, inp = load(tmp_path, {"delta1.csv": text})
    rep = inp.deltas[0].report
    assert (rep.rows_in, rep.accepted, rep.rejected, rep.blank_lines) == (3, 2, 1, 2)
    rep.check_conservation()


def test_keys_stay_strings_and_leading_zeros_survive(tmp_path: Path) -> None:
    con, _ = load(tmp_path, {"delta1.csv": f"{HEADER}\n007,1,1,1,1\n7,2,1,1,1\n"})
    assert con.execute("SELECT user_id FROM deltas ORDER BY line").fetchall() == [("007",), ("7",)]


def test_quoted_crlf_bom_file_reads_like_the_plain_file(tmp_path: Path) -> None:
    """Quoted fields and odd line endings take the physical-line reader; rows and lines are the same."""
    plain = f"{HEADER}\n007,10,1,0,5\n\nu2,x,1,0,6\nu3,3,1,0,7\n"
    odd = ("\ufeff" + HEADER + '\r\n"007",10,1,0,5\r\n\r\nu2,x,1,0,6\r\n"u3",3,1,0,7').encode()
    con1, a = load(tmp_path / "a", {"delta1.csv": plain})
    con2, b = load(tmp_path / "b", {"delta1.csv": odd})
    assert (a.deltas[0].reader, b.deltas[0].reader) == ("lines", "records")  # the blank line rules out "columns"
    q = "SELECT line, user_id, total_spend, batch_id FROM deltas ORDER BY line"
    assert con1.execute(q).fetchall() == con2.execute(q).fetchall() == [(2, "007", 10.0, 5), (5, "u3", 3.0, 7)]
    q = 'SELECT line, "column", error_type FROM rejects'
    assert con1.execute(q).fetchall() == con2.execute(q).fetchall() == [(4, "total_spend", "INVALID_NUMBER")]


def test_invalid_utf8_row_is_rejected_with_its_line(tmp_path: Path) -> None:
    data = (HEADER + "\nu1,1,1,1,1\nCaf\xe9,1,1,1,1\n").encode("latin-1")
    con, inp = load(tmp_path, {"delta1.csv": data})
    assert inp.deltas[0].reader == "records"
    assert con.execute("SELECT line, error_type FROM rejects").fetchall() == [(3, "INVALID_ENCODING")]


def test_wrong_delimiter_fails_the_file_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"delta1\.csv.*HEADER_MISMATCH"):
        load(tmp_path, {"delta1.csv": HEADER.replace(",", ";") + "\nu1;1;1;1;1\n"})


def test_summary_allows_null_values_but_not_bad_ones(tmp_path: Path) -> None:
    summary = f"{HEADER}\nu1,,1,0,5\nu2,abc,1,0,5\nu3,10.0999999,1,0,5\n"
    con, inp = load(tmp_path, {"delta1.csv": f"{HEADER}\nu1,0,1,0,5\n"}, summary=summary)
    assert con.execute("SELECT user_id, total_spend FROM source ORDER BY line").fetchall() == [
        ("u1", None), ("u3", Decimal("10.0999999"))]  # exact: money is DECIMAL, never DOUBLE
    assert (inp.source.report.rows_in, inp.source.report.rejected) == (3, 1)


def test_empty_summary_fails_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="platform.csv"):
        load(tmp_path, {"delta1.csv": f"{HEADER}\nu1,0,1,0,5\n"}, summary="")


def test_quoted_header_alone_keeps_the_fast_reader(tmp_path: Path) -> None:
    """Exporters often quote the header only; the data lines are still plain."""
    quoted = ",".join(f'"{c}"' for c in HEADER.split(",")) + "\nu1,1,1,1,1\n\nu2,2,1,1,2\n"
    con, inp = load(tmp_path, {"delta1.csv": quoted})
    assert inp.deltas[0].reader == "lines"
    assert con.execute("SELECT line, user_id FROM deltas ORDER BY line").fetchall() == [(2, "u1"), (4, "u2")]
    assert inp.deltas[0].report.blank_lines == 1


@pytest.mark.parametrize("extra", ["", "u9,1,1\n", "\n", "   \n"])
def test_column_reader_and_line_reader_agree(tmp_path: Path, extra: str) -> None:
    """The columns reader (no blank or ragged line) and the per-line reader give the same rows and rejects."""
    from spendlab.io.rejects import FileReport
    from spendlab.reconcile.inputs import LoadedFile, _create_tables, _load_fast
    from spendlab.reconcile.validate import CheckedWriter

    text = f"{HEADER}\n007,10,1,0,5\nu2, 3 ,1,0,12a\n" + extra + "u3,4,2,1,7\n"
    path = write(tmp_path / "delta1.csv", text)
    con_a, inp = load(tmp_path / "a", {"delta1.csv": text})
    con_b = connect()
    _create_tables(con_b)
    lf = LoadedFile("delta1.csv", str(path), 0, "ok", FileReport(str(path)))
    _load_fast(path, CheckedWriter(con_b, "delta", "deltas", lf, "delta"))
    assert inp.deltas[0].reader == ("columns" if extra == "" else "lines")
    assert inp.deltas[0].report.as_dict() | {"file": ""} == lf.report.as_dict() | {"file": ""}
    for q in ("SELECT * FROM deltas ORDER BY line", "SELECT line, \"column\", error_type, raw FROM rejects ORDER BY line"):
        assert con_a.execute(q).fetchall() == con_b.execute(q).fetchall()


@pytest.mark.parametrize("batch", ["0", "00", "7"])
def test_batch_id_zero_and_other_non_negative_integers_are_valid_batches(tmp_path: Path, batch: str) -> None:
    """Corrected row 45: real exports number their first batch 0; it loads like any other batch."""
    con, inp = load(tmp_path, {"delta1.csv": f"{HEADER}\nu1,10,1,0,{batch}\n"})
    assert (inp.deltas[0].report.accepted, inp.deltas[0].report.rejected) == (1, 0)
    assert con.execute("SELECT batch_id FROM deltas").fetchone()[0] == int(batch)
