"""The physical-line record reader: stray and unclosed quotes never swallow the good rows after them.

Complements catalogue rows 22-24 (line endings, multi-line fields, ragged rows): the global
property is that every well-formed row is accepted at its own physical line.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.io.records import BadRecord, Record, ends_inside_quotes, iter_records
from tests.conftest import load, millions_csv, millions_row

TS = "2021-12-30 3:40:03"
OPEN = 'auth,"{""amount"":""-9.00""},2021-12-30 3:40:03,9'  # the data field's closing quote is missing


def good(i: int) -> str:
    return millions_row(f"-{i}.00", TS, f"g{i}")


def test_an_unclosed_quote_rejects_only_its_own_line(write_file):
    tx = load(write_file("q.csv", millions_csv([good(1), OPEN, good(2), good(3)])))
    assert [(r.line, r.error_type) for r in tx.report.rejects] == [(3, "UNTERMINATED_QUOTE")]
    assert dict(zip(tx.to_pandas()["user_id"], tx.to_pandas()["line"], strict=True)) == {"g1": 2, "g2": 4, "g3": 5}


def test_an_unclosed_quote_at_the_end_of_the_file_is_rejected(write_file):
    tx = load(write_file("q.csv", millions_csv([good(1), OPEN], final_newline=False)))
    assert [(r.line, r.error_type) for r in tx.report.rejects] == [(3, "UNTERMINATED_QUOTE")]
    assert "end of the file" in tx.report.rejects[0].message


def test_two_unclosed_quotes_do_not_pair_up_over_the_rows_between_them(write_file):
    tx = load(write_file("q.csv", millions_csv([OPEN, good(1), good(2), OPEN, good(3)])))
    assert [(r.line, r.error_type) for r in tx.report.rejects] == [(2, "UNTERMINATED_QUOTE"),
                                                                   (5, "UNTERMINATED_QUOTE")]
    assert sorted(tx.to_pandas()["line"]) == [3, 4, 6]


def test_a_quote_inside_an_unquoted_field_is_a_literal_character(write_file):
    tx = load(write_file("q.csv", millions_csv([good(1), f'auth,"{{""amount"":""-1.00""}}",{TS},7"8', good(2)])))
    assert tx.report.rejected == 0
    assert tx.to_pandas()["user_id"].tolist() == ["g1", '7"8', "g2"]


def test_an_undecodable_line_inside_an_open_quote_is_rejected_on_its_own(write_file):
    data = millions_csv([good(1), OPEN, "BAD", good(2)]).replace(b"BAD", "caf\xe9".encode("latin-1"))
    tx = load(write_file("q.csv", data))
    assert [(r.line, r.error_type) for r in tx.report.rejects] == [(3, "UNTERMINATED_QUOTE"),
                                                                   (4, "INVALID_ENCODING")]
    assert sorted(tx.to_pandas()["line"]) == [2, 5]


def test_ends_inside_quotes_follows_rfc4180():
    assert ends_inside_quotes('a,"b', False)
    assert not ends_inside_quotes('a,"b""c",d', False)
    assert not ends_inside_quotes('a,b"c,d', False)  # mid-field quote is literal
    assert ends_inside_quotes('still open ""', True)
    assert not ends_inside_quotes('closes" here,x', True)


def test_iter_records_reports_start_and_end_lines_of_a_multi_line_record(write_file):
    path = write_file("m.csv", 'a,b\n1,"x\ny\nz"\n2,w\n')
    recs = [r for r in iter_records(path) if isinstance(r, Record | BadRecord)]
    assert [(r.line, r.end_line, r.fields) for r in recs] == [(1, 1, ["a", "b"]), (2, 4, ["1", "x\ny\nz"]),
                                                               (5, 5, ["2", "w"])]


KINDS = {
    "good": None,
    "open": OPEN,
    "json": 'auth,"{""amount"":""-1.00""",2021-12-30 3:40:03,8',
    "ragged": "auth,1",
    "stray": f'auth,"{{""amount"":""-1.00""}}",{TS},x"y',
    "multi": 'auth,"{""amount"":\n""-2.00""}",2021-12-30 3:40:03,m',
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=12),
       eol=st.sampled_from(["\n", "\r\n"]))
def test_every_good_row_is_accepted_at_its_physical_line_whatever_surrounds_it(tmp_path, kinds, eol):
    rows, good_lines, line = [], {}, 2
    for i, kind in enumerate(kinds):
        text = good(i) if kind == "good" else KINDS[kind]
        if kind == "good":
            good_lines[f"g{i}"] = line
        rows.append(text.replace("\n", eol))
        line += text.count("\n") + 1
    path = tmp_path / "p.csv"
    path.write_bytes(millions_csv(rows, eol=eol))
    tx = load(path)
    got = dict(zip(tx.to_pandas()["user_id"], tx.to_pandas()["line"], strict=True))
    assert {u: got.get(u) for u in good_lines} == good_lines
