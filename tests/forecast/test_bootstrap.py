"""The paired bootstrap of RMSE differences and the champion rule that uses it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
from spendlab.forecast.selection import ValidationErrors, choose
from spendlab.models.registry import COMPLEXITY


def preds(y: np.ndarray, p: np.ndarray, cutoffs: np.ndarray, split: str = "validation") -> pd.DataFrame:
    return pd.DataFrame({"split": split, "cutoff": cutoffs, "user_id": [f"u{i}" for i in range(len(y))],
                         "y_true": y, "y_pred": p})


def pick_champion(board: pd.DataFrame, boot: pd.DataFrame | None = None) -> str:
    """The pick of the rule the test is about, from the board's mean validation RMSE (one row of errors)."""
    errors = pd.DataFrame([board.set_index("model")["validation_rmse"].astype(float)])
    return choose("simpler_in_interval", ValidationErrors(errors, boot, COMPLEXITY, level=0.95))


def two_models(noise_b: float, n: int = 600, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(0.5, 40.0, n)
    cut = np.where(np.arange(n) < n // 2, dt.date(2024, 1, 31), dt.date(2024, 2, 29))
    return {"a": preds(y, y + rng.normal(0, 10, n), cut), "b": preds(y, y + rng.normal(0, noise_b, n), cut)}


def test_bootstrap_is_seeded_and_centred_on_the_observed_difference() -> None:
    p = two_models(12.0)
    boot = bootstrap_rmse(p, split="validation", n_boot=400, seed=5)
    again = bootstrap_rmse(p, split="validation", n_boot=400, seed=5)
    pd.testing.assert_frame_equal(boot, again)
    observed = np.mean([np.sqrt(np.mean((g["y_pred"] - g["y_true"]) ** 2)) for _, g in p["a"].groupby("cutoff")]) - \
        np.mean([np.sqrt(np.mean((g["y_pred"] - g["y_true"]) ** 2)) for _, g in p["b"].groupby("cutoff")])
    lo, hi = delta_interval(boot, "a", "b")
    assert lo < observed < hi
    assert (boot["a"] - boot["b"]).mean() == pytest.approx(observed, abs=0.3)


def test_a_clear_lead_excludes_zero_and_a_tiny_one_does_not() -> None:
    lo, hi = delta_interval(bootstrap_rmse(two_models(30.0), split="validation", n_boot=300), "a", "b")
    assert hi < 0
    lo, hi = delta_interval(bootstrap_rmse(two_models(10.05), split="validation", n_boot=300), "a", "b")
    assert lo < 0 < hi


def test_the_champion_rule_prefers_the_simpler_model_inside_the_interval() -> None:
    # lightgbm (complexity 5) is marginally best on validation; bgnbd_gg (3) is within noise.
    p = two_models(10.05)
    boot = bootstrap_rmse({"lightgbm": p["a"], "bgnbd_gg": p["b"]}, split="validation", n_boot=300)
    board = pd.DataFrame({"model": ["lightgbm", "bgnbd_gg"], "validation_rmse": [10.0, 10.05]})
    assert pick_champion(board) == "lightgbm"
    assert pick_champion(board, boot) == "bgnbd_gg"
    # A significant lead keeps the complex model.
    p = two_models(30.0)
    boot = bootstrap_rmse({"lightgbm": p["a"], "bgnbd_gg": p["b"]}, split="validation", n_boot=300)
    assert pick_champion(board.assign(validation_rmse=[10.0, 30.0]), boot) == "lightgbm"


@pytest.mark.parametrize("split", ["validation", "test"])
def test_one_model_skips_the_draws_and_gives_the_intervals_the_draws_give(split: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from spendlab.forecast import leaderboard

    one = {"a": two_models(0.0)["a"]}  # every row is a validation row
    drawn = bootstrap_rmse(one, split=split, n_boot=200, seed=3)
    calls: list[int] = []
    monkeypatch.setattr(leaderboard, "bootstrap_rmse", lambda *a, **k: calls.append(1))
    fast = leaderboard.paired_bootstrap(one, split=split, n_boot=200, seed=3)
    assert calls == [] and fast.shape == drawn.shape and list(fast.columns) == ["a"]
    want, got = delta_interval(drawn, "a", "a"), delta_interval(fast, "a", "a")
    # validation: (0, 0) both ways; test (no rows): NaN both ways
    assert np.allclose(want, got, equal_nan=True) and (split == "validation") == np.isfinite(got).all()


def test_two_models_still_draw() -> None:
    from spendlab.forecast.leaderboard import paired_bootstrap

    both = two_models(0.5)
    pd.testing.assert_frame_equal(paired_bootstrap(both, split="validation", n_boot=100, seed=2),
                                  bootstrap_rmse(both, split="validation", n_boot=100, seed=2))
