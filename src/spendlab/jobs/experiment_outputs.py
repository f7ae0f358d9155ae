"""The experiment's outputs: the files it writes, its report and its parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab.forecast.backtest import BacktestResult
from spendlab.forecast.report import leaderboard_markdown, report_tables
from spendlab.forecast.report_render import render_report
from spendlab.forecast.selection import selection_note, selection_table
from spendlab.io.atomic import atomic_path, atomic_write_text
from spendlab.io.safe_out import prepare_output_dir
from spendlab.timing import timed
from spendlab.tracking import results
from spendlab.tracking.trust import CANDIDATE_TAG, candidate_digest

__all__ = ["log_parent", "render_experiment_report", "write_outputs"]


def render_experiment_report(name: str, r: Any, results: dict[str, BacktestResult], keys: list[str], *, notes: dict[str, str]) -> str:
    """``report.html``'s text: the report's tables (pure) rendered with their figures."""
    with timed("report"):
        predictions = pd.concat([results[k].predictions for k in keys], ignore_index=True)
        tables = report_tables(name, r.board, r.champion, predictions, {k: results[k].means for k in keys},
                               notes=notes, selection=selection_table(r.picks, r.board, champion=r.champion),
                               selection_note=selection_note(r.rule, r.champion, r.runner_up,
                                                             r.n_validation_origins, r.origins_won))
        return render_report(tables)


def log_parent(rec: Any, ranking: Any, paths: dict[str, Path], weights: dict[str, float]) -> None:
    """Log the parent run: champion, leads, leaderboard, report, every candidate (tracking)."""
    with timed("mlflow", "parent"):
        parent, board, champion = rec.parent, ranking.board, ranking.champion
        parent.tags({"champion": champion, "champion_run_id": rec.child_ids.get(champion, ""),
                     "runner_up": ranking.runner_up or "", "best_peer": ranking.best_peer or "",
                     "mlflow.note.content": leaderboard_markdown(board, champion, name=rec.cfg.name)})
        parent.metrics({f"champion_{c}": float(board.loc[board["champion"], c].iloc[0])
                        for c in ("rmse", "mae", "bias", "wape", "top10_capture", "validation_rmse",
                                  "gini_norm", "spearman", "decile_mape")})
        parent.metrics(ranking.leads)  # paired bootstrap over users, stratified by origin (95%)
        results.log_selection(parent, rule=ranking.rule, n_origins=ranking.n_validation_origins,
                              origins_won=ranking.origins_won,
                              choices=selection_table(ranking.picks, board, champion=champion))
        parent.table(board, "leaderboard.csv")
        parent.artifact(paths["intervals"])
        parent.artifact(paths["report"])
        for key, cand in rec.candidates.items():
            parent.text(cand.to_json(), f"candidates/{key}.json")
        champion_json = rec.candidates[champion].to_json()
        parent.text(champion_json, "candidate.json")  # the champion's: what promote registers
        parent.tag(CANDIDATE_TAG, candidate_digest(champion_json))  # promote refuses other bytes
        if weights:
            parent.params({f"ensemble_weight.{m}": w for m, w in weights.items()})


def write_outputs(out_dir: Path, *, board: pd.DataFrame, predictions: pd.DataFrame,
                  intervals: dict[str, Any], report: str | None = None) -> dict[str, Path]:
    """Write the experiment's outputs, each atomically.

    ``leaderboard.csv``, ``predictions.parquet`` (test origins, with ``p_spend, median, lower, upper``),
    ``intervals.json`` (each model's calibration) and (given its text) the reviewers' ``report.html``.
    """
    prepare_output_dir(out_dir)  # checked and marked as spendlab's (spendlab.io.safe_out)
    paths = {"leaderboard": out_dir / "leaderboard.csv", "predictions": out_dir / "predictions.parquet",
             "intervals": out_dir / "intervals.json"}
    with atomic_path(paths["leaderboard"]) as tmp:
        board.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(paths["predictions"]) as tmp:
        predictions.to_parquet(tmp, index=False)
    atomic_write_text(paths["intervals"], json.dumps(intervals, indent=2) + "\n")
    if report is not None:
        paths["report"] = out_dir / "report.html"
        atomic_write_text(paths["report"], report)
    return paths
