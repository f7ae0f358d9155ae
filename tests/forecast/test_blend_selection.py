"""Fair champion selection: a blend is scored on validation origins it was not fitted on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.backtest import BacktestResult
from spendlab.forecast.blend import blend, ensemble_result, stack
from spendlab.forecast.leaderboard import rank_models
from spendlab.forecast.metrics import mean_metrics, origin_metrics
from spendlab.models.ensemble import convex_weights

D = dt.date
VAL = [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)]
TEST = [D(2024, 5, 31), D(2024, 6, 30)]
N = 2000


def result(key: str, y: dict[dt.date, np.ndarray], pred: dict[dt.date, np.ndarray]) -> BacktestResult:
    """A backtest result built from per-origin actuals and predictions (every user 'active')."""
    preds, rows = [], []
    for i, c in enumerate([*VAL, *TEST]):
        split = "validation" if c in VAL else "test"
        seg = np.full(N, "active")
        preds.append(pd.DataFrame({"model": key, "split": split, "cutoff": c, "target_period": c + dt.timedelta(days=1),
                                   "user_id": [f"u{j:03d}" for j in range(N)], "segment": seg,
                                   "y_true": y[c], "y_pred": pred[c]}))
        rows.append({"origin": i, "split": split, "cutoff": c, "target_period": c + dt.timedelta(days=1),
                     "n_users": N, "n_train": N, **origin_metrics(y[c], pred[c], seg)})
    per_origin = pd.DataFrame(rows)
    return BacktestResult(model_key=key, params={}, per_origin=per_origin,
                          predictions=pd.concat(preds, ignore_index=True), means=mean_metrics(per_origin))


@pytest.fixture(scope="module")
def lucky_members() -> dict[str, BacktestResult]:
    """``solid`` is a fair, noisy forecast everywhere. ``lucky_k`` equals the truth at validation origin
    k and is noise (with the right mean) at every other origin: fitted on all validation origins, a
    blend of the lucky members looks better than ``solid``, but that skill does not carry over."""
    rng = np.random.default_rng(11)
    y = {c: rng.gamma(0.6, 50.0, N) for c in [*VAL, *TEST]}
    solid = {c: np.clip(y[c] + rng.normal(0, 10.0, N), 0, None) for c in y}
    members = {"solid": result("solid", y, solid)}
    for k, lucky_at in enumerate(VAL):
        pred = {c: (y[c].copy() if c == lucky_at else rng.permutation(y[c])) for c in y}
        members[f"lucky{k}"] = result(f"lucky{k}", y, pred)
    return members


def test_an_in_sample_blend_would_beat_the_solid_model_on_validation(lucky_members: dict) -> None:
    names = list(lucky_members)
    val_rows = lambda r, col: r.predictions.loc[r.predictions["split"] == "validation", col].to_numpy()  # noqa: E731
    w = convex_weights(pd.DataFrame({m: val_rows(lucky_members[m], "y_pred") for m in names}),
                       val_rows(lucky_members["solid"], "y_true"))
    in_sample = ensemble_result(lucky_members, w)
    assert in_sample.means["validation_rmse"] < lucky_members["solid"].means["validation_rmse"]


def test_the_cross_fitted_blend_loses_on_validation_and_the_solid_model_is_champion(lucky_members: dict) -> None:
    names = list(lucky_members)
    bl = blend(lucky_members, names, max_validation_bias=1.0)
    assert bl.result.means["validation_rmse"] > lucky_members["solid"].means["validation_rmse"]
    for c, w in bl.fold_weights.items():  # each origin's weights were fitted without it
        lucky_here = names[1 + VAL.index(c)]
        assert w[lucky_here] < 0.05
    results = {**lucky_members, "ensemble": bl.result}
    ranking = rank_models(results, [*names, "ensemble"], {k: False for k in [*names, "ensemble"]}, n_boot=200)
    assert ranking.champion == "solid"


def test_convex_weights_are_non_negative_sum_to_one_and_recover_a_known_mix() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.gamma(1.0, 10.0, (3, 500))
    y = 0.7 * a + 0.3 * b
    w = convex_weights(pd.DataFrame({"a": a, "b": b, "c": c}), y)
    assert w == pytest.approx({"a": 0.7, "b": 0.3, "c": 0.0}, abs=1e-9)
    w = convex_weights(pd.DataFrame({"a": a, "c": c}), 3.0 * a)  # no rescaling to the total
    assert sum(w.values()) == pytest.approx(1.0) and min(w.values()) >= 0


def test_one_validation_origin_is_scored_with_equal_weights(lucky_members: dict) -> None:
    one = {k: BacktestResult(model_key=k, params={}, per_origin=r.per_origin[r.per_origin["cutoff"] != VAL[0]]
                             .assign(split=lambda f: np.where(f["cutoff"].isin(VAL[1:2]), "validation", "test")),
                             predictions=r.predictions[r.predictions["cutoff"] != VAL[0]]
                             .assign(split=lambda f: np.where(f["cutoff"].isin(VAL[1:2]), "validation", "test")))
           for k, r in lucky_members.items()}
    bl = blend(one, list(one), max_validation_bias=1.0)
    assert bl.fold_weights[VAL[1]] == pytest.approx({k: 0.25 for k in one})


# --- the stacking ensemble: a meta-learner per segment, also scored out of sample ---------------------


def test_the_cross_fitted_stack_loses_on_validation_and_the_solid_model_is_champion(lucky_members: dict) -> None:
    names = list(lucky_members)
    st = stack(lucky_members, names, max_validation_bias=1.0)
    in_sample = {"all": st.weights["all"]}
    scored_in_sample = _composed_in_sample(lucky_members, in_sample)
    assert scored_in_sample < lucky_members["solid"].means["validation_rmse"]  # fitted in sample it would win
    assert st.result.means["validation_rmse"] > lucky_members["solid"].means["validation_rmse"]
    for c, w in st.fold_weights.items():
        lucky_here = names[1 + VAL.index(c)]
        assert all(seg_w[lucky_here] < 0.05 for seg_w in w.values())
    results = {**lucky_members, "stack": st.result}
    ranking = rank_models(results, [*names, "stack"], {k: False for k in [*names, "stack"]}, n_boot=200)
    assert ranking.champion == "solid"


def _composed_in_sample(members: dict, weights: dict) -> float:
    res = ensemble_result(members, weights["all"])
    return res.means["validation_rmse"]


def _segmented(key: str, y: dict, pred: dict, seg: np.ndarray) -> BacktestResult:
    res = result(key, y, pred)
    res.predictions["segment"] = np.tile(seg, len(y))
    return res


def test_the_stack_learns_which_member_carries_each_segment() -> None:
    """``cbm`` is exact on the lapsed users and noise on the active ones, ``ml`` the reverse: one convex
    blend cannot be exact anywhere, the stack's per-segment weights are exact everywhere (out of sample)."""
    rng = np.random.default_rng(5)
    seg = np.where(np.arange(N) % 3 == 0, "lapsed", "active")
    y = {c: rng.gamma(0.6, 50.0, N) for c in [*VAL, *TEST]}
    noise = {c: rng.permutation(y[c]) for c in y}
    cbm = {c: np.where(seg == "lapsed", y[c], noise[c]) for c in y}
    ml = {c: np.where(seg == "active", y[c], noise[c]) for c in y}
    members = {"cbm": _segmented("cbm", y, cbm, seg), "ml": _segmented("ml", y, ml, seg)}
    st = stack(members, ["cbm", "ml"], max_validation_bias=1.0)
    assert st.weights["lapsed"] == pytest.approx({"cbm": 1.0, "ml": 0.0}, abs=1e-9)
    assert st.weights["active"] == pytest.approx({"cbm": 0.0, "ml": 1.0}, abs=1e-9)
    assert st.result.means["validation_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert st.result.means["test_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert blend(members, ["cbm", "ml"], max_validation_bias=1.0).result.means["test_rmse"] > 10.0


def test_a_segment_with_too_few_spenders_uses_the_pooled_weights() -> None:
    rng = np.random.default_rng(6)
    seg = np.where(np.arange(N) < 30, "new", "active")  # 30 new users a origin: < 100 spenders over 3 origins
    y = {c: rng.gamma(0.6, 50.0, N) for c in [*VAL, *TEST]}
    a = {c: y[c] + rng.normal(0, 5.0, N) for c in y}
    b = {c: rng.permutation(y[c]) for c in y}
    st = stack({"a": _segmented("a", y, a, seg), "b": _segmented("b", y, b, seg)}, ["a", "b"], max_validation_bias=1.0)
    assert "new" not in st.weights and "active" in st.weights
    new_rows = st.result.predictions["segment"] == "new"
    pooled = st.weights["all"]
    expect = {c: pooled["a"] * a[c][:30] + pooled["b"] * b[c][:30] for c in TEST}
    got = st.result.predictions[new_rows & (st.result.predictions["split"] == "test")]
    np.testing.assert_allclose(got["y_pred"].to_numpy(), np.clip(np.concatenate([expect[c] for c in TEST]), 0, None))
