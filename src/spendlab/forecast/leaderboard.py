"""The leaderboard of an experiment, its champion (validation only) and whether leads are real.

The champion is chosen among the non-baseline models by a selection rule of
:mod:`spendlab.forecast.selection` (the experiment's ``selection.rule``) from their per-origin
validation RMSE. Test results are never used to choose; they are reported, with each model's test
RMSE difference to the best peer (``PEERS``, the best chosen on validation) and its 95% paired
bootstrap interval, and with the pick every other rule would have made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from spendlab.errors import ConfigError
from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
from spendlab.forecast.selection import (
    DEFAULT_RULE,
    ValidationErrors,
    choose,
    origins_won,
    pick_all,
    validation_errors,
)
from spendlab.models.registry import BASELINES, COMPLEXITY, PEERS
from spendlab.timing import timed

LEADERBOARD_COLUMNS: tuple[str, ...] = ("model", "rmse", "mae", "bias", "wape", "top10_capture",
                                        "validation_rmse", "champion")
#: Further columns, after LEADERBOARD_COLUMNS: ranking metrics and the lead over the best peer (test).
EXTRA_COLUMNS: tuple[str, ...] = ("gini_norm", "spearman", "decile_mape", "delta_rmse_vs_best_peer",
                                  "ci_low", "ci_high")

PREDICTION_COLUMNS: tuple[str, ...] = ("model", "cutoff", "target_period", "user_id", "y_true", "y_pred")


def _best_validation(board: pd.DataFrame) -> pd.Series:
    return board.sort_values(["validation_rmse", "model"]).iloc[0]


def _candidates(board: pd.DataFrame) -> pd.DataFrame:
    cands = board[~board["model"].isin(BASELINES)]
    if cands.empty:
        cands = board
    cands = cands[cands["validation_rmse"].notna()]
    if cands.empty:
        raise ConfigError("no model has a finite validation RMSE; cannot choose a champion")
    return cands


@dataclass
class Ranking:
    """The leaderboard, its champion and the bootstrap comparisons behind them (for the parent run)."""

    board: pd.DataFrame
    champion: str
    best_peer: str | None
    runner_up: str | None
    leads: dict[str, float] = field(default_factory=dict)
    rule: str = DEFAULT_RULE
    #: Every rule's pick (rule name -> model), on the same validation errors.
    picks: dict[str, str] = field(default_factory=dict)
    #: Validation origins the choice was made on, and on how many the champion was best.
    n_validation_origins: int = 0
    origins_won: int = 0


def _lead(boot_val: pd.DataFrame, boot_test: pd.DataFrame, board: pd.DataFrame, a: str, b: str, name: str,
          level: float) -> dict[str, float]:
    r = board.set_index("model")
    out: dict[str, float] = {}
    for split, boot, col in (("validation", boot_val, "validation_rmse"), ("test", boot_test, "rmse")):
        lo, hi = delta_interval(boot, a, b, level=level)
        out[f"{split}_delta_rmse_vs_{name}"] = float(r.loc[a, col] - r.loc[b, col])
        out[f"{split}_delta_rmse_vs_{name}_ci_low"] = lo
        out[f"{split}_delta_rmse_vs_{name}_ci_high"] = hi
    return out


def paired_bootstrap(preds: Mapping[str, pd.DataFrame], *, split: str, n_boot: int, seed: int) -> pd.DataFrame:
    """:func:`~spendlab.forecast.bootstrap.bootstrap_rmse`, without the draws when there is one model.

    A single model is only ever compared with itself, and the paired difference of a model with itself
    is 0 in every replicate (NaN when ``split`` has no rows), whatever the draws: the replicates are
    given as those zeros, and every interval read from them is the one the draws would give.

    Parameters
    ----------
    preds : mapping
        Model -> its backtest predictions (see ``bootstrap_rmse``).
    split : str
        ``validation`` or ``test``.
    n_boot, seed : int
        Replicates and the generator's seed.

    Returns
    -------
    pandas.DataFrame
        ``n_boot`` x models; for one model, only good for paired differences.
    """
    if len(preds) != 1:
        return bootstrap_rmse(preds, split=split, n_boot=n_boot, seed=seed)
    (name, first), = preds.items()
    value = 0.0 if (first["split"] == split).any() else np.nan
    return pd.DataFrame(np.full((n_boot, 1), value), columns=[name])


def rank_models(results: Mapping[str, Any], keys: Sequence[str], tuned: Mapping[str, bool], *,
                seed: int = 0, n_boot: int = 1000, level: float = 0.95, rule: str = DEFAULT_RULE,
                members: Sequence[str] = ()) -> Ranking:
    """Rank the models: one row per model, best test RMSE first.

    The rows hold test means, validation RMSE, coverage and the lead over the best peer; the champion
    is chosen by ``rule`` (:mod:`spendlab.forecast.selection`) on the per-origin validation RMSE of
    the non-baseline models. Returned with every rule's pick and the champion's lead over the
    runner-up and the best peer. ``members`` are the ensemble's members.
    """
    rows = []
    for key in keys:
        m = results[key].means
        rows.append({"model": key, "rmse": m.get("test_rmse"), "mae": m.get("test_mae"),
                     "bias": m.get("test_bias"), "wape": m.get("test_wape"),
                     "top10_capture": m.get("test_top10_capture"), "validation_rmse": m.get("validation_rmse"),
                     "gini_norm": m.get("test_gini_norm"), "spearman": m.get("test_spearman"),
                     "decile_mape": m.get("test_decile_mape"),
                     "interval_coverage_80": m.get("interval_coverage_80"), "tuned": tuned[key]})
    board = pd.DataFrame(rows)
    preds = {k: results[k].predictions for k in keys}
    with timed("bootstrap", f"{len(preds)} models x {n_boot}"):
        boot_val = paired_bootstrap(preds, split="validation", n_boot=n_boot, seed=seed)
        boot_test = paired_bootstrap(preds, split="test", n_boot=n_boot, seed=seed + 1)
    cands = list(_candidates(board)["model"])
    errors = validation_errors({k: results[k].per_origin for k in cands}, cands)
    table = ValidationErrors(errors, boot_val, COMPLEXITY, members=tuple(members), level=level)
    champion = choose(rule, table)
    board["champion"] = board["model"] == champion
    peers = board[board["model"].isin(PEERS) & board["validation_rmse"].notna()]
    best_peer = str(_best_validation(peers)["model"]) if not peers.empty else None
    deltas, lows, highs = [], [], []
    for key in board["model"]:
        if best_peer is None:
            deltas.append(np.nan), lows.append(np.nan), highs.append(np.nan)
            continue
        lo, hi = delta_interval(boot_test, key, best_peer, level=level)
        deltas.append(float(board.loc[board["model"] == key, "rmse"].iloc[0]
                            - board.loc[board["model"] == best_peer, "rmse"].iloc[0]))
        lows.append(lo), highs.append(hi)
    board["delta_rmse_vs_best_peer"], board["ci_low"], board["ci_high"] = deltas, lows, highs
    others = board[(board["model"] != champion) & board["model"].isin(errors.columns)]
    runner_up = str(_best_validation(others)["model"]) if not others.empty else None
    leads: dict[str, float] = {}
    if runner_up is not None:
        leads.update(_lead(boot_val, boot_test, board, champion, runner_up, "runner_up", level))
    if best_peer is not None and best_peer != champion:
        leads.update(_lead(boot_val, boot_test, board, champion, best_peer, "best_peer", level))
    board = board.sort_values(["rmse", "model"], ignore_index=True)
    board = board[[*LEADERBOARD_COLUMNS, *EXTRA_COLUMNS, "interval_coverage_80", "tuned"]]
    return Ranking(board=board, champion=champion, best_peer=best_peer, runner_up=runner_up, leads=leads,
                   rule=rule, picks=pick_all(table), n_validation_origins=len(errors),
                   origins_won=origins_won(errors, champion))


def leaderboard(results: Mapping[str, Any], keys: Sequence[str], tuned: Mapping[str, bool], *,
                seed: int = 0) -> tuple[pd.DataFrame, str]:
    """:func:`rank_models`' board and champion."""
    r = rank_models(results, keys, tuned, seed=seed)
    return r.board, r.champion


def test_predictions(results: Mapping[str, Any], keys: Sequence[str]) -> pd.DataFrame:
    """Every model's test-origin predictions, dates as dates."""
    preds = pd.concat([results[k].predictions.loc[results[k].predictions["split"] == "test",
                                                  list(PREDICTION_COLUMNS)] for k in keys], ignore_index=True)
    preds["cutoff"] = pd.to_datetime(preds["cutoff"]).dt.date
    preds["target_period"] = pd.to_datetime(preds["target_period"]).dt.date
    return preds
