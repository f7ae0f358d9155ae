"""The estimate before the actuals, on a stable world long enough to learn its season from.

A production team monitors its champion, chosen by an experiment. Here the world runs 36 months
(2023-01 to 2025-12), the experiment compares a ridge, the seasonal naive forecast and ``bgnbd_seasonal``
on every earlier origin (``train_origins: all``), validates on 2024-07 to 2024-09 (the interval and
``p_spend`` calibration is fitted there), tests on 2024-10 to 2024-12, and the replay refits the
champion at each month end of 2025 and monitors the next month with ``spendlab monitor``'s own code.
The estimate of each month's total and interval coverage, made from the champion's scores before any
actual is known, is compared with the realized value's 95% bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

import spendlab.jobs.replay as replay_job
from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.replay import plan_replay, run_policies
from tests.jobs.monitor_worlds import (
    bayes_limit_totals,
    established_month_noise,
    oracle_totals,
    true_coverage,
    world_champion,
)

pytestmark = pytest.mark.slow

WORLD = {"users": 2000, "months": 36, "start": "2023-01-01"}
Replay = tuple[Path, object, pd.DataFrame, dict]


def _champion_replay(root: Path, seed: int = 5, store: Callable[[Path], str] | None = None,
                     ) -> tuple[object, pd.DataFrame]:
    data = root / "tx.parquet"
    synth_transactions(data, **WORLD, seed=seed, oracle=True)
    exp = {"name": "seasonworld", "dataset": {"input": str(data), "format": "generic"}, "freq": "month",
           "horizon": 1, "train_origins": "all", "validation": {"start": "2024-07-31", "end": "2024-09-30"},
           "test": {"start": "2024-10-31", "end": "2024-12-31"},
           "models": ["ridge", "seasonal_naive", "bgnbd_seasonal"]}
    path, cand, backtest = world_champion(root, exp, store=store)
    table = run_policies(plan_replay(str(path), first="2025-01", last="2025-12", policies="monthly"), cand,
                         backtest=backtest)
    return cand, table.set_index("period")


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> Callable[[int], Replay]:
    """The champion's replay on the world of a seed, run once per seed for the module."""
    done: dict[int, Replay] = {}

    def get(seed: int) -> Replay:
        if seed not in done:
            root = tmp_path_factory.mktemp(f"seed{seed}")
            scores: dict = {}  # each month's scores, as the replay scored them
            score = replay_job._score

            def keep(champ: object, store: object, cutoff: object, *rest: object) -> tuple[pd.DataFrame, dict]:
                scores[cutoff] = (out := score(champ, store, cutoff, *rest))[0]  # type: ignore[arg-type]
                return out

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(replay_job, "_score", keep)
                done[seed] = (root, *_champion_replay(root, seed, mlflow_store), scores)
        return done[seed]

    return get


def test_the_champions_estimates_lie_in_the_realized_intervals(replay: Callable[[int], Replay]) -> None:
    tmp_path, cand, t, _ = replay(5)
    assert cand.model_key == "bgnbd_seasonal"  # the experiment's pick: the model that learns the season
    assert len(t) == 12 and "retrain" not in set(t["verdict"]), t[["verdict", "reasons"]]
    truth = oracle_totals(tmp_path, t.index)
    # The realized total's interval holds the world's true expected total every month (it is sound).
    assert ((t["realized_total_low"] <= truth) & (truth <= t["realized_total_high"])).all(), (truth, t)
    real_vs_truth = (t["realized_total"] / truth - 1).abs()
    assert real_vs_truth.max() < 0.075  # measured: 6.8% at most (2,000 users: a month's total is noisy)
    # Total: inside the realized interval in 11 of 12 months (measured; 10 with last year's ratio of
    # ratios as the seasonal level; the 3-origin ridge of test_monitor_shift: 5 of 12). The miss is the
    # model's error of the true total (June 10% high: the seasonal level is June 2024's ratio, the only
    # June with established customers, itself as noisy as a realized month), not the realized interval's.
    inside = (t["realized_total_low"] <= t["expected_total"]) & (t["expected_total"] <= t["realized_total_high"])
    assert inside.sum() >= 11, inside
    model_vs_truth = (t["expected_total"] / truth - 1).abs()
    assert (model_vs_truth[~inside] > real_vs_truth[~inside]).all(), (model_vs_truth, real_vs_truth)
    assert model_vs_truth.max() < 0.11  # measured: 9.8% at most (the 3-origin ridge: 41%)
    # The estimate's own 95% interval holds the realized total every month.
    assert ((t["expected_total_low"] <= t["realized_total"]) & (t["realized_total"] <= t["expected_total_high"])).all()
    # Coverage: inside every month (the 3-origin ridge: 6 of 12). The gap realized - expected has both
    # signs and stays within 0.02 (measured: 0.013 at most): p_spend (isotonic on the validation
    # origins) shows no systematic error to recalibrate. (Calibrated on 2024-04..06 instead, an older
    # quarter, 10 of 12 months were inside here, and 3 of 12 on the world of seed 6: see docs/monitoring.md.)
    cov_in = (t["interval_coverage_low"] <= t["expected_coverage"]) & (t["expected_coverage"] <= t["interval_coverage_high"])
    assert cov_in.all(), t[["expected_coverage", "interval_coverage", "interval_coverage_low", "interval_coverage_high"]]
    gap = t["interval_coverage"] - t["expected_coverage"]
    assert (gap > 0).any() and (gap < 0).any() and gap.abs().max() < 0.02, gap


