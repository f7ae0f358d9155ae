"""The experiment a monitoring test starts from: run on a world's data, its champion and backtest read back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from spendlab.jobs.experiment import run_experiment
from spendlab.tracking.experiment_runs import latest_experiment_run, run_candidate
from spendlab.tracking.monitoring import model_backtest


def world_champion(root: Path, exp: dict[str, Any], *,
                   store: Callable[[Path], str] | None = None) -> tuple[Path, Any, Any]:
    """Run experiment ``exp`` (a YAML mapping) from ``root``; return its path, candidate and the model's backtest.

    ``store`` is the ``mlflow_store`` fixture (a migrated store copied in), if given.
    """
    path = root / f"{exp['name']}.yaml"
    path.write_text(yaml.safe_dump(exp))
    uri = store(root / "store" / "mlflow.db") if store else f"sqlite:///{root}/store/mlflow.db"
    old = os.getcwd()
    os.chdir(root)
    try:
        run_experiment(path, out_dir=root / "out", tracking_uri=uri)
    finally:
        os.chdir(old)
    cand = run_candidate(latest_experiment_run(exp["name"], tracking_uri=uri))
    return path, cand, model_backtest(cand, tracking_uri=uri)


def oracle_totals(root: Path, periods: Iterable[str]) -> pd.Series:
    """The world's true expected spend of each monitored month, summed over the users scored for it."""
    oracle = pd.read_parquet(root / "oracle.parquet")
    oracle["period"] = pd.to_datetime(oracle["period_start"]).dt.strftime("%Y-%m")
    oracle["user_id"] = oracle["user_id"].astype(str)
    tx = pd.read_parquet(root / "tx.parquet")
    first = tx.groupby(tx["user_id"].astype(str))["ts"].min()
    out = {}
    for period in periods:
        scored = first.index[first < pd.Timestamp(f"{period}-01", tz=first.dt.tz)]  # seen by the cutoff
        month = oracle[oracle["period"] == period].set_index("user_id")["expected_spend"]
        out[period] = float(month.reindex(scored).fillna(0.0).sum())
    return pd.Series(out)


def bayes_limit_totals(root: Path, periods: Iterable[str], *, seed: int, users: int, months: int,
                       start: str) -> pd.Series:
    """The best estimate the data allow of each month's total: the posterior mean given every purchase up to
    its cutoff, under the generator's own model and season (:mod:`spendlab.datasets.synth_posterior`)."""
    import datetime as dt

    from spendlab.datasets.synth import SynthWorld
    from spendlab.datasets.synth_posterior import posterior_expected_spend

    world = SynthWorld(users=users, months=months, start=start, seed=seed)
    tx = pd.read_parquet(root / "tx.parquet")
    out = {}
    for period in periods:
        cutoff = dt.date.fromisoformat(f"{period}-01") - dt.timedelta(days=1)
        out[period] = float(posterior_expected_spend(world, tx, cutoff).sum())
    return pd.Series(out)


def established_month_noise(root: Path, *, year: int, history_months: int = 3) -> pd.Series:
    """Each month of ``year``: realized gross spend over the world's true expected spend, minus 1, summed over
    the customers with a first purchase at least ``history_months`` months before it (those a seasonal level
    is read from)."""
    oracle = pd.read_parquet(root / "oracle.parquet")
    oracle["period"] = pd.to_datetime(oracle["period_start"]).dt.strftime("%Y-%m")
    oracle["user_id"] = oracle["user_id"].astype(str)
    tx = pd.read_parquet(root / "tx.parquet")
    tx["user_id"] = tx["user_id"].astype(str)
    first = tx.groupby("user_id")["ts"].min()
    buy = tx[tx["amount"] > 0]
    month = buy["ts"].dt.strftime("%Y-%m")
    out = {}
    for m in range(1, 13):
        period = f"{year}-{m:02d}"
        start = pd.Timestamp(f"{period}-01", tz=first.dt.tz)
        users = first.index[first < start - pd.DateOffset(months=history_months)]
        realized = float(buy.loc[(month == period) & buy["user_id"].isin(users), "amount"].sum())
        expected = oracle[oracle["period"] == period].set_index("user_id")["expected_spend"].reindex(users)
        out[period] = realized / float(expected.fillna(0.0).sum()) - 1
    return pd.Series(out)


def true_coverage(scores: dict[Any, pd.DataFrame], *, seed: int, replicates: int, users: int, months: int,
                  start: str) -> pd.Series:
    """Each month's true expected coverage of the intervals scored for it: the share of users whose gross spend
    falls in ``[lower, upper]``, averaged over ``replicates`` other futures of the same world (replicates 1..n
    of :class:`spendlab.datasets.synth.SynthWorld`; replicate 0 is the written data). ``scores`` maps each
    cutoff to the frame scored at it (``user_id``, ``lower``, ``upper``)."""
    import numpy as np

    from spendlab.datasets.synth import SynthWorld

    world = SynthWorld(users=users, months=months, start=start, seed=seed)
    periods = {c: (pd.Timestamp(c) + pd.Timedelta(days=1)).strftime("%Y-%m") for c in scores}
    spend = []  # per replicate: gross spend per (user, month) of the monitored months
    for r in range(1, replicates + 1):
        parts = []
        for c in range(world.n_chunks):
            u, ts, amount = world.purchases(c, world.latent(c), replicate=r)
            buy = amount > 0
            month = pd.to_datetime(ts[buy], unit="us").strftime("%Y-%m")
            parts.append(pd.DataFrame({"user_id": world.user_ids(c)[u[buy]], "period": month, "amount": amount[buy]}))
        frame = pd.concat(parts)
        spend.append(frame[frame["period"].isin(set(periods.values()))].groupby(["period", "user_id"])["amount"].sum())
    out = {}
    for cutoff, frame in scores.items():
        s = frame.reset_index() if "user_id" not in frame.columns else frame
        s = s.set_index(s["user_id"].astype(str))
        covs = []
        for y in spend:
            month = y.xs(periods[cutoff], level="period") if periods[cutoff] in y.index.get_level_values(0) else y.iloc[:0]
            month = month.reindex(s.index).fillna(0.0).to_numpy()
            covs.append(float(np.mean((s["lower"].to_numpy() <= month) & (month <= s["upper"].to_numpy()))))
        out[periods[cutoff]] = float(np.mean(covs))
    return pd.Series(out)
