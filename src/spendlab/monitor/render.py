"""Render the ``report.html`` of a monitored period.

One self-contained page (no script, no external resource; the figure is a PNG data URI).
:func:`render_monitor_report` returns the text; the job writes it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from spendlab.forecast.report_figures import data_uri, png_figure
from spendlab.forecast.report_render import html_table


def history_table(backtest: pd.DataFrame, monitored: pd.DataFrame) -> pd.DataFrame:
    """One row per period: the backtest's test RMSE of that period and the realized RMSE of monitoring.

    Parameters
    ----------
    backtest : pandas.DataFrame
        ``target_period``, ``rmse`` per test origin of the version's backtest.
    monitored : pandas.DataFrame
        ``period``, ``model_version``, ``rmse``, ``verdict`` per monitored period.

    Returns
    -------
    pandas.DataFrame
        ``period, source, model_version, rmse, verdict``, by period.
    """
    rows = [{"period": str(r["target_period"])[:7], "source": "backtest (test origin)", "model_version": "",
             "rmse": float(r["rmse"]), "verdict": ""} for _, r in backtest.iterrows()]
    rows += [{"period": str(r["period"]), "source": "realized", "model_version": str(r["model_version"]),
              "rmse": float(r["rmse"]), "verdict": str(r.get("verdict") or "")} for _, r in monitored.iterrows()]
    out = pd.DataFrame(rows, columns=["period", "source", "model_version", "rmse", "verdict"])
    return out.sort_values(["period", "source"], kind="stable").reset_index(drop=True)


def history_figure(history: pd.DataFrame, *, band: tuple[float, float] | None = None) -> bytes:
    """PNG: RMSE by period, the backtest's test origins and the realized periods, with the backtest's interval."""
    periods = sorted(history["period"].unique()) if len(history) else []

    def plot(fig: Any) -> None:
        _history_axes(fig.add_subplot(1, 1, 1), history, periods, band)

    return png_figure(plot, height=3.2)


def _history_axes(ax: Any, history: pd.DataFrame, periods: list[str], band: tuple[float, float] | None) -> None:
    pos = {p: i for i, p in enumerate(periods)}
    for source, style in (("backtest (test origin)", "s--"), ("realized", "o-")):
        part = history[history["source"] == source]
        if len(part):
            ax.plot([pos[p] for p in part["period"]], part["rmse"], style, label=source)
    if band is not None and all(pd.notna(b) for b in band) and periods:
        ax.axhspan(band[0], band[1], color="#1f77b4", alpha=0.12, label="backtest RMSE, 95% bootstrap")
    ax.set_xticks(range(len(periods)), periods, rotation=45, fontsize=7)
    ax.set_ylabel("RMSE per user")
    ax.legend(fontsize=7, loc="best")


def _environment() -> Any:
    """Return the Jinja environment of the monitoring templates (autoescaped)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("spendlab.monitor", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def render_monitor_report(*, title: str, verdict: str, reasons: list[str], notes: dict[str, str],
                          summary: pd.DataFrame, accuracy: pd.DataFrame, drift: pd.DataFrame,
                          segments: pd.DataFrame, history: pd.DataFrame,
                          band: tuple[float, float] | None = None) -> str:
    """Render the page: verdict, realized against backtest, accuracy by segment, drift, history."""
    env = _environment()
    tables: dict[str, Any] = {name: html_table(df) for name, df in (
        ("summary", summary), ("accuracy", accuracy), ("drift", drift.head(20)), ("segments", segments),
        ("history", history))}
    return env.get_template("monitor_report.html").render(
        title=title, verdict=verdict, reasons=reasons, notes=notes, tables=tables,
        figure=data_uri(history_figure(history, band=band)))


def replay_figure(table: pd.DataFrame) -> bytes:
    """PNG: realized RMSE per period, one line per retraining policy; refits marked."""
    def plot(fig: Any) -> None:
        _replay_axes(fig.add_subplot(1, 1, 1), table)

    return png_figure(plot, height=3.2)


def _replay_axes(ax: Any, table: pd.DataFrame) -> None:
    periods = sorted(table["period"].unique())
    pos = {p: i for i, p in enumerate(periods)}
    for policy, part in table.groupby("policy", sort=False):
        x = [pos[p] for p in part["period"]]
        line = ax.plot(x, part["rmse"], "o-", label=str(policy))[0]
        refit = part["retrained"].to_numpy(dtype=bool)
        ax.plot([v for v, r in zip(x, refit, strict=True) if r], part["rmse"][refit], "s", color=line.get_color(),
                markersize=9, fillstyle="none")
    ax.set_xticks(range(len(periods)), periods, rotation=45, fontsize=7)
    ax.set_ylabel("realized RMSE per user (squares: refit)")
    ax.legend(fontsize=7, loc="best")


def render_replay_report(*, title: str, notes: dict[str, str], by_policy: pd.DataFrame, table: pd.DataFrame) -> str:
    """Render the replay page: the policies side by side (summary, then every period), with the figure."""
    env = _environment()
    return env.get_template("replay_report.html").render(
        title=title, notes=notes, by_policy=html_table(by_policy), periods=html_table(table),
        figure=data_uri(replay_figure(table)))
