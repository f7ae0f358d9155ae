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

from pathlib import Path

import pandas as pd
import pytest

from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.replay import plan_replay, run_policies
from tests.jobs.monitor_worlds import oracle_totals, world_champion

pytestmark = pytest.mark.slow


def _champion_replay(root: Path) -> tuple[object, pd.DataFrame]:
    data = root / "tx.parquet"
    synth_transactions(data, users=2000, months=36, start="2023-01-01", seed=5, oracle=True)
    exp = {"name": "seasonworld", "dataset": {"input": str(data), "format": "generic"}, "freq": "month",
           "horizon": 1, "train_origins": "all", "validation": {"start": "2024-07-31", "end": "2024-09-30"},
           "test": {"start": "2024-10-31", "end": "2024-12-31"},
           "models": ["ridge", "seasonal_naive", "bgnbd_seasonal"]}
    path, cand, backtest = world_champion(root, exp)
    table = run_policies(plan_replay(str(path), first="2025-01", last="2025-12", policies="monthly"), cand,
                         backtest=backtest)
    return cand, table.set_index("period")


def test_the_champions_estimates_lie_in_the_realized_intervals(tmp_path: Path) -> None:
    cand, t = _champion_replay(tmp_path)
    assert cand.model_key == "bgnbd_seasonal"  # the experiment's pick: the model that learns the season
    assert len(t) == 12 and "retrain" not in set(t["verdict"]), t[["verdict", "reasons"]]
    truth = oracle_totals(tmp_path, t.index)
    # The realized total's interval holds the world's true expected total every month (it is sound).
    assert ((t["realized_total_low"] <= truth) & (truth <= t["realized_total_high"])).all(), (truth, t)
    real_vs_truth = (t["realized_total"] / truth - 1).abs()
    assert real_vs_truth.max() < 0.075  # measured: 6.8% at most (2,000 users: a month's total is noisy)
    # Total: inside the realized interval in 10 of 12 months (measured; the 3-origin ridge of
    # test_monitor_shift: 5 of 12). The two misses are the model's error of the true total (February
    # 9% low, June 10% high: the seasonal level is last year's ratio of that one month, itself as noisy
    # as a realized month), not the realized interval's.
    inside = (t["realized_total_low"] <= t["expected_total"]) & (t["expected_total"] <= t["realized_total_high"])
    assert inside.sum() >= 10, inside
    model_vs_truth = (t["expected_total"] / truth - 1).abs()
    assert (model_vs_truth[~inside] > real_vs_truth[~inside]).all(), (model_vs_truth, real_vs_truth)
    assert model_vs_truth.max() < 0.12  # measured: 10% at most (the 3-origin ridge: 41%)
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
