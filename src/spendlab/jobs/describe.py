"""The ``spendlab describe`` job: load, compute, write the CSVs and ``report.html`` atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from spendlab.describe import tables as qt
from spendlab.describe.render import MONEY_COLUMNS, build_report, format_frame, render_html, rounded_summary
from spendlab.io.atomic import atomic_path
from spendlab.io.csv_out import copy_csv
from spendlab.io.load import Transactions, connect

BIG_TABLES = {
    "avg_transaction_value_per_user.csv": (lambda net: qt.per_user_sql(net_refunds=net), "user_id"),
    "monthly_spend_per_user.csv": (lambda net: qt.monthly_sql(net_refunds=net), "user_id, month"),
    "days_spent_per_week.csv": (lambda net: qt.days_per_week_sql(), "user_id, week_start"),
    "insights/mom_change_per_user.csv": (lambda net: f"SELECT * FROM {qt.MOM}", "user_id, month"),
}


def run_describe(
    tx: Transactions,
    out_dir: Path,
    *,
    country: str = "US",
    top_n: int = 20,
    net_refunds: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> dict[str, object]:
    """Write the describe outputs of ``tx`` to ``out_dir`` atomically and return their paths and the summary.

    Parameters
    ----------
    tx
        Loaded transactions (any format; Parquet inputs stay in DuckDB).
    out_dir
        Output directory; replaced as a whole on success, untouched on failure.
    country, top_n, net_refunds
        See :func:`build_report`.
    memory_limit, threads
        DuckDB session limits (large inputs spill to a temporary directory inside the output).

    Returns
    -------
    dict
        ``summary`` (as written to ``summary.json``), ``out_dir``, ``files`` (relative path -> rows
        written for CSVs, bytes for the rest).
    """
    out_dir = Path(out_dir)
    con = connect(threads=threads, memory_limit=memory_limit)
    files: dict[str, int] = {}
    with atomic_path(out_dir) as tmp:
        (tmp / "insights").mkdir(parents=True)
        (tmp / "figures").mkdir()
        spill = tmp / ".duckdb_tmp"
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")  # library code keeps the terminal quiet
        tx.register(con)
        report = build_report(con, tx, country=country, top_n=top_n, net_refunds=net_refunds)
        for name, (sql_fn, order) in BIG_TABLES.items():
            files[name] = copy_csv(con, sql_fn(net_refunds), tmp / name, order, money_columns=MONEY_COLUMNS,
                                   round6_columns=frozenset({"pct_change"}))
        small = {"monthly_overview.csv": report.overview,
                 "days_spent_per_week_distribution.csv": report.days_distribution}
        for insight in report.insights:
            small.update({f"insights/{k}.csv": v for k, v in insight.tables.items()})
            (tmp / "figures" / f"{insight.key}.png").write_bytes(insight.figure)
            files[f"figures/{insight.key}.png"] = len(insight.figure)
        (tmp / "figures" / "days_per_week.png").write_bytes(report.days_figure)
        for name, df in small.items():
            write_frame_csv(df, tmp / name)
            files[name] = len(df)
        summary = rounded_summary(report.summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        html = render_html(report, top_n=top_n)
        (tmp / "report.html").write_text(html, encoding="utf-8")
        files["report.html"] = len(html.encode())
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return {"out_dir": str(out_dir), "summary": summary, "files": dict(sorted(files.items()))}


def write_frame_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a small table with the report's formatting rules."""
    format_frame(df).to_csv(path, index=False, lineterminator="\n")
