"""``spendlab describe``: the first questions asked of a spend export, answered reproducibly.

:func:`build_report` computes everything small (summary, insight tables, takeaways, figures) from a
DuckDB connection and returns it without writing; :func:`run_describe` is the job: it writes the
per-user CSVs straight from DuckDB (they can hold tens of millions of rows), the insight CSVs, the
figures and the self-contained ``report.html`` into a temporary directory that is swapped into place.

Money is aggregated in full double precision and rounded to cents only when written. User ids are
data: CSV cells that a spreadsheet would run as a formula are prefixed with ``'``
(:func:`spendlab.io.rejects.neutralise_formula`), and the HTML template autoescapes everything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pandas as pd

from spendlab.calendar import calendar_events
from spendlab.describe import figures as figs
from spendlab.describe import insights as ins
from spendlab.describe import tables as qt
from spendlab.errors import NoDataError
from spendlab.io.load import Transactions
from spendlab.io.rejects import neutralise_formula

#: Columns written rounded to cents, wherever they appear.
MONEY_COLUMNS = frozenset({
    "spend", "total_spend", "avg_transaction_value", "refunds", "net_spend", "prev_spend", "change",
    "total_increase", "total_decrease", "net_change", "spend_per_active_user", "mean_spend_per_active_user",
    "median_spend_per_active_user", "amount",
})


@dataclass
class Insight:
    """One insight: a figure, its computed takeaway and the tables written for it."""

    key: str
    title: str
    takeaway: str
    figure: bytes
    tables: dict[str, pd.DataFrame]
    preview: str  # which table the HTML shows
    note: str = ""


@dataclass
class DescribeReport:
    """Everything :func:`run_describe` writes except the per-user tables, as in-memory objects."""

    summary: dict[str, object]
    overview: pd.DataFrame
    user_distribution: dict[str, float | None]
    per_user_head: pd.DataFrame
    monthly_head: pd.DataFrame
    days_distribution: pd.DataFrame
    days_head: pd.DataFrame
    days_figure: bytes
    insights: list[Insight] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Pure part: tables, takeaways, figures
# ---------------------------------------------------------------------------------------------


def build_report(
    con: duckdb.DuckDBPyConnection,
    tx: Transactions,
    *,
    country: str = "US",
    top_n: int = 20,
    net_refunds: bool = False,
) -> DescribeReport:
    """Compute the summary, the question sections and every insight over the ``transactions`` view.

    Parameters
    ----------
    con
        DuckDB connection on which ``tx.register(con)`` has been called (the intermediate tables of
        :func:`spendlab.describe.tables.prepare` are built here).
    tx
        The load (for its name and reject counts).
    country
        Holiday calendar for the daily-spend markers (``holidays`` country code).
    top_n
        Rows shown per table in the HTML, and the size of the top/bottom spender and mover lists.
    net_refunds
        Add ``net_spend`` (spend minus refunds) beside gross figures (``reader.refunds: net``).
    """
    qt.prepare(con)
    summary = qt.summary_stats(con, tx, net_refunds=net_refunds)
    if summary["n_transactions"] == 0:
        raise NoDataError(f"{tx.name}: no accepted transactions to describe "
                          f"({tx.report.rejected:,} rows rejected of {tx.report.rows_in:,})")
    dist = qt.days_per_week_distribution(con)
    report = DescribeReport(
        summary=summary,
        overview=qt.monthly_overview(con, net_refunds=net_refunds),
        user_distribution=qt.per_user_distribution(con),
        per_user_head=qt.head_rows(con, qt.per_user_sql(net_refunds=net_refunds), "total_spend DESC, user_id", top_n),
        monthly_head=qt.head_rows(con, qt.monthly_sql(net_refunds=net_refunds), "spend DESC, user_id, month", top_n),
        days_distribution=dist,
        days_head=qt.head_rows(con, qt.days_per_week_sql(),
                               "days_with_spend DESC, week_start DESC, user_id", top_n),
        days_figure=figs.days_per_week_figure(dist),
    )
    report.insights = build_insights(con, country=country, top_n=top_n,
                                     median_user_spend=report.user_distribution["spend_median"])
    return report


def build_insights(
    con: duckdb.DuckDBPyConnection,
    *,
    country: str = "US",
    top_n: int = 20,
    median_user_spend: float | None = None,
) -> list[Insight]:
    """Every insight of the report, in reading order (``prepare`` must have run on ``con``)."""

    bounds = qt.period_bounds(con)
    assert bounds is not None
    events = calendar_events(bounds[0], bounds[1], country=country)
    daily = ins.daily_spend_table(con, events)
    grid = ins.weekday_hour_table(con)
    hist = ins.transaction_size_table(con)
    quantiles = ins.transaction_size_quantiles(con)
    conc = ins.concentration_table(con)
    curve, gini = ins.lorenz_table(con)
    top = ins.spenders_table(con, top_n, top=True)
    bottom = ins.spenders_table(con, top_n, top=False)
    if median_user_spend is None:
        median_user_spend = qt.per_user_distribution(con)["spend_median"]
    by_month = ins.mom_by_month_table(con)
    last_month = str(by_month["month"].iloc[-1]) if len(by_month) else None
    movers = ins.mom_movers_table(con, last_month, top_n) if last_month else pd.DataFrame(
        columns=["user_id", "month", "prev_spend", "spend", "change", "pct_change", "direction"])
    nr_week = ins.new_returning_table(con, "week")
    nr_month = ins.new_returning_table(con, "month")
    cohorts = ins.cohort_retention_table(con)
    weekly = ins.active_users_weekly_table(con)
    quant_table = pd.DataFrame({"quantile": list(quantiles), "amount": list(quantiles.values())})
    return [
        Insight("daily_spend", "Daily spend, with holidays and retail events", ins.daily_spend_takeaway(daily),
                figs.daily_spend_figure(daily), {"daily_spend": daily}, "daily_spend",
                "Table: the marked days (or, without any, the days with the most spend). Markers: "
                + ", ".join(figs._EVENT_COLOURS) + f" ({country})."),
        Insight("weekday_hour", "When people buy: weekday x hour (UTC)", ins.weekday_hour_takeaway(grid),
                figs.weekday_hour_figure(grid), {"weekday_hour": grid}, "weekday_hour",
                "Table: the busiest weekday-hour cells with any transaction."),
        Insight("transaction_size", "Transaction size distribution (log scale)",
                ins.transaction_size_takeaway(quantiles),
                figs.transaction_size_figure(hist),
                {"transaction_size": hist, "transaction_size_quantiles": quant_table}, "transaction_size_quantiles"),
        Insight("concentration", "Spend concentration", ins.concentration_takeaway(conc, gini),
                figs.lorenz_figure(curve, gini), {"spend_concentration": conc, "lorenz_curve": curve},
                "spend_concentration", "Users with no gross spend (only zero amounts or refunds) count as zero."),
        Insight("spenders", "Top and bottom spenders", ins.spenders_takeaway(top, bottom, median_user_spend),
                figs.spenders_figure(top), {"top_spenders": top, "bottom_spenders": bottom}, "top_spenders",
                "Bottom spenders: users with the lowest positive gross spend (insights/bottom_spenders.csv)."),
        Insight("mom_change", "Month-over-month change per user", ins.mom_takeaway(by_month, movers),
                figs.mom_figure(by_month), {"mom_change_by_month": by_month, "mom_top_movers": movers},
                "mom_top_movers",
                f"Table: the biggest increases and decreases of {last_month or '-'}; every user and month is in "
                "insights/mom_change_per_user.csv."),
        Insight("new_returning", "New vs returning users, and cohort retention",
                ins.new_returning_takeaway(nr_month),
                figs.new_returning_figure(nr_week),
                {"new_returning_weekly": nr_week, "new_returning_monthly": nr_month},
                "new_returning_monthly",
                "Figure: weekly; table: the last months (all in insights/new_returning_*.csv)."),
        Insight("cohort_retention", "Acquisition-cohort retention", ins.retention_takeaway(cohorts),
                figs.retention_figure(cohorts), {"cohort_retention": cohorts}, "",
                "Rows: month of first spend; columns: months since (insights/cohort_retention.csv)."),
        Insight("active_users", "Active users per week", ins.active_users_takeaway(weekly, bounds[1]),
                figs.active_users_figure(weekly), {"active_users_weekly": weekly}, "active_users_weekly"),
    ]


# ---------------------------------------------------------------------------------------------
# Formatting for output
# ---------------------------------------------------------------------------------------------


def cents(value: float) -> Decimal:
    """Round money to cents, ties away from zero, as DuckDB rounds the exact decimal sums.

    Sums arrive from DuckDB as exact decimals converted to float; ``repr`` gives back their decimal
    digits, so ``1.005`` becomes ``1.01`` here as it does in the DuckDB-written CSVs.
    """
    return Decimal(repr(float(value))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _fmt_cell(col: str, value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if col in MONEY_COLUMNS:
        return str(cents(float(value)))
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.2f}"
    return str(value)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Strings as they are written: money to cents, dates ISO, formula-like text neutralised."""
    out = pd.DataFrame({col: [neutralise_formula(_fmt_cell(col, v)) for v in df[col]] for col in df.columns},
                       columns=list(df.columns))
    return out


