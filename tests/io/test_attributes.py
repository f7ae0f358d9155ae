"""Line-level attributes in the generic reader: values, rejects, order aggregation, CSV == Parquet."""

from __future__ import annotations

import csv
import io
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.config import ReaderConfig
from spendlab.errors import ConfigError
from spendlab.io import load_transactions

#: By hand: line 5 has a bad discount (AMOUNT_FORMAT, column disc), line 6 an empty department and
#: discount (missing, accepted), line 7 is cancelled (excluded). Orders with order_col: O1 = lines 2, 3
#: (u1, dept {MEAT, PRODUCE}, disc -0.50 + -0.25 = -0.75, 12.00); O2 = line 4 (u2, {PRODUCE}, 0.00, 3.00);
#: O3 = line 6 (u1, [], disc missing, 4.00).
LINES = """order,cust,ts,amount,dept,disc,status
O1,u1,2024-01-05 10:00:00,10.00,PRODUCE,-0.50,ok
O1,u1,2024-01-05 10:00:00,2.00, MEAT ,-0.25,ok
O2,u2,2024-01-20 09:00:00,3.00,PRODUCE,0,ok
O2,u2,2024-01-20 09:00:00,1.00,MEAT,1_0,ok
O3,u1,2024-02-10 08:00:00,4.00,,,ok
O4,u2,2024-02-11 08:00:00,9.00,MEAT,0,cancelled
"""
ATTRS = {"department": {"column": "dept", "type": "category"}, "discount": {"column": "disc", "type": "amount"}}
BASE = {"user_col": "cust", "ts_col": "ts", "attributes": ATTRS, "include": {"status": ["ok"]}}


def load(path, **generic):
    tx = load_transactions(str(path), "generic", config=ReaderConfig(generic={**BASE, **generic}))
    for f in tx.report.files:
        assert f.rows_in == f.accepted + f.rejected + f.excluded, f.as_dict()
    return tx


def rows(tx, header: int = 0) -> list[tuple]:
    """The rows as tuples; ``header`` = 1 for Parquet, whose row 1 is the CSV's line 2."""
    df = tx.to_arrow().to_pylist()
    return sorted((r["user_id"], r["ts"], r["amount"], r["line"] + header, r["department"], r["discount"])
                  for r in df)


def as_parquet(text: str, path, types: dict[str, pa.DataType] | None = None):
    records = list(csv.DictReader(io.StringIO(text)))
    cols = {k: [r[k] for r in records] for k in records[0]}
    table = pa.table(cols)
    for name, t in (types or {}).items():
        table = table.set_column(table.column_names.index(name), name,
                                 pa.array([None if v == "" else float(v) for v in cols[name]], t))
    pq.write_table(table, path)
    return path


def test_line_attributes_are_read_with_the_hand_computed_values_and_rejects(tmp_path):
    (tmp_path / "l.csv").write_text(LINES)
    tx = load(tmp_path / "l.csv")
    f = tx.report.files[0]
    assert (f.rows_in, f.accepted, f.rejected, f.excluded) == (6, 4, 1, 1)
    (bad,) = tx.report.rejects
    assert (bad.line, bad.column, bad.error_type) == (5, "disc", "AMOUNT_FORMAT")
    got = sorted(((u, a, ln, d, disc) for u, _, a, ln, d, disc in rows(tx)), key=lambda r: r[2])
    assert got == [("u1", 10.0, 2, "PRODUCE", -0.5), ("u1", 2.0, 3, "MEAT", -0.25), ("u2", 3.0, 4, "PRODUCE", 0.0),
                   ("u1", 4.0, 6, None, None)]


def test_orders_keep_the_sum_of_amount_attributes_and_the_set_of_categories(tmp_path):
    (tmp_path / "l.csv").write_text(LINES)
    tx = load(tmp_path / "l.csv", order_col="order")
    got = sorted(((u, a, ln, d, disc) for u, _, a, ln, d, disc in rows(tx)), key=lambda r: r[2])
    assert got == [("u1", 12.0, 2, ["MEAT", "PRODUCE"], -0.75), ("u2", 3.0, 4, ["PRODUCE"], 0.0),
                   ("u1", 4.0, 6, [], None)]


@pytest.mark.parametrize("order_col", [None, "order"])
@pytest.mark.parametrize("typed", [False, True])
def test_parquet_gives_the_csv_rows_and_rejects(tmp_path, order_col, typed):
    text = LINES.replace("1_0", "")  # a typed column cannot hold the malformed value; text keeps it
    text = text if typed else LINES
    (tmp_path / "l.csv").write_text(text)
    pq_path = as_parquet(text, tmp_path / "l.parquet", {"disc": pa.float64()} if typed else None)
    extra = {"order_col": order_col} if order_col else {}
    a, b = load(tmp_path / "l.csv", **extra), load(pq_path, **extra)
    assert rows(a) == rows(b, header=1)
    assert [(r.line, r.column, r.error_type) for r in a.report.rejects] == \
        [(r.line + 1, r.column, r.error_type) for r in b.report.rejects]
    fa, fb = a.report.files[0], b.report.files[0]
    assert (fa.rows_in, fa.accepted, fa.rejected, fa.excluded) == (fb.rows_in, fb.accepted, fb.rejected, fb.excluded)


_cat = st.sampled_from(["", "A", " B", "C ", "é", "x\u200by"])
_disc = st.sampled_from(["", "0", "-1.25", "0.333", "abc", "2.5", "1e3"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), st.sampled_from(["u1", "u2"]), _cat, _disc),
                      min_size=1, max_size=8),
       orders=st.booleans())
def test_csv_and_parquet_agree_on_any_attribute_values(tmp_path_factory, lines, orders):
    d = tmp_path_factory.mktemp("attr")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["order", "cust", "ts", "amount", "dept", "disc", "status"])
    for i, (o, u, c, x) in enumerate(lines):
        w.writerow([o, u, f"2024-01-{i + 1:02d} 10:00:00", "1.00", c, x, "ok"])
    (d / "l.csv").write_text(out.getvalue())
    pq_path = as_parquet(out.getvalue(), d / "l.parquet")
    extra = {"order_col": "order"} if orders else {}
    a, b = load(d / "l.csv", **extra), load(pq_path, **extra)
    assert rows(a) == rows(b, header=1)
    assert [(r.line, r.column, r.error_type) for r in a.report.rejects] == \
        [(r.line + 1, r.column, r.error_type) for r in b.report.rejects]


@pytest.mark.parametrize("attributes, needle", [
    ({"amount": {"column": "x"}}, "must be lower-case"),
    ({"Dept": {"column": "x"}}, "must be lower-case"),
    ({"a": {"column": "x"}, "b": {"column": "x"}}, "same column"),
    ({"a": {"column": "cust"}}, "already mapped"),
    ({"a": {"column": "x", "type": "text"}}, "category"),
])
def test_bad_attribute_declarations_are_config_errors(attributes, needle):
    from spendlab.config import parse_config

    with pytest.raises(ConfigError, match=needle):
        parse_config(ReaderConfig, {"generic": {"user_col": "cust", "attributes": attributes}}, "t.yaml")


def test_an_order_without_any_discount_value_keeps_a_missing_sum(tmp_path):
    (tmp_path / "l.csv").write_text(LINES)
    tx = load(tmp_path / "l.csv", order_col="order")
    by_line = {r["line"]: r for r in tx.to_arrow().to_pylist()}
    assert by_line[6]["discount"] is None and not math.isnan(by_line[2]["discount"])
