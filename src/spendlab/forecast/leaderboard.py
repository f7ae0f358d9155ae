"""The leaderboard of an experiment and the champion rule (validation only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from spendlab.errors import ConfigError
from spendlab.models.registry import BASELINES

LEADERBOARD_COLUMNS: tuple[str, ...] = ("model", "rmse", "mae", "bias", "wape", "top10_capture",
                                        "validation_rmse", "champion")


PREDICTION_COLUMNS: tuple[str, ...] = ("model", "cutoff", "target_period", "user_id", "y_true", "y_pred")


def pick_champion(leaderboard: "Any") -> str:
    """The non-baseline model with the lowest mean validation RMSE (test results are never used)."""

    cands = leaderboard[~leaderboard["model"].isin(BASELINES)]
    if cands.empty:
        cands = leaderboard
    cands = cands[cands["validation_rmse"].notna()]
    if cands.empty:
        raise ConfigError("no model has a finite validation RMSE; cannot choose a champion")
    return str(cands.sort_values(["validation_rmse", "model"]).iloc[0]["model"])


def leaderboard(results: Mapping[str, Any], keys: Sequence[str], tuned: Mapping[str, bool]) -> tuple[pd.DataFrame, str]:
    """One row per model (test means, validation RMSE, coverage), best test RMSE first, and the champion."""
    rows = []
    for key in keys:
        m = results[key].means
        rows.append({"model": key, "rmse": m.get("test_rmse"), "mae": m.get("test_mae"),
                     "bias": m.get("test_bias"), "wape": m.get("test_wape"),
                     "top10_capture": m.get("test_top10_capture"), "validation_rmse": m.get("validation_rmse"),
                     "interval_coverage_80": m.get("interval_coverage_80"), "tuned": tuned[key]})
    board = pd.DataFrame(rows)
    champion = pick_champion(board)
    board["champion"] = board["model"] == champion
    board = board.sort_values(["rmse", "model"], ignore_index=True)
    return board[[*LEADERBOARD_COLUMNS, "interval_coverage_80", "tuned"]], champion


def test_predictions(results: Mapping[str, Any], keys: Sequence[str]) -> pd.DataFrame:
    """Every model's test-origin predictions, dates as dates."""
    preds = pd.concat([results[k].predictions.loc[results[k].predictions["split"] == "test",
                                                  list(PREDICTION_COLUMNS)] for k in keys], ignore_index=True)
    preds["cutoff"] = pd.to_datetime(preds["cutoff"]).dt.date
    preds["target_period"] = pd.to_datetime(preds["target_period"]).dt.date
    return preds
