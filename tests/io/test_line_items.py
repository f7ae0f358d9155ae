"""Issue 17 item 1: readers for line-item exports (orders, quantity x unit price, include/exclude)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.cli import reader_config
from spendlab.config import ReaderConfig, parse_config
from spendlab.errors import ConfigError
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.jobs.describe import run_describe

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC

#: Worked by hand. Orders: A1 = 2 x 5.00 + 1 x 2.50 = 12.50 (u1, Jan); A2 = 3 x 5.00 = 15.00 (u2, Jan);
#: A3 cancelled (excluded); A4 = 1 x 5.00 + 4 x 0.75 = 8.00 (u1, Feb); A5 = 2 x 2.50 = 5.00 (u2, Feb; its
#: refunded line is excluded). 4 orders, 40.50 in all, average order value 10.125;
#: monthly spend Jan 27.50 (u1 12.50, u2 15.00), Feb 13.00 (u1 8.00, u2 5.00).
LINES = """order_id,customer,created,sku,qty,unit_price,status
A1,u1,2024-01-05 10:00:00,p1,2,5.00,Completed
A1,u1,2024-01-05 10:00:00,p2,1,2.50,Completed
A2,u2,2024-01-20 09:00:00,p1,3,5.00,Completed
A3,u1,2024-02-02 12:00:00,p3,1,7.25,Cancelled
A4,u1,2024-02-10 08:00:00,p1,1,5.00,Completed
A4,u1,2024-02-10 08:00:00,p4,4,0.75,Completed
A5,u2,2024-02-28 23:00:00,p2,2,2.50,Completed
A5,u2,2024-02-28 23:00:00,p5,1,1.99,Refunded
"""
ORDERS = """user_id,ts,amount
u1,2024-01-05 10:00:00,12.50
u2,2024-01-20 09:00:00,15.00
u1,2024-02-10 08:00:00,8.00
u2,2024-02-28 23:00:00,5.00
"""
def load(path, fmt: str = "generic", **config):
    """``load_transactions`` checking ``rows_in = accepted + rejected + excluded`` for each file."""
    tx = load_transactions(str(path), fmt, config=ReaderConfig(**config))
    for f in tx.report.files:
        assert f.rows_in == f.accepted + f.rejected + f.excluded, f.as_dict()
    return tx


MAPPING = {"user_col": "customer", "ts_col": "created", "order_col": "order_id", "quantity_col": "qty",
           "unit_price_col": "unit_price", "include": {"status": ["Completed"]}}


def test_line_items_become_the_hand_computed_orders(write_file):
    tx = load(write_file("lines.csv", LINES), "generic", generic=MAPPING)
    f = tx.report.files[0]
    assert (f.rows_in, f.accepted, f.rejected, f.excluded) == (8, 6, 0, 2)
    assert dict(f.exclusions) == {"status": 2}
    df = tx.to_pandas()
    assert list(zip(df["user_id"], df["ts"], df["amount"], df["line"], strict=True)) == [
        ("u1", dt.datetime(2024, 1, 5, 10, tzinfo=UTC), 12.5, 2),
        ("u2", dt.datetime(2024, 1, 20, 9, tzinfo=UTC), 15.0, 4),
        ("u1", dt.datetime(2024, 2, 10, 8, tzinfo=UTC), 8.0, 6),
        ("u2", dt.datetime(2024, 2, 28, 23, tzinfo=UTC), 5.0, 8),
    ]
    assert df["amount"].mean() == 10.125
    assert tx.report.as_dict()["excluded"] == 2


def test_line_items_and_one_row_per_order_give_identical_describe_outputs(write_file, tmp_path):
    by_line = load(write_file("lines.csv", LINES), "generic", generic=MAPPING)
    by_order = load(write_file("orders.csv", ORDERS), "generic")
    outputs = {}
    for name, tx in (("lines", by_line), ("orders", by_order)):
        result = run_describe(tx, tmp_path / name, country="US", top_n=5)
        out = tmp_path / name
        # what differs is about the load, not the data: the input's name, line counts, the extra sku column
        summary = {k: v for k, v in result["summary"].items()
                   if not k.startswith("rows_") and k not in ("input", "warnings_by_type")}
        tables = {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.csv"))}
        outputs[name] = (summary, tables)
    assert outputs["lines"] == outputs["orders"]
    summary, tables = outputs["lines"]
    assert summary["n_transactions"] == 4 and summary["total_spend"] == 40.5
    assert summary["avg_transaction_value"] == 10.13  # 40.50 / 4 = 10.125, rounded to cents in summary.json
    monthly = tables["monthly_spend_per_user.csv"].splitlines()
    assert monthly[0].startswith("user_id,month") and len(monthly) == 5
    spend = {tuple(line.split(",")[:2]): float(line.split(",")[3]) for line in monthly[1:]}  # user, month -> spend
    assert spend == {("u1", "2024-01"): 12.5, ("u1", "2024-02"): 8.0, ("u2", "2024-01"): 15.0, ("u2", "2024-02"): 5.0}
    assert json.loads((tmp_path / "lines" / "summary.json").read_text())["n_transactions"] == 4


def test_conflicting_and_bad_lines_are_rejected_and_conservation_counts_exclusions(write_file):
    text = LINES + "A2,u3,2024-01-20 09:00:00,p9,1,1.00,Completed\nA6,u3,2024-02-01 00:00:00,p1,x,5.00,Completed\n" \
                   ",u3,2024-02-01 00:00:00,p1,1,5.00,Completed\nA7,u3,2024-02-01 00:00:00,p1,0.5,0.99,Completed\n"
    tx = load(write_file("lines.csv", text), "generic", generic=MAPPING)
    f = tx.report.files[0]
    assert f.rows_in == f.accepted + f.rejected + f.excluded == 12
    assert sorted((r.line, r.error_type, r.column) for r in tx.report.rejects) == [
        (10, "ORDER_CONFLICT", "order_id"), (11, "AMOUNT_FORMAT", "qty"), (12, "NULL_KEY", "order_id"),
        (13, "SUB_CENT", "qty")]
    assert len(tx.to_pandas()) == 4


def test_exclude_rules_and_an_amount_column_with_orders(write_file):
    text = "order,user,ts,amount,status\n1,u1,2024-03-01 00:00:00,3.10,ok\n1,u1,2024-03-01 00:05:00,0.20,ok\n" \
           "2,u1,2024-03-02 00:00:00,9.99,test\n"
    tx = load(write_file("o.csv", text), "generic",
              generic={"user_col": "user", "order_col": "order", "exclude": {"status": ["test"]}})
    assert tx.to_pandas()["amount"].tolist() == [3.3]  # exact sum, not 3.3000000000000003
    assert tx.report.files[0].exclusions == {"status": 1}


@pytest.mark.parametrize(
    ("generic", "message"),
    [
        ({"quantity_col": "q"}, "both quantity_col and unit_price_col"),
        ({"amount_col": "a", "quantity_col": "q", "unit_price_col": "p"}, "not both"),
        ({"order_col": "user_id"}, "four different columns"),
        ({"include": {"s": ["a"]}, "exclude": {"s": ["b"]}}, "in both include and exclude"),
        ({"include": {"s": []}}, "needs at least one value"),
        ({"include": {"s; DROP": ["a"]}}, "is not allowed"),
        ({"orders_col": "o"}, "allowed keys: amount_col, attributes, exclude, include, lookups, order_col, quantity_col, spend_is, "
                              "ts_col, ts_format, ts_origin, ts_unit, unit_price_col, user_col"),
    ],
)
def test_line_item_config_errors_are_one_line_and_list_the_allowed_keys(generic, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(ReaderConfig, {"generic": generic}, "cfg.yaml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


CON = connect()
LINE_PARITY = settings(max_examples=100, deadline=None, derandomize=True,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FIELDS = {
    "order_id": ["A1", "A2", "A3", " A1 ", "", "7"],
    "customer": ["u1", "u2", " u1", "", "u\x00"],
    "created": ["2024-01-05 10:00:00", "2024-01-05T10:00:00+01:00", "2024-02-30 00:00:00", "", "1969-01-01"],
    "qty": ["1", "2", "0.5", "x", "", "1_0", "３", "-1", "1e9", "1e10"],
    "unit_price": ["5.00", "0.99", "2.50", "", "1e400", "-1.00", "0.001", "9999999.99"],
    "status": ["Completed", "Cancelled", " Completed", "", "completed"],
}


@LINE_PARITY
@given(st.lists(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in FIELDS.items()}), min_size=1, max_size=8),
       st.sampled_from([{"include": {"status": ["Completed"]}}, {"exclude": {"status": ["Cancelled", ""]}}, {}]),
       st.booleans(), st.sampled_from(["reject", "keep", "round"]))
def test_line_items_read_the_same_from_csv_and_parquet(lines, rules, orders, sub_cent) -> None:
    """Differential: a line-item table as CSV and as Parquet (string columns) gives the same orders,
    rejects (row, type, column) and exclusions."""
    mapping = {"user_col": "customer", "ts_col": "created", "quantity_col": "qty", "unit_price_col": "unit_price",
               **({"order_col": "order_id"} if orders else {}), **rules}
    config = ReaderConfig(generic=mapping, sub_cent=sub_cent)
    with tempfile.TemporaryDirectory() as tmp:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
        (Path(tmp) / "l.csv").write_text(buf.getvalue(), encoding="utf-8")
        pq.write_table(pa.table({k: pa.array([row[k] for row in lines], pa.string()) for k in FIELDS}),
                       Path(tmp) / "l.parquet")
        outcomes = []
        for name, first in (("l.csv", 2), ("l.parquet", 1)):
            tx = load_transactions(str(Path(tmp) / name), "generic", config=config, con=CON)
            f = tx.report.files[0]
            assert f.rows_in == f.accepted + f.rejected + f.excluded == len(lines)
            tx.register(CON, "lines")  # one connection for every example: connecting costs more than reading
            rows = sorted((line - first, u, ts, amount) for u, ts, amount, line in
                          CON.execute("SELECT user_id, ts, amount, line FROM lines").fetchall())
            rejects = sorted((r.line - first, r.error_type, r.column) for r in tx.report.rejects)
            outcomes.append((rows, rejects, f.excluded, dict(f.exclusions)))
        assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("name", ["plain-csv.yaml", "line-items.yaml", "parquet-export.yaml", "grocery-panel.yaml"])
def test_example_reader_configs_validate(name):
    cfg = reader_config(ROOT / "configs" / "readers" / name)
    assert cfg.generic.user_col


def test_the_line_item_example_config_reads_the_hand_built_export(write_file):
    cfg = reader_config(ROOT / "configs" / "readers" / "line-items.yaml")
    tx = load_transactions(str(write_file("lines.csv", LINES)), "generic", config=cfg)
    assert len(tx.to_pandas()) == 4 and tx.report.excluded == 2
