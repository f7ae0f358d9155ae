"""Lookup tables in the generic reader: a product table gives each line its department, by key."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.config import ReaderConfig, parse_config
from spendlab.errors import ConfigError, InputFileError
from spendlab.io import load_transactions

#: By hand: products P1 -> PRODUCE, P2 -> MEAT, P3 -> DAIRY (never sold: unused), P4 -> (empty department).
#: Line 5 sells P9 (not in the table: department missing, kept), line 6 has a bad amount (rejected),
#: line 7 is cancelled (excluded). Lines: 2 P1 PRODUCE, 3 P2 MEAT, 4 P1 PRODUCE, 5 P9 -, 8 P4 -.
#: Orders: O1 = lines 2, 3 {MEAT, PRODUCE}; O2 = line 4 {PRODUCE}; O3 = line 5 []; O5 = line 8 [].
LINES = """order,cust,ts,amount,prod,status
O1,u1,2024-01-05 10:00:00,10.00,P1,ok
O1,u1,2024-01-05 10:00:00,2.00, P2 ,ok
O2,u2,2024-01-20 09:00:00,3.00,P1,ok
O3,u2,2024-01-21 09:00:00,1.00,P9,ok
O4,u1,2024-02-10 08:00:00,abc,P3,ok
O4,u2,2024-02-11 08:00:00,9.00,P3,cancelled
O5,u1,2024-02-12 08:00:00,5.00,P4,ok
"""
PRODUCTS = "prod,dept,aisle\nP1,PRODUCE,a1\nP2,MEAT,a2\nP3,DAIRY,a3\nP4,,a4\n"
BY_LINE = {2: "PRODUCE", 3: "MEAT", 4: "PRODUCE", 5: None, 8: None}


def csv_to_parquet(text: str, path, int_key: str | None = None):
    records = list(csv.DictReader(io.StringIO(text)))
    table = pa.table({k: [r[k] for r in records] for k in records[0]})
    if int_key:  # an integer key column, as a real product table often has
        i = table.column_names.index(int_key)
        table = table.set_column(i, int_key, pa.array([int(r[int_key]) for r in records], pa.int64()))
    pq.write_table(table, path)
    return path


def write(tmp_path, text: str, name: str, kind: str):
    if kind == "csv":
        (tmp_path / f"{name}.csv").write_text(text)
        return tmp_path / f"{name}.csv"
    return csv_to_parquet(text, tmp_path / f"{name}.parquet")


def load(path, lookup_path, *, columns=("dept",), **generic):
    lookups = {"product": {"input": str(lookup_path), "key": "prod", "columns": columns if isinstance(columns, dict) else list(columns)}}
    config = ReaderConfig(generic={"user_col": "cust", "include": {"status": ["ok"]}, "lookups": lookups, **generic})
    tx = load_transactions(str(path), "generic", config=config)
    for f in tx.report.files:
        assert f.rows_in == f.accepted + f.rejected + f.excluded, f.as_dict()
    return tx


def by_line(tx, header: int = 0) -> dict[int, object]:
    return {r["line"] + header: r["dept"] for r in tx.to_arrow().to_pylist()}


def test_each_line_gets_its_products_department_and_an_unknown_product_a_missing_one(tmp_path):
    tx = load(write(tmp_path, LINES, "l", "csv"), write(tmp_path, PRODUCTS, "p", "csv"))
    f = tx.report.files[0]
    assert (f.rows_in, f.accepted, f.rejected, f.excluded) == (7, 5, 1, 1)
    assert by_line(tx) == BY_LINE
    # P1, P2, P4 used; P3 only on a rejected and an excluded line: unused. P9 is unmatched.
    assert tx.report.lookups["product"] == {"input": str(tmp_path / "p.csv"), "keys": 4, "used_keys": 3,
                                            "unused_keys": 1, "unmatched_lines": 1}
    assert tx.report.as_dict()["lookups"]["product"]["unused_keys"] == 1


def test_orders_keep_the_set_of_their_lines_looked_up_departments(tmp_path):
    tx = load(write(tmp_path, LINES, "l", "csv"), write(tmp_path, PRODUCTS, "p", "csv"), order_col="order")
    assert by_line(tx) == {2: ["MEAT", "PRODUCE"], 4: ["PRODUCE"], 5: [], 8: []}


def test_a_mapping_renames_lookup_columns_and_several_columns_come_along(tmp_path):
    tx = load(write(tmp_path, LINES, "l", "csv"), write(tmp_path, PRODUCTS, "p", "csv"),
              columns={"department": "dept", "aisle": "aisle"})
    got = {r["line"]: (r["department"], r["aisle"]) for r in tx.to_arrow().to_pylist()}
    assert got == {2: ("PRODUCE", "a1"), 3: ("MEAT", "a2"), 4: ("PRODUCE", "a1"), 5: (None, None), 8: (None, "a4")}


@pytest.mark.parametrize("lines_kind, lookup_kind, order_col", list(itertools.product(
    ["csv", "parquet"], ["csv", "parquet"], [None, "order"])))
def test_csv_and_parquet_inputs_and_lookups_give_the_same_rows_and_report(tmp_path, lines_kind, lookup_kind,
                                                                            order_col):
    extra = {"order_col": order_col} if order_col else {}
    ref = load(write(tmp_path, LINES, "ref", "csv"), write(tmp_path, PRODUCTS, "refp", "csv"), **extra)
    tx = load(write(tmp_path, LINES, "l", lines_kind), write(tmp_path, PRODUCTS, "p", lookup_kind), **extra)
    header = 1 if lines_kind == "parquet" else 0
    assert by_line(tx, header) == by_line(ref)
    strip = {k: v for k, v in ref.report.lookups["product"].items() if k != "input"}
    assert {k: v for k, v in tx.report.lookups["product"].items() if k != "input"} == strip


def test_an_integer_key_in_parquet_matches_the_same_key_written_as_text(tmp_path):
    lines = "cust,ts,amount,pid\nu1,2024-01-05 10:00:00,1.00,7\nu2,2024-01-06 10:00:00,2.00,8\n"
    products = "pid,dept\n7,PRODUCE\n9,MEAT\n"
    (tmp_path / "p.csv").write_text(products)
    lookups = {"p": {"input": str(csv_to_parquet(products, tmp_path / "p.parquet", int_key="pid")),
                     "key": "pid", "columns": ["dept"]}}
    for src in (csv_to_parquet(lines, tmp_path / "l.parquet", int_key="pid"), tmp_path / "l.csv"):
        (tmp_path / "l.csv").write_text(lines)
        tx = load_transactions(str(src), "generic",
                               config=ReaderConfig(generic={"user_col": "cust", "lookups": lookups}))
        assert sorted((r["user_id"], r["dept"]) for r in tx.to_arrow().to_pylist()) == [("u1", "PRODUCE"), ("u2", None)]
        assert tx.report.lookups["p"]["unused_keys"] == 1 and tx.report.lookups["p"]["unmatched_lines"] == 1


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("products, error, line", [
    ("prod,dept\nP1,PRODUCE\nP2,MEAT\nP1,DAIRY\n", "DUPLICATE_KEY", 4),
    ("prod,dept\nP1,PRODUCE\n,MEAT\n", "NULL_KEY", 3),
    ("prod,dept\nP1,PRO\u200bDUCE\n", "INVALID_ATTRIBUTE", 2),
])
def test_a_bad_lookup_fails_the_load_naming_file_line_and_column(tmp_path, kind, products, error, line):
    lookup = write(tmp_path, products, "p", kind)
    with pytest.raises(InputFileError) as exc:
        load(write(tmp_path, LINES, "l", "csv"), lookup)
    header = 1 if kind == "parquet" else 0
    assert (exc.value.file, exc.value.line + header, exc.value.error_type) == (str(lookup), line, error)
    assert exc.value.column == ("dept" if error == "INVALID_ATTRIBUTE" else "prod")


def test_a_duplicated_lookup_key_is_one_line_and_exit_2_from_the_cli(tmp_path):
    (tmp_path / "l.csv").write_text(LINES)
    (tmp_path / "p.csv").write_text("prod,dept\nP1,PRODUCE\nP1,MEAT\n")
    (tmp_path / "c.yaml").write_text(f"reader:\n  generic:\n    user_col: cust\n    lookups:\n      product:\n"
                                     f"        input: {tmp_path / 'p.csv'}\n        key: prod\n        columns: [dept]\n")
    run = subprocess.run([sys.executable, "-m", "spendlab.cli", "validate", str(tmp_path / "l.csv"),
                          "--config", str(tmp_path / "c.yaml")], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (message,) = run.stderr.strip().splitlines()
    assert f"{tmp_path / 'p.csv'}, line 3, column 'prod'" in message and "DUPLICATE_KEY" in message


def test_a_lookup_without_a_declared_column_is_a_file_error(tmp_path):
    with pytest.raises(InputFileError, match="SCHEMA_MISSING_COLUMN"):
        load(write(tmp_path, LINES, "l", "csv"), write(tmp_path, PRODUCTS, "p", "csv"), columns=("brand",))


@pytest.mark.parametrize("generic, needle", [
    ({"attributes": {"dept": {"column": "x"}}, "lookups": {"p": {"input": "p.csv", "key": "k", "columns": ["dept"]}}},
     "declared twice"),
    ({"lookups": {"p": {"input": "p.csv", "key": "k", "columns": ["Dept"]}}}, "must be lower-case"),
    ({"lookups": {"p": {"input": "p.csv", "key": "k", "columns": []}}}, "at least one"),
    ({"lookups": {"p": {"input": "p.csv", "key": "k", "columns": {"amount": "a"}}}}, "must be lower-case"),
])
def test_bad_lookup_declarations_are_config_errors(generic, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config(ReaderConfig, {"generic": {"user_col": "cust", **generic}}, "t.yaml")


_prod = st.sampled_from(["P1", "P2", "P3", " P1", "", "P9"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), _prod), min_size=1, max_size=8),
       orders=st.booleans())
def test_csv_and_parquet_agree_and_match_a_dict_oracle_on_any_lines(tmp_path_factory, lines, orders):
    d = tmp_path_factory.mktemp("lk")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["order", "cust", "ts", "amount", "prod", "status"])
    for i, (o, p) in enumerate(lines):
        w.writerow([o, "u1", f"2024-01-{i + 1:02d} 10:00:00", "1.00", p, "ok"])
    products = {"P1": "PRODUCE", "P2": "MEAT", "P3": "DAIRY"}
    lookup = write(d, "prod,dept\n" + "".join(f"{k},{v}\n" for k, v in products.items()), "p", "csv")
    extra = {"order_col": "order"} if orders else {}
    a = load(write(d, out.getvalue(), "l", "csv"), lookup, **extra)
    b = load(write(d, out.getvalue(), "l", "parquet"), lookup, **extra)
    assert by_line(a) == by_line(b, header=1)
    looked = [products.get(p.strip()) for _, p in lines]
    if not orders:  # the oracle: a dict lookup per line
        assert by_line(a) == {i + 2: v for i, v in enumerate(looked)}
    used = {p.strip() for _, p in lines} & set(products)
    assert a.report.lookups["product"]["unused_keys"] == len(products) - len(used)
    assert a.report.lookups["product"]["unmatched_lines"] == sum(v is None for v in looked)
    assert b.report.lookups["product"]["unmatched_lines"] == sum(v is None for v in looked)


def test_validate_reports_the_lookup_counts_as_json_and_text(tmp_path):
    import json

    from typer.testing import CliRunner

    from spendlab.cli import app

    (tmp_path / "l.csv").write_text(LINES)
    (tmp_path / "p.csv").write_text(PRODUCTS)
    (tmp_path / "c.yaml").write_text(f"reader:\n  generic:\n    user_col: cust\n    include: {{status: [ok]}}\n"
                                     f"    lookups:\n      product:\n        input: {tmp_path / 'p.csv'}\n"
                                     f"        key: prod\n        columns: [dept]\n")
    args = ["validate", str(tmp_path / "l.csv"), "--config", str(tmp_path / "c.yaml")]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)["lookups"]["product"]
    assert (got["keys"], got["unused_keys"], got["unmatched_lines"]) == (4, 1, 1)
    text = CliRunner().invoke(app, args, terminal_width=200)
    assert "lookup product (p.csv): 4 keys; keys no line uses: 1; lines whose key it lacks (attributes missing): 1" \
        in " ".join(text.output.split())
