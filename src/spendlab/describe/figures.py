"""Figures for ``spendlab describe``: each function takes a small table and returns PNG bytes.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``'s global state, so nothing is set at import time and a figure never leaks between calls.
Mathtext parsing is off: a user id such as ``$x$`` is drawn as written, not as formula markup.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from spendlab.describe.insights import cohort_matrix

WIDTH, HEIGHT, DPI = 10.0, 3.6, 100
_EVENT_COLOURS = {
    "Thanksgiving": "#8c564b",
    "Black Friday": "#111111",
    "Cyber Monday": "#1f77b4",
    "Christmas": "#d62728",
    "New Year": "#2ca02c",
}


@contextmanager
def _figure(height: float = HEIGHT, width: float = WIDTH) -> Iterator[tuple[object, list[bytes]]]:
    """Open a fresh Agg figure; the PNG bytes land in the yielded list when the block ends."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False, "svg.hashsalt": "spendlab"}):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        out: list[bytes] = []
        yield fig, out
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        out.append(buf.getvalue())


def _draw(fn: Callable[[object], None], height: float = HEIGHT) -> bytes:
    with _figure(height) as (fig, out):
        fn(fig)
    return out[0]


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding in a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _plain_log_ticks(axis: object) -> None:
    """Plain tick labels on a log axis (the default ones are mathtext, which is switched off here)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.10g}"))  # type: ignore[attr-defined]
    axis.set_minor_formatter(NullFormatter())  # type: ignore[attr-defined]


def _empty(ax: object, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center",  # type: ignore[attr-defined]
            transform=ax.transAxes, color="grey")  # type: ignore[attr-defined]


def daily_spend_figure(daily: pd.DataFrame) -> bytes:
    """Daily gross spend with a 7-day mean and vertical markers for holidays and retail events."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if daily.empty:
            return _empty(ax)
        ax.plot(daily["date"], daily["spend"], lw=0.7, color="#7f7f7f", label="daily spend")
        ax.plot(daily["date"], daily["spend"].rolling(7, min_periods=1).mean(), lw=1.4, color="#ff7f0e",
                label="7-day mean")
        seen: set[str] = set()
        for date, events in zip(daily["date"], daily["events"], strict=True):
            for key, colour in _EVENT_COLOURS.items():
                if key in events:
                    ax.axvline(date, color=colour, lw=0.9, ls="--", alpha=0.8,
                               label=None if key in seen else key)
                    seen.add(key)
        ax.set_ylabel("spend per day")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=7, ncol=7, frameon=False)
        fig.autofmt_xdate()  # type: ignore[attr-defined]

    return _draw(draw)


def weekday_hour_figure(grid: pd.DataFrame) -> bytes:
    """Heatmap of spend transactions by weekday (rows) and UTC hour (columns)."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        mat = grid.pivot(index="weekday", columns="hour", values="n_transactions").reindex(
            index=range(1, 8), columns=range(24)).fillna(0).to_numpy()
        im = ax.imshow(mat, aspect="auto", cmap="viridis")
        ax.set_yticks(range(7), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
        ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        ax.set_xlabel("hour (UTC)")
        fig.colorbar(im, ax=ax, label="transactions")  # type: ignore[attr-defined]

    return _draw(draw)


def transaction_size_figure(hist: pd.DataFrame) -> bytes:
    """Histogram of transaction amounts on a log x axis."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if hist.empty:
            return _empty(ax)
        ax.bar(hist["bin_lower"], hist["n_transactions"], width=hist["bin_upper"] - hist["bin_lower"],
               align="edge", color="#1f77b4", edgecolor="white", lw=0.3)
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("transaction amount (log scale)")
        ax.set_ylabel("transactions")

    return _draw(draw)


