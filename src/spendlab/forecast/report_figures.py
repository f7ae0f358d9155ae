"""Draw the figures of the experiment report.

Each takes a table of :mod:`spendlab.forecast.report` and returns PNG bytes.

Drawn on :class:`matplotlib.figure.Figure` with the Agg canvas, never through ``pyplot``'s global
state, so nothing is set at import time and a figure never leaks between calls (the experiment's
backtests run on threads). Mathtext is off: a model key such as ``$x$`` is drawn as written.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pandas as pd

WIDTH, HEIGHT, DPI = 8.0, 3.6, 100
#: Champion first, best peer second, then the reference curves.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
ACTUAL = "#222222"


def png_figure(fn: Callable[[object], None], height: float = HEIGHT, width: float = WIDTH) -> bytes:
    """Return the PNG bytes of a figure drawn by ``fn`` (deterministic: no software stamp)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False}):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        fn(fig)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _empty(ax: object, text: str = "no test origins") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")  # type: ignore[attr-defined]


def leaderboard_figure(board: pd.DataFrame, champion: str) -> bytes:
    """Mean test RMSE (bars) and mean validation RMSE (markers) per model, best test RMSE on top."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if board.empty:
            return _empty(ax, "no models")
        b = board.sort_values("rmse", ascending=False, na_position="first")
        y = np.arange(len(b))
        colours = [COLOURS[0] if m == champion else "#b8c4cf" for m in b["model"]]
        ax.barh(y, b["rmse"].fillna(0.0), color=colours, label="test RMSE")
        ax.plot(b["validation_rmse"], y, "D", color=ACTUAL, ms=5, label="validation RMSE")
        ax.set_yticks(y, [f"{m} (champion)" if m == champion else str(m) for m in b["model"]])
        ax.set_xlabel("RMSE per user, mean over origins")
        ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)

    return png_figure(draw, height=max(2.2, 0.35 * len(board) + 1.2))


def tracking_figure(table: pd.DataFrame, models: list[str]) -> bytes:
    """Total actual vs predicted spend per test origin (the holdout tracking plot)."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if table.empty:
            return _empty(ax)
        x = [str(t) for t in table["target_period"]]
        ax.plot(x, table["actual"], color=ACTUAL, lw=2.2, marker="o", label="actual")
        for i, m in enumerate(models):
            ax.plot(x, table[m], color=COLOURS[i % len(COLOURS)], lw=1.6, marker="s", ls="--",
                    label=f"{m} (champion)" if i == 0 else f"{m} (best peer)")
        ax.set_ylabel("total spend in the target period")
        ax.set_xlabel("target period of each test origin")
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=8)
        ax.tick_params(axis="x", labelrotation=30)

    return png_figure(draw)


def calibration_figure(tables: dict[str, pd.DataFrame]) -> bytes:
    """Mean predicted vs mean actual by prediction decile, one panel per model."""

    def draw(fig: object) -> None:
        axes = fig.subplots(1, max(len(tables), 1), squeeze=False)[0]  # type: ignore[attr-defined]
        # no tables: one empty panel (so axes may outnumber tables)
        for i, (ax, (m, t)) in enumerate(zip(axes, tables.items(), strict=False)):
            if t.empty:
                _empty(ax)
                continue
            ax.plot(t["decile"], t["mean_actual"], color=ACTUAL, marker="o", lw=1.8, label="mean actual")
            ax.plot(t["decile"], t["mean_pred"], color=COLOURS[i % len(COLOURS)], marker="s", ls="--", lw=1.6,
                    label="mean predicted")
            ax.set_xticks(range(1, 11))
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("decile of predicted spend (1 = lowest)")
            if i == 0:
                ax.set_ylabel("next-period spend per user")
            ax.legend(frameon=False, fontsize=8)

    return png_figure(draw)


def gain_figure(table: pd.DataFrame, models: list[str]) -> bytes:
    """Cumulative gain curves, with the perfect ranking and random targeting for reference."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        x = table["user_share"] * 100
        ax.plot(x, table["perfect"] * 100, color="#999999", lw=1.2, label="perfect ranking")
        ax.plot(x, table["random"] * 100, color="#999999", lw=1.0, ls=":", label="random")
        for i, m in enumerate(models):
            ax.plot(x, table[m] * 100, color=COLOURS[i % len(COLOURS)], lw=1.8, label=m)
        ax.axvline(10, color="#cccccc", lw=0.8)
        ax.set_xlabel("% of users, highest predicted spend first")
        ax.set_ylabel("% of actual spend captured")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.legend(frameon=False, fontsize=8, loc="lower right")

    return png_figure(draw, height=3.8, width=6.0)


def segment_figure(table: pd.DataFrame, models: list[str]) -> bytes:
    """RMSE by segment (bars per model), with each segment's share of the actual spend."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if table.empty:
            return _empty(ax)
        segs = list(dict.fromkeys(table["segment"]))
        x = np.arange(len(segs))
        width = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            t = table[table["model"] == m].set_index("segment").reindex(segs)
            ax.bar(x + i * width, t["rmse"].fillna(0.0), width, color=COLOURS[i % len(COLOURS)], label=m)
        share = table.drop_duplicates("segment").set_index("segment").reindex(segs)["actual_share"]
        users = table.drop_duplicates("segment").set_index("segment").reindex(segs)["user_origins"]
        ax.set_xticks(x + width * (len(models) - 1) / 2,
                      [f"{s}\n{u:,} user-origins, {sh:.0%} of spend" for s, u, sh in zip(segs, users, share.fillna(0), strict=True)])
        ax.set_ylabel("RMSE (test origins)")
        ax.legend(frameon=False, fontsize=8)

    return png_figure(draw)
