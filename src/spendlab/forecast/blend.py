"""The ensemble's backtest, composed from its members' backtests, scored out of sample.

Blend weights (and the bias gate that picks the members) are fitted on validation origins, so the
ensemble's own validation score must not be measured on the rows that fitted them: an in-sample
blend always looks at least as good as its best member and wins the champion choice unfairly.
Each validation origin is therefore scored with weights fitted on the *other* validation origins
(leave-one-origin-out cross-fitting); the test origins use the weights fitted on all of them.

The weights are convex (non-negative, summing to 1): the blend's level is its members' level, each
trained on data before its cutoff. No rescaling to a validation total: that carried one season's level
(December's uplift) into the test months.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.forecast.backtest import BacktestResult
from spendlab.forecast.metrics import mean_metrics, origin_metrics
from spendlab.models.ensemble import POOLED, convex_weights


def ensemble_result(members: Mapping[str, BacktestResult], weights: Mapping[str, float] | None = None, *,
                    key: str = "ensemble",
                    weights_by_cutoff: Mapping[dt.date, Mapping[str, float]] | None = None) -> BacktestResult:
    """Compose the ensemble's backtest from its members' predictions.

    The members are deterministic, so this is identical to refitting each member inside
    :class:`~spendlab.models.ensemble.EnsembleRegressor`.

    ``weights_by_cutoff[c]`` (when given for ``c``) replaces ``weights`` at origin ``c``: the
    cross-fitted validation weights.
    """
    by_cutoff = dict(weights_by_cutoff or {})

    def weight_of(cutoff: dt.date, segment: str) -> Mapping[str, float] | None:
        return by_cutoff.get(cutoff, weights)

    return _composed(members, weight_of, key=key, params={"members": list(members), "weights": dict(weights or {})})


def _composed(members: Mapping[str, BacktestResult],
              weight_of: Callable[[dt.date, str], Mapping[str, float] | None], *, key: str,
              params: dict[str, object]) -> BacktestResult:
    """Compose a combination's backtest: at each origin and segment, ``weight_of(cutoff, segment)`` over the members."""
    first = next(iter(members.values()))
    base = first.predictions[["split", "cutoff", "target_period", "user_id", "segment", "y_true"]].copy()
    for m, other in members.items():
        if not other.predictions["user_id"].equals(first.predictions["user_id"]):
            raise SpendlabError(f"{key} member {m} predicted a different population")
    cutoffs, segments = base["cutoff"].to_numpy(), base["segment"].to_numpy()
    pred = np.zeros(len(base))
    for c in pd.unique(cutoffs):
        at_c = cutoffs == c
        for seg in pd.unique(segments[at_c]):
            w = weight_of(c, str(seg))
            if w is None:
                raise SpendlabError(f"no {key} weights for origin {c}")
            rows = at_c & (segments == seg)
            for m, wm in w.items():
                if wm > 0:
                    pred[rows] += wm * members[m].predictions["y_pred"].to_numpy()[rows]
    base.insert(0, "model", key)
    base["y_pred"] = np.clip(pred, 0.0, None)
    rows_out = []
    for (split, cutoff), g in base.groupby(["split", "cutoff"], sort=False):
        po = first.per_origin.loc[first.per_origin["cutoff"] == cutoff].iloc[0]
        rows_out.append({"origin": int(po["origin"]), "split": split, "cutoff": cutoff,
                         "target_period": po["target_period"], "n_users": len(g), "n_train": int(po["n_train"]),
                         **origin_metrics(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["segment"].to_numpy())})
    per_origin = pd.DataFrame(rows_out).sort_values("origin", ignore_index=True)
    return BacktestResult(model_key=key, params=params, per_origin=per_origin, predictions=base,
                          means=mean_metrics(per_origin))


@dataclass(frozen=True)
class Blend:
    """The ensemble's backtest, its weights over every configured member and the members left out.

    ``weights`` / ``left_out`` are fitted on every validation origin (they serve the test origins and
    deployment); ``fold_weights[c]`` are the weights that scored validation origin ``c``, fitted without it.
    """

    result: BacktestResult
    weights: dict[str, float]
    left_out: list[str]
    fold_weights: dict[dt.date, dict[str, float]] = field(default_factory=dict)


def _rows(res: BacktestResult, cutoffs: Sequence[dt.date], col: str) -> np.ndarray:
    return res.predictions.loc[res.predictions["cutoff"].isin(list(cutoffs)), col].to_numpy()


def _mean_bias(res: BacktestResult, cutoffs: Sequence[dt.date]) -> float:
    po = res.per_origin
    vals = po.loc[po["cutoff"].isin(list(cutoffs)), "bias"].to_numpy(dtype=np.float64)
    return float(np.nanmean(vals)) if len(vals) and np.isfinite(vals).any() else 0.0