def _sorted_preview(key: str, df: pd.DataFrame, n: int) -> pd.DataFrame:
    if key == "daily_spend":
        marked = df[df["events"] != ""]
        if len(marked):
            return marked.head(n)
        return df.sort_values(["spend", "date"], ascending=[False, True]).head(n)
    if key == "weekday_hour":
        busy = df[df["n_transactions"] > 0]
        return busy.sort_values(["n_transactions", "weekday", "hour"], ascending=[False, True, True]).head(n)
    if key == "mom_top_movers":
        up, down = df[df["change"] > 0], df[df["change"] < 0].sort_values("change")
        return pd.concat([up.head((n + 1) // 2), down.head(n // 2)])
    if key in ("new_returning_monthly", "active_users_weekly"):
        return df.tail(n)
    return df.head(n)


def _html_table(df: pd.DataFrame, n: int, name: str | None = None) -> dict[str, object]:
    shown = format_frame(df.head(n))
    note = ""
    if len(df) > n:
        note = f"showing {n} of {len(df):,} rows" + (f"; full table in {name}" if name else "")
    return {"columns": list(shown.columns), "rows": shown.values.tolist(), "note": note}


def rounded_summary(summary: dict[str, object]) -> dict[str, object]:
    """``summary.json`` content: money rounded to cents, everything else as computed."""
    money = {"total_spend", "avg_transaction_value", "refund_amount", "net_spend"}
    return {k: (float(cents(v)) if k in money and isinstance(v, float) else v) for k, v in summary.items()}


def render_html(report: DescribeReport, *, top_n: int = 20) -> str:
    """The self-contained report page (figures as data URIs, no external resources)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("spendlab.describe", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    s = report.summary
    insights = []
    for i in report.insights:
        table = None
        if i.preview:
            preview = _sorted_preview(i.preview, i.tables[i.preview], top_n)
            table = _html_table(preview, top_n)
            full = len(i.tables[i.preview])
            if len(preview) < full:
                table["note"] = f"showing {len(preview)} of {full:,} rows; full table in insights/{i.preview}.csv"
        insights.append({"key": i.key, "title": i.title, "takeaway": i.takeaway, "figure": figs.data_uri(i.figure),
                         "table": table, "note": i.note})
    atv = s["avg_transaction_value"]
    rows = [("transactions (accepted rows)", f"{s['n_transactions']:,}"),
            ("spend transactions (amount > 0)", f"{s['n_spend_transactions']:,}"),
            ("users", f"{s['n_users']:,}"), ("gross spend", f"{s['total_spend']:,.2f}"),
            ("average transaction value", "-" if atv is None else f"{atv:,.2f}"),
            ("refunds", f"{s['n_refunds']:,} ({s['refund_amount']:,.2f})"),
            ("zero-amount rows", f"{s['n_zero_amount']:,}")]
    if "net_spend" in s:
        rows.append(("net spend (gross - refunds)", f"{s['net_spend']:,.2f}"))
    rows += [("period", f"{s['period_start']} .. {s['period_end']}"),
             ("rows read / accepted / rejected", f"{s['rows_in']:,} / {s['rows_accepted']:,} / {s['rows_rejected']:,}")]
    rejected = ", ".join(f"{k}: {v:,}" for k, v in s["rejected_by_type"].items()) or "none"
    d = report.user_distribution
    return env.get_template("describe.html").render(
        title=f"spendlab describe: {s['input']}",
        summary_rows=rows, rejected=rejected, dist=d,
        overview=_html_table(report.overview, 36, "monthly_overview.csv"),
        per_user=_html_table(report.per_user_head, top_n), monthly=_html_table(report.monthly_head, top_n),
        days_dist=_html_table(report.days_distribution, 7), days_head=_html_table(report.days_head, top_n),
        days_figure=figs.data_uri(report.days_figure), insights=insights, top_n=top_n,
        atv=s["avg_transaction_value"], net=("net_spend" in s),
    )


# ---------------------------------------------------------------------------------------------
# Writing (the job)
# ---------------------------------------------------------------------------------------------


