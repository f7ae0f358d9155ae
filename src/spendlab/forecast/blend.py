"""The ensemble's backtest, composed from its members' backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.forecast.backtest import BacktestResult
from spendlab.forecast.metrics import mean_metrics, origin_metrics


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
