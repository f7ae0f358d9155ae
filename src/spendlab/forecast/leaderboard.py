"""The leaderboard of an experiment and the champion rule (validation only)."""

from __future__ import annotations

from typing import Any

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
