"""The ``spendlab describe`` job: load, compute, write the CSVs and ``report.html`` atomically.

:func:`run_describe` serves both the CLI (``out_dir`` given: everything written, per-user tables
streamed from DuckDB to CSV) and the Python API (``spendlab.describe``: ``out_dir`` may be None and
``collect=True`` returns the per-user tables as DataFrames too).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from spendlab.describe import tables as qt
from spendlab.describe.formats import MONEY_COLUMNS, format_frame, rounded_summary
from spendlab.describe.render import DescribeReport, build_report, render_html
from spendlab.io.atomic import atomic_path
from spendlab.io.csv_out import FORMULA_START, copy_csv, money_type_for
from spendlab.io.load import Transactions, connect

#: How ``describe`` writes its per-user tables.
TableFormat = Literal["csv", "parquet"]
#: name -> (SQL given net refunds and whether the CSV writer reads the compact stored types, row order).
BIG_TABLES = {
    "avg_transaction_value_per_user.csv": (lambda net, stored: qt.per_user_sql(net_refunds=net), "user_id"),
    "monthly_spend_per_user.csv": (lambda net, stored: qt.monthly_sql(net_refunds=net, stored_types=stored),
                                   "user_id, month"),
    "days_spent_per_week.csv": (lambda net, stored: qt.days_per_week_sql(stored_types=stored), "user_id, week_start"),
    "insights/mom_change_per_user.csv": (lambda net, stored: qt.mom_change_sql(stored_types=stored), "user_id, month"),
}

#: Per-user CSVs read by a plain ``SELECT`` from a table :func:`spendlab.describe.tables.prepare` stores
#: sorted (:data:`spendlab.describe.tables.STORED_ORDER`: user id, then the month as a date, whose order
#: is that of the written ``YYYY-MM``); written in that order when the ids sort as written.
STORED_SORTED = frozenset({"monthly_spend_per_user.csv", "insights/mom_change_per_user.csv"})


def table_key(name: str) -> str:
    """``insights/top_spenders.csv`` -> ``top_spenders``: the name a table has in the Python API."""
    return Path(name).stem


# long: the job's one atomic output directory: load, tables, CSVs, figures and report inside one swap
def run_describe(
    tx: Transactions,
    out_dir: Path | None,
    *,
    country: str = "US",
    top_n: int = 20,
    net_refunds: bool = False,
    currency: str | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    collect: bool = False,
    table_format: TableFormat = "csv",
) -> dict[str, object]:
    """Describe ``tx``: write the outputs to ``out_dir`` atomically (when given) and return them.

    Parameters
    ----------
    tx
        Loaded transactions (any format; Parquet inputs stay in DuckDB).
    out_dir
        Output directory, replaced as a whole on success and untouched on failure; None writes
        nothing (the Python API without ``out=``).
    country, top_n, net_refunds, currency
        See :func:`build_report` and :func:`render_html`.
    memory_limit, threads
        DuckDB session limits (large inputs spill to a temporary directory).
    collect
        Also return the per-user tables (one row per user, user-month, user-week) as DataFrames;
        off for the CLI, where they can hold tens of millions of rows and go to CSV straight from DuckDB.
    table_format
        ``csv`` (default, the original outputs) or ``parquet``: the per-user tables as Parquet, written
        straight from DuckDB with their full precision and types (``.parquet`` instead of ``.csv``); the
        small tables, figures and report are the same either way.

    Returns
    -------
    dict
        ``summary`` (as written to ``summary.json``), ``out_dir``, ``files`` (relative path -> rows
        written for CSVs, bytes for the rest; empty without ``out_dir``), ``report``
        (:class:`DescribeReport`), ``html`` and ``tables`` (name -> DataFrame, unformatted).
    """
    con = connect(threads=threads, memory_limit=memory_limit)
    files: dict[str, int] = {}
    tables: dict[str, pd.DataFrame] = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(Path(out_dir))) if out_dir is not None else None
        if tmp is not None:  # DuckDB creates its spill folder one level deep only: its parent must exist
            tmp.mkdir(parents=True, exist_ok=True)
        spill = (tmp / ".duckdb_tmp") if tmp is not None else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spendlab-describe-")))
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")  # library code keeps the terminal quiet
        tx.register(con)
        report = build_report(con, tx, country=country, top_n=top_n, net_refunds=net_refunds, currency=currency)
        html = render_html(report, top_n=top_n, currency=currency)
        small = {"monthly_overview.csv": report.overview,
                 "days_spent_per_week_distribution.csv": report.days_distribution}
        for insight in report.insights:
            small.update({f"insights/{k}.csv": v for k, v in insight.tables.items()})
        tables.update({table_key(name): df for name, df in small.items()})
        if collect:
            for name, (sql_fn, order) in BIG_TABLES.items():
                tables[table_key(name)] = con.execute(f"SELECT * FROM ({sql_fn(net_refunds, False)}) ORDER BY {order}").df()
        summary = rounded_summary(report.summary)
        if tmp is not None:
            files = _write(con, report, small, summary, html, tmp, net_refunds=net_refunds, table_format=table_format)
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return {"out_dir": None if out_dir is None else str(out_dir), "summary": summary,
            "files": dict(sorted(files.items())), "report": report, "html": html,
            "tables": dict(sorted(tables.items()))}


def _write(con: duckdb.DuckDBPyConnection, report: DescribeReport, small: dict[str, pd.DataFrame],
           summary: dict[str, object], html: str, tmp: Path, *, net_refunds: bool,
           table_format: TableFormat = "csv") -> dict[str, int]:
    """Every output file into ``tmp`` (the atomic directory); returns name -> rows or bytes."""
    files: dict[str, int] = {}
    (tmp / "insights").mkdir(parents=True, exist_ok=True)
    (tmp / "figures").mkdir(exist_ok=True)
    raw_order = table_format == "csv" and ids_sort_as_written(con)
    safe_text = plain_text_columns(report.summary, ids_plain=raw_order)
    money_type = money_type_for(money_bound(report.summary))
    for name, (sql_fn, order) in BIG_TABLES.items():
        if table_format == "parquet":
            name = str(Path(name).with_suffix(".parquet"))
            files[name] = copy_parquet(con, sql_fn(net_refunds, False), tmp / name, order)
            continue
        if raw_order and name in STORED_SORTED:  # the table is stored in this order: no sort at all
            order = None
        elif raw_order:  # sort on the source columns, not on the formatted ones: same rows, a cheaper sort
            order = ", ".join(f"src.{col.strip()}" for col in order.split(","))
        files[name] = copy_csv(con, sql_fn(net_refunds, True), tmp / name, order, money_columns=MONEY_COLUMNS,
                               round6_columns=frozenset({"pct_change"}), safe_text=safe_text, money_type=money_type)
    for insight in report.insights:
        (tmp / "figures" / f"{insight.key}.png").write_bytes(insight.figure)
        files[f"figures/{insight.key}.png"] = len(insight.figure)
    (tmp / "figures" / "days_per_week.png").write_bytes(report.days_figure)
    for name, df in small.items():
        write_frame_csv(df, tmp / name)
        files[name] = len(df)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (tmp / "report.html").write_text(html, encoding="utf-8")
    files["report.html"] = len(html.encode())
    return files


def ids_sort_as_written(con: duckdb.DuckDBPyConnection) -> bool:
    """Tell whether sorting the per-user tables on the stored ids gives the order of the written ids.

    The CSV writer quotes an id that a spreadsheet would run as a formula (:mod:`spendlab.io.csv_out`),
    which can move it in the sort order; when no id starts like a formula (one scan of the per-user
    table), the written id equals the stored one and the cheaper sort on the stored column is exact.
    The other sort columns (months, week starts) are never rewritten.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection on which the describe tables were prepared.

    Returns
    -------
    bool
        True when no user id starts with a formula character.
    """
    n = con.execute(f"SELECT count(*) FROM {qt.USER} "
                    f"WHERE left(CAST(user_id AS VARCHAR), 1) IN {FORMULA_START}").fetchall()[0][0]
    return int(n) == 0


def plain_text_columns(summary: dict[str, object], *, ids_plain: bool) -> frozenset[str]:
    """Name the text columns of the per-user tables that can never start like a spreadsheet formula.

    ``direction`` holds fixed words; ``month`` (``YYYY-MM``) starts with a digit unless the data has
    dates before year 0; ``user_id`` only when :func:`ids_sort_as_written` found no id starting like one.
    The CSV writer skips the per-cell check on these columns: the check would leave them unchanged.

    Parameters
    ----------
    summary : dict
        The load's summary (:func:`spendlab.describe.tables.summary_stats`), for the period's start.
    ids_plain : bool
        Whether no user id starts with a formula character.

    Returns
    -------
    frozenset of str
        The columns written without the check.
    """
    start = summary.get("period_start")
    safe = {"direction"}
    if isinstance(start, str) and start[:1].isdigit():
        safe.add("month")
    if ids_plain:
        safe.add("user_id")
    return frozenset(safe)


def money_bound(summary: dict[str, object]) -> float | None:
    """Bound every money value of the per-user tables: gross spend plus refunds, the sum of ``|amount|``.

    Any user's or user-month's spend, refunds, net spend, average or change is at most this in
    magnitude. None when the summary lacks the totals.

    Parameters
    ----------
    summary : dict
        The load's summary in full precision.

    Returns
    -------
    float or None
        ``total_spend + refund_amount``.
    """
    spend, refunds = summary.get("total_spend"), summary.get("refund_amount")
    if not isinstance(spend, (int, float)) or not isinstance(refunds, (int, float)):
        return None
    return abs(float(spend)) + abs(float(refunds))


def copy_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path, order_by: str) -> int:
    """Write a (possibly huge) query result to Parquet from DuckDB, in ``order_by`` order; return the row count.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection the query runs on.
    sql : str
        The query.
    path : pathlib.Path
        The Parquet file (inside the job's atomic output directory).
    order_by : str
        The row order (the same as the CSV's).

    Returns
    -------
    int
        Rows written.
    """
    literal = str(path).replace("'", "''")
    rows = con.execute(f"COPY (SELECT * FROM ({sql}) ORDER BY {order_by}) TO '{literal}' "
                       "(FORMAT parquet, COMPRESSION zstd)").fetchall()
    return int(rows[0][0])


def write_frame_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a small table with the report's formatting rules."""
    format_frame(df).to_csv(path, index=False, lineterminator="\n")