def fit_blend(results: Mapping[str, BacktestResult], members: Sequence[str], cutoffs: Sequence[dt.date], *,
              max_validation_bias: float) -> tuple[dict[str, float], list[str]]:
    """(convex weights over ``members``, members left out), fitted on the rows of ``cutoffs`` only.

    Members whose mean |bias| over ``cutoffs`` exceeds ``max_validation_bias`` are left out (when all
    of them would be, all are kept).
    """
    kept = [m for m in members if abs(_mean_bias(results[m], cutoffs)) <= max_validation_bias]
    if not kept:  # every member fails the gate: blend them all rather than nothing
        kept = list(members)
    preds = pd.DataFrame({m: _rows(results[m], cutoffs, "y_pred") for m in kept})
    y = _rows(results[kept[0]], cutoffs, "y_true")
    w = convex_weights(preds, y)
    return {m: w.get(m, 0.0) for m in members}, [m for m in members if m not in kept]


def blend(results: Mapping[str, BacktestResult], members: Sequence[str], *, max_validation_bias: float) -> Blend:
    """Convex blend of ``members`` fitted on the validation origins, scored out of sample on them.

    With one validation origin nothing can be held out: it is scored with equal weights over every
    member (a combination fitted on nothing), and the test origins use the weights fitted on it.
    """
    first = results[members[0]]
    val = list(pd.unique(first.predictions.loc[first.predictions["split"] == "validation", "cutoff"]))
    if not val:
        raise SpendlabError("the ensemble needs at least one validation origin to fit its weights")
    weights, left_out = fit_blend(results, members, val, max_validation_bias=max_validation_bias)
    folds: dict[dt.date, dict[str, float]] = {}
    for c in val:
        others = [o for o in val if o != c]
        if others:
            folds[c], _ = fit_blend(results, members, others, max_validation_bias=max_validation_bias)
        else:
            folds[c] = {m: 1.0 / len(members) for m in members}
    res = ensemble_result({m: results[m] for m in members}, weights, weights_by_cutoff=folds)
    return Blend(result=res, weights=weights, left_out=left_out, fold_weights=folds)


#: A segment's own stacking weights need this many validation rows with spend; else it uses the pooled ones.
MIN_SEGMENT_SPENDERS = 100


@dataclass(frozen=True)
class Stack:
    """Backtest the stacking ensemble and fit its meta-learner.

    Convex weights per segment (``"all"`` = pooled, for segments with too few validation spenders),
    fitted on every validation origin; ``fold_weights[c]`` scored validation origin ``c``, fitted
    without it.
    """

    result: BacktestResult
    weights: dict[str, dict[str, float]]
    left_out: list[str]
    fold_weights: dict[dt.date, dict[str, dict[str, float]]] = field(default_factory=dict)


def fit_stack(results: Mapping[str, BacktestResult], members: Sequence[str], cutoffs: Sequence[dt.date], *,
              max_validation_bias: float) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Fit ({segment: convex weights}, members left out) on the rows of ``cutoffs`` only.

    First the blend's bias gate and pooled weights (``POOLED``), then each segment's own weights on its
    rows when it has at least :data:`MIN_SEGMENT_SPENDERS` users with spend there.
    """
    pooled, left_out = fit_blend(results, members, cutoffs, max_validation_bias=max_validation_bias)
    kept = [m for m in members if m not in left_out]
    seg = _rows(results[kept[0]], cutoffs, "segment")
    y = _rows(results[kept[0]], cutoffs, "y_true")
    preds = pd.DataFrame({m: _rows(results[m], cutoffs, "y_pred") for m in kept})
    out = {POOLED: pooled}
    for s in pd.unique(seg):
        rows = seg == s
        if (y[rows] > 0).sum() >= MIN_SEGMENT_SPENDERS:
            w = convex_weights(preds[rows], y[rows])
            out[str(s)] = {m: w.get(m, 0.0) for m in members}
    return out, left_out


def stack(results: Mapping[str, BacktestResult], members: Sequence[str], *, max_validation_bias: float) -> Stack:
    """Fit the segment-weighted stack of ``members``.

    Its meta-learner is fitted on the validation origins and scored out of sample on them (leave one
    origin out); with one validation origin: equal weights there.
    """
    first = results[members[0]]
    val = list(pd.unique(first.predictions.loc[first.predictions["split"] == "validation", "cutoff"]))
    if not val:
        raise SpendlabError("the stack needs at least one validation origin to fit its meta-learner")
    weights, left_out = fit_stack(results, members, val, max_validation_bias=max_validation_bias)
    folds: dict[dt.date, dict[str, dict[str, float]]] = {}
    for c in val:
        others = [o for o in val if o != c]
        folds[c] = (fit_stack(results, members, others, max_validation_bias=max_validation_bias)[0] if others
                    else {POOLED: {m: 1.0 / len(members) for m in members}})

    def weight_of(cutoff: dt.date, segment: str) -> Mapping[str, float]:
        w = folds.get(cutoff, weights)
        return w.get(segment, w[POOLED])

    res = _composed({m: results[m] for m in members}, weight_of, key="stack",
                    params={"members": list(members), "weights": weights})
    return Stack(result=res, weights=weights, left_out=left_out, fold_weights=folds)
