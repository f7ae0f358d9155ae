"""The tables of an experiment's review report: what a reviewer checks before trusting a champion.

Every function takes the backtest predictions (one row per model, origin and user: ``model, split,
cutoff, target_period, segment, y_true, y_pred``) and returns a new small frame; nothing is written
here (the experiment job writes ``report.html``). Only **test** origins are used: they are the
held-out periods; the champion was chosen on validation origins.

- :func:`tracking_table`: aggregate actual vs predicted spend per test origin (the holdout plot);
- :func:`calibration_table`: mean predicted vs mean actual by decile of the prediction;
- :func:`gain_table`: share of the actual spend captured by the top x% of users by prediction;
- :func:`segment_table`: RMSE, bias and spend by user segment (new / active / lapsed);
- :func:`clv_table`: the ranking metrics reviewers read next to RMSE (normalized Gini, Spearman,
  decile MAPE, top-10% capture), taken from the backtest's means where ``forecast.metrics`` already
  computes them, else computed here for the report only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.models.registry import BASELINES

#: The ranking metrics of the report, in display order (names as ``forecast.metrics`` uses them).
CLV_METRICS: tuple[str, ...] = ("gini_norm", "spearman", "decile_mape", "top10_capture")
_REQUIRED = ("model", "split", "cutoff", "y_true", "y_pred")


def _test_rows(predictions: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in predictions.columns]
    if missing:
        raise SpendlabError(f"report tables need prediction columns {missing}")
    test = predictions[predictions["split"] == "test"] if "split" in predictions.columns else predictions
    if models is not None:
        test = test[test["model"].isin(list(models))]
    return test


def _deciles(y_pred: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """1..n_bins by rank of the prediction (ties by row order), groups of (nearly) equal size."""
    n = len(y_pred)
    order = np.argsort(y_pred, kind="stable")
    decile = np.empty(n, dtype=np.int64)
    decile[order] = np.minimum(np.arange(n) * n_bins // max(n, 1), n_bins - 1) + 1
    return decile


def tracking_table(predictions: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Total actual spend and each model's total predicted spend per test origin.

    Columns: ``cutoff``, ``target_period``, ``actual``, one column per model of ``models`` (in that
    order). The actual total is the same for every model (same users, same target window).
    """
    test = _test_rows(predictions, models)
    if test.empty:
        return pd.DataFrame(columns=["cutoff", "target_period", "actual", *models])
    keys = ["cutoff", "target_period"] if "target_period" in test.columns else ["cutoff"]
    first = test[test["model"] == models[0]]
    out = first.groupby(keys, as_index=False)["y_true"].sum().rename(columns={"y_true": "actual"})
    for m in models:
        pred = test[test["model"] == m].groupby(keys, as_index=False)["y_pred"].sum().rename(columns={"y_pred": m})
        out = out.merge(pred, on=keys, how="left")
    if "target_period" not in out.columns:
        out.insert(1, "target_period", out["cutoff"])
    for col in ("cutoff", "target_period"):  # days, not midnight timestamps, in the table and on the axis
        if out[col].dtype.kind == "M":
            out[col] = out[col].dt.date
    return out.sort_values("cutoff", ignore_index=True)