def lorenz_figure(curve: pd.DataFrame, gini: float | None) -> bytes:
    """Lorenz curve of gross spend over users, with the line of equality."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="equal spend")
        ax.plot(curve["user_share"], curve["spend_share"].fillna(0), color="#d62728", lw=1.6,
                label=f"Lorenz curve (Gini {gini:.2f})" if gini is not None else "Lorenz curve")
        ax.fill_between(curve["user_share"], curve["spend_share"].fillna(0), curve["user_share"], alpha=0.12,
                        color="#d62728")
        ax.set_xlabel("share of users (ascending spend)")
        ax.set_ylabel("share of spend")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", frameon=False)

    return _draw(draw, height=4.0)


def spenders_figure(top: pd.DataFrame) -> bytes:
    """Horizontal bars of the top spenders' gross spend (labels truncated to 24 characters)."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if top.empty:
            return _empty(ax)
        labels = [u if len(u) <= 24 else u[:23] + "\u2026" for u in top["user_id"].astype(str)]
        y = np.arange(len(top))
        ax.barh(y, top["total_spend"], color="#2ca02c")
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("gross spend")

    return _draw(draw, height=max(2.5, 0.22 * len(top) + 0.8))


def mom_figure(by_month: pd.DataFrame) -> bytes:
    """Per month: users who spent more (up) and less (down) than in the month before."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if by_month.empty:
            return _empty(ax, "only one month of data")
        x = np.arange(len(by_month))
        ax.bar(x, by_month["increased"], color="#2ca02c", label="increased")
        ax.bar(x, by_month["started"], bottom=by_month["increased"], color="#98df8a", label="started")
        ax.bar(x, -by_month["decreased"], color="#d62728", label="decreased")
        ax.bar(x, -by_month["stopped"], bottom=-by_month["decreased"], color="#ff9896", label="stopped")
        ax.axhline(0, color="black", lw=0.6)
        step = max(1, len(x) // 18)
        ax.set_xticks(x[::step], by_month["month"].iloc[::step], rotation=45, ha="right")
        ax.set_ylabel("users")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=7, ncol=4, frameon=False)

    return _draw(draw)


def new_returning_figure(table: pd.DataFrame) -> bytes:
    """Stacked bars of new and returning active users per period."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if table.empty:
            return _empty(ax)
        width = 5 if len(table) > 1 and (table["period_start"].diff().min().days or 7) <= 7 else 25
        ax.bar(table["period_start"], table["returning_users"], width=width, color="#1f77b4", label="returning")
        ax.bar(table["period_start"], table["new_users"], bottom=table["returning_users"], width=width,
               color="#ff7f0e", label="new")
        ax.set_ylabel("active users")
        ax.legend(loc="upper right", frameon=False)
        fig.autofmt_xdate()  # type: ignore[attr-defined]

    return _draw(draw)


def retention_figure(cohorts: pd.DataFrame) -> bytes:
    """Heatmap of retention by acquisition cohort (rows) and months since first spend (columns)."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if cohorts.empty:
            return _empty(ax)
        mat = cohort_matrix(cohorts)  # zeros, not blanks, for cohorts that did not come back
        if mat.shape[1] == 0 or mat.empty:
            return _empty(ax, "no cohort has a second month")
        im = ax.imshow(mat.to_numpy(dtype=float), aspect="auto", cmap="magma_r", vmin=0)
        step = max(1, len(mat.index) // 12)
        ax.set_yticks(range(0, len(mat.index), step), list(mat.index)[::step], fontsize=7)
        ax.set_xticks(range(mat.shape[1]), [str(c) for c in mat.columns], fontsize=7)
        ax.set_xlabel("months since first spend")
        ax.set_ylabel("cohort")
        fig.colorbar(im, ax=ax, label="share of cohort active")  # type: ignore[attr-defined]

    return _draw(draw, height=4.0)


def active_users_figure(weekly: pd.DataFrame) -> bytes:
    """Distinct users with spend per ISO week."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if weekly.empty:
            return _empty(ax)
        ax.plot(weekly["week_start"], weekly["active_users"], marker=".", ms=3, lw=1.2, color="#9467bd")
        ax.set_ylabel("active users per week")
        ax.set_ylim(bottom=0)
        fig.autofmt_xdate()  # type: ignore[attr-defined]

    return _draw(draw)


def days_per_week_figure(dist: pd.DataFrame) -> bytes:
    """How many user-weeks had 1..7 days with spend."""

    def draw(fig: object) -> None:
        ax = fig.add_subplot()  # type: ignore[attr-defined]
        if dist.empty:
            return _empty(ax)
        ax.bar(dist["days_with_spend"], dist["user_weeks"], color="#17becf")
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_xticks(range(1, 8))
        ax.set_xlabel("distinct days with spend in the ISO week")
        ax.set_ylabel("user-weeks (log)")

    return _draw(draw, height=3.0)
