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

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from spendlab.calendar import calendar_events
from spendlab.describe import figures as figs
from spendlab.describe import insights as ins
from spendlab.describe import tables as qt
from spendlab.describe.formats import LABELS, SHARE_COLUMNS, check_currency, display_cell, money_formatter
from spendlab.errors import NoDataError
from spendlab.io.load import Transactions
from spendlab.io.rejects import neutralise_formula


@dataclass
class Insight:
    """One insight: a figure, its computed takeaway and the tables written for it."""

    key: str
    title: str
    takeaway: str
    figure: bytes
    tables: dict[str, pd.DataFrame]
    #: The tables the HTML shows, in order, each as (key in ``tables``, caption).
    previews: tuple[tuple[str, str], ...] = ()
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
    currency: str | None = None,
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
    currency
        ISO 4217 code written with the amounts of the takeaways (None: plain numbers).
    """
    tx.register(con, qt.NATIVE_ROWS, native_ids=True)
    qt.prepare(con, qt.NATIVE_ROWS)
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
                                     median_user_spend=report.user_distribution["spend_median"],
                                     money=money_formatter(currency))
    return report


# long: one table per insight, each with its takeaway sentence; the list is the report's order
def build_insights(
    con: duckdb.DuckDBPyConnection,
    *,
    country: str = "US",
    top_n: int = 20,
    median_user_spend: float | None = None,
    money: ins.Money = ins._money,
) -> list[Insight]:
    """Every insight of the report, in reading order (``prepare`` must have run on ``con``)."""
    bounds = qt.period_bounds(con)
    assert bounds is not None
    events = calendar_events(bounds[0], bounds[1], country=country)
    daily = ins.daily_spend_table(con, events)
    grid = ins.weekday_hour_table(con)
    ins.amount_counts(con)
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
        Insight("daily_spend", "Daily spend, with holidays and retail events",
                ins.daily_spend_takeaway(daily, money=money), figs.daily_spend_figure(daily), {"daily_spend": daily},
                (("daily_spend", "Marked days (or, without any, the days with the most spend)"),),
                "Markers: " + ", ".join(figs._EVENT_COLOURS) + f" ({country})."),
        Insight("weekday_hour", "When people buy: weekday x hour (UTC)", ins.weekday_hour_takeaway(grid),
                figs.weekday_hour_figure(grid), {"weekday_hour": grid},
                (("weekday_hour", "Busiest weekday-hour cells"),)),
        Insight("transaction_size", "Transaction size distribution (log scale)",
                ins.transaction_size_takeaway(quantiles, money=money),
                figs.transaction_size_figure(hist),
                {"transaction_size": hist, "transaction_size_quantiles": quant_table},
                (("transaction_size_quantiles", "Transaction amount quantiles"),)),
        Insight("concentration", "Spend concentration", ins.concentration_takeaway(conc, gini),
                figs.lorenz_figure(curve, gini), {"spend_concentration": conc, "lorenz_curve": curve},
                (("spend_concentration", "Share of spend made by the top users"),),
                "Users with no gross spend (only zero amounts or refunds) count as zero."),
        Insight("spenders", "Top and bottom spenders",
                ins.spenders_takeaway(top, bottom, median_user_spend, money=money),
                figs.spenders_figure(top), {"top_spenders": top, "bottom_spenders": bottom},
                (("top_spenders", f"Top {top_n} spenders"),
                 ("bottom_spenders", f"Bottom {top_n} spenders (lowest positive gross spend)"))),
        Insight("mom_change", "Month-over-month change per user", ins.mom_takeaway(by_month, movers, money=money),
                figs.mom_figure(by_month), {"mom_change_by_month": by_month, "mom_top_movers": movers},
                (("mom_top_movers", f"Biggest increases and decreases of {last_month or '-'}"),),
                "Every user and month is in insights/mom_change_per_user.csv."),
        Insight("new_returning", "New vs returning users",
                ins.new_returning_takeaway(nr_month),
                figs.new_returning_figure(nr_week),
                {"new_returning_weekly": nr_week, "new_returning_monthly": nr_month},
                (("new_returning_monthly", "New and returning users in the last months"),),
                "Figure: weekly; table: monthly (all in insights/new_returning_*.csv)."),
        Insight("cohort_retention", "Acquisition-cohort retention", ins.retention_takeaway(cohorts),
                figs.retention_figure(cohorts), {"cohort_retention": cohorts},
                ((COHORT_PREVIEW, "Share of each cohort active N months after its first spend"),),
                "Rows: month of first spend; a cohort with nobody back in a month shows 0%, a month after the "
                "data ends is blank (insights/cohort_retention.csv)."),
        Insight("active_users", "Active users per week", ins.active_users_takeaway(weekly, bounds[1]),
                figs.active_users_figure(weekly), {"active_users_weekly": weekly},
                (("active_users_weekly", "Active users in the last weeks"),)),
    ]


# ---------------------------------------------------------------------------------------------
# Formatting for output
# ---------------------------------------------------------------------------------------------


#: Key of the derived cohort table (one row per cohort) the HTML shows instead of the long CSV.
COHORT_PREVIEW = "cohort_retention_by_month"
COHORT_MONTHS = (1, 2, 3, 6, 12)


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


def cohort_preview(cohorts: pd.DataFrame, n: int) -> pd.DataFrame:
    """One row per cohort (the ``n`` most recent with a second month): size and retention at months 1, 2, 3, 6, 12."""
    mat = ins.cohort_matrix(cohorts)
    if mat.empty:
        return pd.DataFrame(columns=["cohort", "cohort_size"])
    sizes = cohorts[cohorts["months_since_first"] == 0].set_index("cohort_month")["cohort_size"]
    months = [m for m in COHORT_MONTHS if m in mat.columns]
    size = sizes.reindex(mat.index).fillna(0).astype("int64")
    out = pd.DataFrame({"cohort": mat.index, "cohort_size": size.to_numpy()})
    for m in months:
        out[f"month {m}"] = mat[m].to_numpy()
    return out.tail(n).reset_index(drop=True)


def _html_table(df: pd.DataFrame, n: int, caption: str, *, money: Callable[[float], str],
                name: str | None = None, total: int | None = None) -> dict[str, object]:
    """Build a table for the template: caption, display headers, formatted cells, a note on what is left out."""
    shown = df.head(n)
    total = len(df) if total is None else total
    note = ""
    if len(shown) < total:
        note = f"showing {len(shown)} of {total:,} rows" + (f"; full table in {name}" if name else "")
    percent = SHARE_COLUMNS | {c for c in df.columns if str(c).startswith("month ")}
    columns = []
    for c in shown.columns:
        label = LABELS.get(str(c), str(c).replace("_", " "))
        columns.append({"label": label, "kind": "text" if shown[c].dtype == object and c not in percent else "num",
                        "id": c == "user_id"})
    rows = [[neutralise_formula(display_cell("retention" if str(c).startswith("month ") else str(c), v, money))
             for c, v in zip(shown.columns, r, strict=True)] for r in shown.itertuples(index=False)]
    return {"caption": caption, "columns": columns, "rows": rows, "note": note}


def _summary_rows(s: dict[str, object], money: Callable[[float], str]) -> list[tuple[str, str]]:
    atv = s["avg_transaction_value"]
    rows = [("transactions (accepted rows)", f"{s['n_transactions']:,}"),
            ("spend transactions (amount > 0)", f"{s['n_spend_transactions']:,}"),
            ("users", f"{s['n_users']:,}"), ("gross spend", money(s["total_spend"])),  # type: ignore[arg-type]
            ("average transaction value", "-" if atv is None else money(atv)),  # type: ignore[arg-type]
            ("refunds", f"{s['n_refunds']:,} ({money(s['refund_amount'])})"),  # type: ignore[arg-type]
            ("zero-amount rows", f"{s['n_zero_amount']:,}")]
    if "net_spend" in s:
        rows.append(("net spend (gross - refunds)", money(s["net_spend"])))  # type: ignore[arg-type]
    period = "-" if s["period_start"] is None else \
        f"{pd.Timestamp(s['period_start']):%Y-%m-%d} to {pd.Timestamp(s['period_end']):%Y-%m-%d}"  # days, not instants
    rows += [("period", period),
             ("rows read / accepted / rejected", f"{s['rows_in']:,} / {s['rows_accepted']:,} / {s['rows_rejected']:,}")]
    return rows


def render_html(report: DescribeReport, *, top_n: int = 20, currency: str | None = None) -> str:
    """Render the self-contained report page (figures as data URIs, no external resources).

    Cells are formatted for reading (the CSVs keep machine formats): dates as ``YYYY-MM-DD``, shares
    as percentages, counts with thousands separators, money to cents with ``currency``'s symbol.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    currency = check_currency(currency)
    money = money_formatter(currency)
    env = Environment(loader=PackageLoader("spendlab.describe", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    s = report.summary

    def table(df: pd.DataFrame, n: int, caption: str, name: str | None = None) -> dict[str, object]:
        return _html_table(df, n, caption, money=money, name=name)

    insights = []
    for i in report.insights:
        tables = []
        for key, caption in i.previews:
            if key == COHORT_PREVIEW:
                full = i.tables["cohort_retention"]
                preview = cohort_preview(full, top_n)
                t = table(preview, top_n, caption)
            else:
                full = i.tables[key]
                preview = _sorted_preview(key, full, top_n)
                t = table(preview, top_n, caption)
                if len(preview) < len(full):
                    t["note"] = f"showing {len(preview)} of {len(full):,} rows; full table in insights/{key}.csv"
            tables.append(t)
        insights.append({"key": i.key, "title": i.title, "takeaway": i.takeaway, "figure": figs.data_uri(i.figure),
                         "tables": tables, "note": i.note})
    d = report.user_distribution

    def m(x: float | None) -> str:
        return "-" if x is None else money(x)

    atv = s["avg_transaction_value"]
    q1 = (f"The average transaction is worth {m(atv)}; the median user's average "  # type: ignore[arg-type]
          f"transaction is {m(d['atv_median'])} (mean over users {m(d['atv_mean'])}, 90th percentile "
          f"{m(d['atv_p90'])}), and a user with spend makes "
          f"{'-' if d['tx_mean'] is None else format(d['tx_mean'], '.1f')} purchases on average.")
    by_type: dict[str, int] = s["rejected_by_type"]  # type: ignore[assignment]
    rejected = ", ".join(f"{k}: {v:,}" for k, v in by_type.items()) or "none"
    return env.get_template("describe.html").render(
        title=f"spendlab describe: {s['input']}",
        summary_rows=_summary_rows(s, money), rejected=rejected, q1_takeaway=q1, currency=currency,
        overview=table(report.overview, 36, "Spend per calendar month, all users", "monthly_overview.csv"),
        per_user=table(report.per_user_head, top_n, f"Top {top_n} users by gross spend"),
        monthly=table(report.monthly_head, top_n, f"Largest {top_n} user-months by spend"),
        days_dist=table(report.days_distribution, 7, "User-weeks by days with spend"),
        days_head=table(report.days_head, top_n, "User-weeks with the most days of spend"),
        days_figure=figs.data_uri(report.days_figure), insights=insights, top_n=top_n,
        net=("net_spend" in s),
    )


# ---------------------------------------------------------------------------------------------
# Writing (the job)
# ---------------------------------------------------------------------------------------------