def calibration_table(predictions: pd.DataFrame, model: str, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted and mean actual next-period spend per prediction decile of ``model``.

    Deciles are cut within each test origin (a decile is "the 10% of users with the highest
    forecast at that cutoff") and then pooled, so a seasonal origin does not fill the top decile.
    Columns: ``decile`` (1 = lowest predictions), ``mean_pred``, ``mean_actual``, ``n``.
    """
    test = _test_rows(predictions, [model])
    parts = []
    for _, g in test.groupby("cutoff", sort=True):
        parts.append(pd.DataFrame({"decile": _deciles(g["y_pred"].to_numpy(np.float64), n_bins),
                                   "y_pred": g["y_pred"].to_numpy(np.float64),
                                   "y_true": g["y_true"].to_numpy(np.float64)}))
    if not parts:
        return pd.DataFrame(columns=["decile", "mean_pred", "mean_actual", "n"])
    frame = pd.concat(parts, ignore_index=True)
    return frame.groupby("decile", as_index=False).agg(mean_pred=("y_pred", "mean"), mean_actual=("y_true", "mean"),
                                                       n=("y_pred", "size"))


def _gain_curve(y_true: np.ndarray, score: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of ``y_true``'s total held by the top ``grid`` fraction of users ranked by ``score``."""
    total = float(y_true.sum())
    if total <= 0 or len(y_true) == 0:
        return np.full(len(grid), np.nan)
    order = np.argsort(-score, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(y_true[order])]) / total
    x = np.arange(len(y_true) + 1) / len(y_true)
    return np.interp(grid, x, cum)


def gain_table(predictions: pd.DataFrame, models: Sequence[str], n_points: int = 101) -> pd.DataFrame:
    """Cumulative gain: the share of actual spend made by the top ``user_share`` of users by prediction.

    One column per model, plus ``perfect`` (users ranked by their actual spend) and ``random``
    (the diagonal); each curve is the mean over test origins of that origin's curve. Ties in a
    prediction are broken by row order (as ``top10_capture`` does).
    """
    grid = np.linspace(0.0, 1.0, n_points)
    test = _test_rows(predictions, models)
    out = pd.DataFrame({"user_share": grid})
    curves: dict[str, list[np.ndarray]] = {m: [] for m in models}
    perfect: list[np.ndarray] = []
    for _cutoff, g in test.groupby("cutoff", sort=True):
        for m in models:
            gm = g[g["model"] == m]
            y = gm["y_true"].to_numpy(np.float64)
            curves[m].append(_gain_curve(y, gm["y_pred"].to_numpy(np.float64), grid))
            if m == models[0]:
                perfect.append(_gain_curve(y, y, grid))
    for m in models:
        out[m] = np.nanmean(np.vstack(curves[m]), axis=0) if curves[m] else np.nan
    out["perfect"] = np.nanmean(np.vstack(perfect), axis=0) if perfect else np.nan
    out["random"] = grid
    return out


def segment_table(predictions: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Error by user segment on the test origins, pooled over origins.

    Columns: ``model``, ``segment``, ``user_origins`` (a user counts once per origin), ``actual_share`` (share of the actual
    spend), ``rmse``, ``mae``, ``bias`` (sum(pred - actual) / sum(actual); NaN without spend).
    """
    test = _test_rows(predictions, models)
    if "segment" not in test.columns:
        raise SpendlabError("segment_table needs the predictions' segment column")
    rows = []
    for m in models:
        gm = test[test["model"] == m]
        total = float(gm["y_true"].sum())
        for seg, g in gm.groupby("segment", sort=False):
            e = g["y_pred"].to_numpy(np.float64) - g["y_true"].to_numpy(np.float64)
            actual = float(g["y_true"].sum())
            rows.append({"model": m, "segment": str(seg), "user_origins": len(g),
                         "actual_share": actual / total if total > 0 else math.nan,
                         "rmse": float(np.sqrt(np.mean(e ** 2))), "mae": float(np.mean(np.abs(e))),
                         "bias": float(e.sum()) / actual if actual > 0 else math.nan})
    order = {"new": 0, "active": 1, "lapsed": 2}
    out = pd.DataFrame(rows, columns=["model", "segment", "user_origins", "actual_share", "rmse", "mae", "bias"])
    out["_m"] = out["model"].map({m: i for i, m in enumerate(models)})
    out["_s"] = out["segment"].map(order).fillna(9)
    return out.sort_values(["_m", "_s", "segment"], ignore_index=True).drop(columns=["_m", "_s"])


# --- ranking metrics (until forecast.metrics.origin_metrics has them, the report computes them) ---


def _concentration_area(y: np.ndarray, order_by: np.ndarray) -> float:
    """Compute the area under the concentration curve of ``y`` ranked by ``order_by``.

    Descending; a tied block grows linearly, i.e. the expected curve over every order of the ties.
    """
    s = pd.DataFrame({"k": order_by, "y": y}).groupby("k", sort=True)["y"].agg(["sum", "size"]).iloc[::-1]
    x = np.concatenate([[0.0], np.cumsum(s["size"].to_numpy(np.float64)) / len(y)])
    c = np.concatenate([[0.0], np.cumsum(s["sum"].to_numpy(np.float64)) / float(y.sum())])
    return float(np.sum((x[1:] - x[:-1]) * (c[1:] + c[:-1]) / 2.0))


def _ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Compute normalized Gini, Spearman, decile MAPE and top-10% capture of one origin."""
    total = float(y.sum())
    out = {m: math.nan for m in CLV_METRICS}
    if len(y) == 0:
        return out
    if total > 0:
        perfect = 2.0 * _concentration_area(y, y) - 1.0
        if perfect > 0:
            out["gini_norm"] = (2.0 * _concentration_area(y, p) - 1.0) / perfect
        k = max(1, math.ceil(0.1 * len(y)))
        out["top10_capture"] = float(y[np.argsort(-p, kind="stable")[:k]].sum()) / total
    ry, rp = pd.Series(y).rank().to_numpy(), pd.Series(p).rank().to_numpy()
    if ry.std() > 0 and rp.std() > 0:
        out["spearman"] = float(np.corrcoef(ry, rp)[0, 1])
    errs = []
    for idx in np.array_split(np.argsort(p, kind="stable"), min(10, len(y))):
        actual = float(y[idx].mean())
        if actual > 0:
            errs.append(abs(float(p[idx].mean()) - actual) / actual)
    out["decile_mape"] = float(np.mean(errs)) if errs else math.nan
    return out


def clv_table(predictions: pd.DataFrame, means: Mapping[str, Mapping[str, float]],
              models: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Mean over test origins of each ranking metric of :data:`CLV_METRICS`, one row per model.

    A metric the backtest already logs (``means[model]["test_<metric>"]``) is taken from there, so
    the report and the MLflow runs agree; the others are computed here from the predictions and
    named in the second return value (the report says which ones it computed itself).
    """
    test = _test_rows(predictions, models)
    computed: set[str] = set()
    rows = []
    for m in models:
        own = means.get(m, {})
        row: dict[str, Any] = {"model": m}
        need = [c for c in CLV_METRICS if f"test_{c}" not in own]
        per_origin = [_ranking_metrics(g["y_true"].to_numpy(np.float64), g["y_pred"].to_numpy(np.float64))
                      for _, g in test[test["model"] == m].groupby("cutoff", sort=True)] if need else []
        for c in CLV_METRICS:
            if c in need:
                vals = np.array([o[c] for o in per_origin], dtype=np.float64)
                row[c] = float(vals.mean()) if len(vals) and np.isfinite(vals).all() else math.nan
                computed.add(c)
            else:
                row[c] = float(own[f"test_{c}"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *CLV_METRICS]), [c for c in CLV_METRICS if c in computed]


def best_peer(board: pd.DataFrame, champion: str, peers: Sequence[str] | frozenset[str] = BASELINES) -> str | None:
    """Return the model the champion is plotted against.

    The best of ``peers`` on validation RMSE (the reference a user would otherwise pick), else the best
    other model on validation.
    """
    others = board[(board["model"] != champion) & board["validation_rmse"].notna()]
    pool = others[others["model"].isin(list(peers))]
    pool = pool if not pool.empty else others
    if pool.empty:
        return None
    return str(pool.sort_values(["validation_rmse", "model"]).iloc[0]["model"])


# --- everything the report shows -------------------------------------------------------------------


@dataclass
class ReportTables:
    """The tables behind ``report.html`` (figures are drawn from these)."""

    name: str
    champion: str
    peer: str | None
    board: pd.DataFrame
    tracking: pd.DataFrame
    calibration: dict[str, pd.DataFrame]
    gain: pd.DataFrame
    segments: pd.DataFrame
    clv: pd.DataFrame
    clv_computed_here: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    #: Each selection rule's pick and its test RMSE (``forecast.selection.selection_table``), and the
    #: sentence saying how the champion was chosen.
    selection: pd.DataFrame | None = None
    selection_note: str = ""

    @property
    def shown(self) -> list[str]:
        """The models of the figures: the champion, then the best peer."""
        return [self.champion] + ([self.peer] if self.peer else [])


def report_tables(name: str, board: pd.DataFrame, champion: str, predictions: pd.DataFrame,
                  means: Mapping[str, Mapping[str, float]], *, peer: str | None = None,
                  peers: Sequence[str] | frozenset[str] = BASELINES, notes: Mapping[str, str] | None = None,
                  selection: pd.DataFrame | None = None, selection_note: str = "") -> ReportTables:
    """Every table of the report of experiment ``name``.

    ``board`` is the leaderboard as written to ``leaderboard.csv`` (all of its columns are shown);
    ``predictions`` the backtest predictions of every model (with ``split`` and ``segment``);
    ``means`` each model's mean metrics (``BacktestResult.means``). ``peer`` defaults to
    :func:`best_peer`. ``notes`` are shown under the title (e.g. dataset, run ids); ``selection``
    and ``selection_note`` say what each selection rule would have chosen.
    """
    peer = peer if peer is not None else best_peer(board, champion, peers)
    shown = [champion] + ([peer] if peer else [])
    clv, computed = clv_table(predictions, means, list(board["model"]))
    return ReportTables(
        name=name, champion=champion, peer=peer, board=board.reset_index(drop=True),
        tracking=tracking_table(predictions, shown),
        calibration={m: calibration_table(predictions, m) for m in shown},
        gain=gain_table(predictions, shown), segments=segment_table(predictions, shown),
        clv=clv, clv_computed_here=computed, notes=dict(notes or {}), selection=selection,
        selection_note=selection_note)


def leaderboard_markdown(board: pd.DataFrame, champion: str, *, name: str, max_chars: int = 4800) -> str:
    """Format the leaderboard as a Markdown table under a champion line: an MLflow run description.

    Every column of ``board`` but the ``champion`` flag (the champion's row is bold). Columns are
    dropped from the right when the text would pass ``max_chars`` (MLflow tag values are bounded).
    """

    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "-" if math.isnan(float(v)) else f"{float(v):.4g}"
        return str(v).replace("|", "\\|")

    row = board.loc[board["model"] == champion].iloc[0]
    head = (f"**Champion: {champion}** (experiment {name}; chosen on the validation origins among the non-baseline "
            f"models): test RMSE {cell(row.get('rmse'))}, validation RMSE {cell(row.get('validation_rmse'))}, "
            f"test bias {cell(row.get('bias'))}.\n\nLeaderboard (test means, best test RMSE first):\n\n")
    cols = [c for c in board.columns if c != "champion"]
    while True:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, r in board.iterrows():
            cells = [cell(r[c]) for c in cols]
            if r["model"] == champion:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        text = head + "\n".join(lines) + "\n"
        if len(text) <= max_chars or len(cols) <= 2:
            return text
        cols = cols[:-1]
