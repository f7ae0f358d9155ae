"""The ensemble's backtest, composed from its members' backtests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.forecast.backtest import BacktestResult
from spendlab.forecast.metrics import mean_metrics, origin_metrics
from spendlab.models.ensemble import nnls_weights


def ensemble_result(members: dict[str, BacktestResult], weights: dict[str, float], *,
                    key: str = "ensemble") -> BacktestResult:
    """The ensemble's backtest composed from its members' predictions (deterministic members, so
    identical to refitting each member inside :class:`~spendlab.models.ensemble.EnsembleRegressor`)."""
    first = next(iter(members.values()))
    base = first.predictions[["split", "cutoff", "target_period", "user_id", "segment", "y_true"]].copy()
    pred = np.zeros(len(base))
    for m, w in weights.items():
        other = members[m].predictions
        if not other["user_id"].equals(first.predictions["user_id"]):
            raise SpendlabError(f"ensemble member {m} predicted a different population")
        pred += w * other["y_pred"].to_numpy()
    base.insert(0, "model", key)
    base["y_pred"] = np.clip(pred, 0.0, None)
    rows = []
    for i, ((split, cutoff), g) in enumerate(base.groupby(["split", "cutoff"], sort=False)):
        po = first.per_origin.loc[first.per_origin["cutoff"] == cutoff].iloc[0]
        rows.append({"origin": int(po["origin"]), "split": split, "cutoff": cutoff,
                     "target_period": po["target_period"], "n_users": len(g), "n_train": int(po["n_train"]),
                     **origin_metrics(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["segment"].to_numpy())})
    per_origin = pd.DataFrame(rows).sort_values("origin", ignore_index=True)
    return BacktestResult(model_key=key, params={"members": list(weights), "weights": dict(weights)},
                          per_origin=per_origin, predictions=base, means=mean_metrics(per_origin))


@dataclass(frozen=True)
class Blend:
    """The ensemble's backtest, its weights over every configured member and the members left out."""

    result: BacktestResult
    weights: dict[str, float]
    left_out: list[str]


def _split(res: BacktestResult, split: str, col: str) -> np.ndarray:
    return res.predictions.loc[res.predictions["split"] == split, col].to_numpy()


def blend(results: Mapping[str, BacktestResult], members: Sequence[str], *, max_validation_bias: float) -> Blend:
    """NNLS weights of ``members`` fitted on the validation origins, and the blended backtest.

    Members whose mean validation |bias| exceeds ``max_validation_bias`` are left out (when all of them
    would be, all are kept); all-zero weights fall back to equal ones.
    """
    kept = {m: results[m] for m in members if abs(results[m].means.get("validation_bias", 0.0)) <= max_validation_bias}
    left_out = [m for m in members if m not in kept]
    if not kept:  # every member fails the gate: blend them all rather than nothing
        kept, left_out = {m: results[m] for m in members}, []
    val_preds = pd.DataFrame({m: _split(r, "validation", "y_pred") for m, r in kept.items()})
    y_val = _split(next(iter(kept.values())), "validation", "y_true")
    weights = nnls_weights(val_preds, y_val)
    if not any(w > 0 for w in weights.values()):
        weights = {m: 1.0 / len(kept) for m in kept}
    res = ensemble_result(kept, {m: w for m, w in weights.items() if w > 0})
    return Blend(result=res, weights={m: weights.get(m, 0.0) for m in members}, left_out=left_out)
