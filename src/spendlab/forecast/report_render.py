"""Render an experiment's ``report.html``.

One self-contained page for a reviewer (no script, no external resource; figures are PNG data
URIs). :func:`render_report` returns the text; the job writes it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from spendlab.forecast import report_figures as rf
from spendlab.forecast.report import ReportTables

#: Columns where lower is not better, shown as shares.
_PERCENT = {"bias", "wape", "top10_capture", "interval_coverage_80", "actual_share", "decile_mape"}


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, (int,)) or (hasattr(v, "dtype") and v.dtype.kind in "iu"):
        return f"{int(v):,}"
    if isinstance(v, float) or hasattr(v, "__float__"):
        f = float(v)
        if abs(f) < 1e-12:
            f = 0.0  # float noise such as -9.8e-17 reads as 0
        if col.endswith(" error") or col == "test_rmse_vs_champion":
            return f"{f:+,.4g}" if col == "test_rmse_vs_champion" else f"{f:+.1%}"
        if col.endswith(" error"):
            return f"{f:+.1%}"
        if col in _PERCENT or col.endswith(("_bias", "_wape", "_capture")):
            return f"{f:+.1%}" if col.endswith("bias") else f"{f:.1%}"
        return f"{f:,.4g}" if abs(f) < 1e4 else f"{f:,.0f}"
    return str(v)


def html_table(df: pd.DataFrame, *, highlight: str | None = None) -> dict[str, Any]:
    """Columns and formatted rows (every column; ``highlight`` = model whose row is marked)."""
    rows = []
    for _, r in df.iterrows():
        rows.append({"cells": [_cell(c, r[c]) for c in df.columns],
                     "mark": highlight is not None and r.get("model") == highlight})
    return {"columns": [str(c) for c in df.columns], "rows": rows}


def _board_with_clv(t: ReportTables) -> pd.DataFrame:
    """Append to the leaderboard the ranking metrics it lacks, from the CLV table."""
    extra = [c for c in t.clv.columns if c != "model" and c not in t.board.columns]
    if not extra:
        return t.board
    return t.board.merge(t.clv[["model", *extra]], on="model", how="left")


def _calibration_side_by_side(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per decile: each model's mean predicted and mean actual spend (its own deciles)."""
    out = pd.DataFrame({"decile": range(1, 11)})
    for m, t in tables.items():
        out = out.merge(t[["decile", "mean_pred", "mean_actual"]].rename(
            columns={"mean_pred": f"{m} predicted", "mean_actual": f"{m} actual"}), on="decile", how="left")
    return out


def render_report(t: ReportTables) -> str:
    """Render the page: leaderboard, holdout tracking, calibration, gain, error by segment."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("spendlab.forecast", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    shown = t.shown
    figures = {
        "leaderboard": rf.data_uri(rf.leaderboard_figure(t.board, t.champion)),
        "tracking": rf.data_uri(rf.tracking_figure(t.tracking, shown)),
        "calibration": rf.data_uri(rf.calibration_figure(t.calibration)),
        "gain": rf.data_uri(rf.gain_figure(t.gain, shown)),
        "segments": rf.data_uri(rf.segment_figure(t.segments, shown)),
    }
    tracking = t.tracking.copy()
    for m in shown:
        tracking[f"{m} error"] = (tracking[m] - tracking["actual"]) / tracking["actual"].where(tracking["actual"] > 0)
    tracking.columns = [str(c) for c in tracking.columns]
    board = _board_with_clv(t)
    clv_note = (f"{', '.join(t.clv_computed_here)} computed by the report from the test predictions "
                "(the backtest does not log them yet)") if t.clv_computed_here else ""
    return env.get_template("experiment_report.html").render(
        title=f"spendlab experiment: {t.name}", name=t.name, champion=t.champion, peer=t.peer, notes=t.notes,
        board=html_table(board, highlight=t.champion), clv_note=clv_note, figures=figures,
        tracking=html_table(tracking),
        segments=html_table(t.segments), n_models=len(t.board),
        calibration=html_table(_calibration_side_by_side(t.calibration)),
        selection=None if t.selection is None else html_table(t.selection, highlight=t.champion),
        selection_note=t.selection_note,
    )