def _rms(x: pd.Series) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


@pytest.mark.parametrize("seed", [0, 5, 6, 7])
def test_twelve_of_twelve_totals_needs_a_season_one_year_cannot_give(seed: int, replay: Callable[[int], Replay]) -> None:
    """Why the total lands inside in 10-12 of 12 months, not always (docs/monitoring.md, "Why not 12 of 12").

    The world's Bayes limit (the posterior mean given every purchase up to the cutoff, under the generator's
    own season) lands inside every month: 12 of 12 is reachable by a forecaster that knows the season. One
    that learns it reads each month's level off that month's realization a year before; that realization
    alone carries noise comparable to the realized month's (pooling the same month over every earlier year
    adds little: 2023 holds few established customers), so even with no other error the chance of 12 hits
    in 12 is a bet (0.4 to 0.9 here), not a property of the monitor.
    """
    root, cand, t, _ = replay(seed)
    assert cand.model_key == "bgnbd_seasonal"
    truth = oracle_totals(root, t.index)
    bayes = bayes_limit_totals(root, t.index, seed=seed, **WORLD)
    low, high = t["realized_total_low"], t["realized_total_high"]
    assert ((low <= truth) & (truth <= high)).all(), (truth, t)  # the realized interval is sound
    # The Bayes limit: inside every month, 1.1-1.9% rms from the true total (worst month 1.9-4.7%).
    assert ((low <= bayes) & (bayes <= high)).all(), (bayes, t)
    assert _rms(bayes / truth - 1) < 0.025 and (bayes / truth - 1).abs().max() < 0.05, bayes / truth - 1
    # The season's source: each 2024 month realized by the customers established then, against its truth.
    season_noise = _rms(established_month_noise(root, year=2024))
    realized_noise = _rms(t["realized_total"] / truth - 1)
    assert season_noise > 0.025 and realized_noise > 0.025, (season_noise, realized_noise)  # measured 3.0-4.8%
    half = float(((high - low) / 2 / t["realized_total"]).median())
    hit = 2 * NormalDist().cdf(half / math.hypot(season_noise, realized_noise)) - 1
    # 12 of 12 for an estimate whose only error is that season's noise: 0.40, 0.71, 0.88 (seeds 0, 5, 6).
    assert hit**12 < 0.9, (hit, half, season_noise, realized_noise)
    # The champion: inside in at least 10 months (measured 10, 11, 12, 11 on seeds 0, 5, 6, 7; 10, 10, 12, 11
    # with last year's ratio of ratios as the seasonal level). Each miss is its error of the true total,
    # larger than the realized total's.
    inside = (low <= t["expected_total"]) & (t["expected_total"] <= high)
    model_vs_truth, real_vs_truth = (t["expected_total"] / truth - 1).abs(), (t["realized_total"] / truth - 1).abs()
    assert inside.sum() >= 10, (inside, model_vs_truth)
    # Its error of the true total: 3.8-5.1% rms (5.2-5.6% with last year's ratio of ratios, whose level
    # was the fit's own, 0.4-3.0% high on average, and whose leap February 2024 left February 2025 3.4% low).
    assert _rms(model_vs_truth) < 0.052, model_vs_truth
    assert (model_vs_truth[~inside] > real_vs_truth[~inside]).all(), (model_vs_truth, real_vs_truth)


@pytest.mark.parametrize("seed", [0, 6, 7])
def test_twelve_of_twelve_coverages_is_not_promised_even_by_the_truth(seed: int, replay: Callable[[int], Replay]) -> None:
    """The realized coverage's interval is a 95% interval of a proportion (users' noise only, about +-1.4 points).

    The true expected coverage of the scored intervals (averaged over 10 other futures of the same users)
    lies inside it in 11 or 12 of 12 months (seed 0: August 2025 outside, seed 6: December), so no estimate, not even the
    truth, lands inside every month for sure. The champion's expected coverage is within 0.6-1.2 points
    of the truth (rms); on seed 7 it over-promises in the first months of 2025 (the calibration, fitted
    on 2024-07 .. 09 and kept by the replay, ages), the source of that seed's misses.
    """
    root, cand, t, scores = replay(seed)
    truth = true_coverage(scores, seed=seed, replicates=10, **WORLD)
    low, high = t["interval_coverage_low"], t["interval_coverage_high"]
    frame = t[["interval_coverage", "expected_coverage", "interval_coverage_low", "interval_coverage_high"]].assign(truth=truth)
    assert ((low <= truth) & (truth <= high)).sum() >= 11, frame  # measured 11, 11, 12 on seeds 0, 6, 7 (20 replicates)
    assert _rms(t["interval_coverage"] - truth) < 0.01, frame  # the realized coverage's own noise (0.5-0.7 points)
    assert _rms(t["expected_coverage"] - truth) < 0.015, frame  # the champion's (measured 0.6-1.2 points)
