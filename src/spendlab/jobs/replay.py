"""The runner behind ``spendlab replay``: production simulated month by month, retraining policy included.

At each period end the champion of a policy scores every user (the registered scorer's own code,
:class:`~spendlab.tracking.pyfunc_model.SpendForecaster`, on a refit of the experiment's tested
candidate), and the next period is monitored as ``spendlab monitor`` would. Policies:

- ``never``: the candidate fitted at the period end before ``--from``, kept throughout;
- ``monthly``: refitted (and taken as champion) at every period end;
- ``on-retrain-verdict``: refitted at a period end when the period that just ended got ``retrain``.

The result is the live accuracy of the whole process, which no backtest of one model shows. Every
refit is :func:`spendlab.jobs.promote.refit` at that cutoff (the experiment's model fitting code).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab.calendar import period_end, shift_period, target_period_label
from spendlab.errors import ConfigError
from spendlab.forecast.candidate import Candidate
from spendlab.jobs.monitor import MonitorPlan, measure
from spendlab.jobs.promote import candidate_store, experiment_name, refit
from spendlab.jobs.replay_report import log_and_write
from spendlab.jobs.score import lineage
from spendlab.monitor.verdict import Thresholds
from spendlab.tracking.experiment_runs import latest_experiment_run, run_candidate
from spendlab.tracking.monitoring import ModelRecord, model_backtest
from spendlab.tracking.pyfunc_model import SpendForecaster

POLICIES: tuple[str, ...] = ("never", "monthly", "on-retrain-verdict")
#: Figures of each monitored period kept in the replay's table.
_KEPT = ("rmse", "mae", "bias", "interval_coverage", "interval_coverage_low", "interval_coverage_high",
         "expected_coverage", "expected_coverage_low", "expected_coverage_high", "realized_total",
         "realized_total_low", "realized_total_high", "expected_total", "expected_total_low", "expected_total_high",
         "model_error", "max_psi", "max_segment_shift", "backtest_rmse")


@dataclass(frozen=True)
class ReplayPlan:
    """A replay, decided before it starts: the periods monitored, the policies, the thresholds."""

    experiment: str
    first: dt.date  # first day of the first monitored period
    last: dt.date  # first day of the last monitored period
    policies: tuple[str, ...] = POLICIES
    thresholds: Thresholds = field(default_factory=Thresholds)
    n_boot: int = 200
    out: Path | None = None


def _month(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{text[:7]}-01")
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a month (YYYY-MM)") from None


def plan_replay(experiment: str, *, first: str, last: str, policies: str | None = None,
                thresholds: dict[str, float] | None = None, out: str | Path | None = None) -> ReplayPlan:
    """Resolve a replay from its options.

    Parameters
    ----------
    experiment : str
        The experiment YAML (its latest run's candidate is replayed).
    first, last : str
        The first and last monitored periods, ``YYYY-MM``.
    policies : str, optional
        Comma-separated :data:`POLICIES` (default: all three).
    thresholds : dict, optional
        :class:`Thresholds` overrides.
    out : str or pathlib.Path, optional
        The report directory.

    Returns
    -------
    ReplayPlan
        The frozen plan.

    Raises
    ------
    ConfigError
        A period that is not a month, ``--to`` before ``--from``, or an unknown policy.
    """
    a, b = _month(first, "--from"), _month(last, "--to")
    if b < a:
        raise ConfigError(f"--to {last} is before --from {first}")
    chosen = tuple(p.strip() for p in (policies or ",".join(POLICIES)).split(",") if p.strip())
    unknown = [p for p in chosen if p not in POLICIES]
    if unknown or not chosen:
        raise ConfigError(f"--retrain {policies!r}: choose from {', '.join(POLICIES)}")
    return ReplayPlan(experiment=str(experiment), first=a, last=b, policies=chosen,
                      thresholds=Thresholds(**(thresholds or {})), out=None if out is None else Path(out))


@dataclass
class _Champion:
    cutoff: dt.date
    scorer: SpendForecaster
    reference: dict[str, Any] | None


def _fit(cand: Candidate, tx: Any, store: Any, cutoff: dt.date) -> _Champion:
    """Return the candidate refitted at ``cutoff``, bound in the registered scorer's class (no serialisation)."""
    r = refit(cand, transactions=tx, store=store, cutoff=cutoff)
    scorer = SpendForecaster()
    scorer.bind(r.estimator, cand.calibration, cand.feature_names,
                cand.experiment_config().segments.active_window, r.cold_start)
    return _Champion(cutoff, scorer, r.reference)


def _score(champ: _Champion, store: Any, cutoff: dt.date, freq: str, version: str) -> tuple[pd.DataFrame, dict]:
    """Every user's scores at ``cutoff`` and their lineage, as ``spendlab score`` writes them."""
    feats = store.features(cutoff)
    scores = champ.scorer.predict(None, feats, params={"as_of": cutoff.isoformat()})
    return scores, lineage(model_name="replay", model_uri="", model_version=version,
                           train_cutoff=champ.cutoff.isoformat(), as_of=cutoff,
                           target_period=target_period_label(cutoff, freq, store.horizon),  # type: ignore[arg-type]
                           freq=freq, horizon=store.horizon,
                           interval_level=champ.scorer.calibration_.get("level", 0.8))


def _cutoffs(plan: ReplayPlan, freq: str) -> list[dt.date]:
    """Return the period end before each monitored period."""
    out, cur = [], plan.first
    while cur <= plan.last:
        out.append(cur - dt.timedelta(days=1))
        cur = shift_period(cur, freq, 1)  # type: ignore[arg-type]
    return out


def run_policies(plan: ReplayPlan, cand: Candidate, *, tx: Any = None, backtest: pd.DataFrame | None = None,
                 progress: Any = None) -> pd.DataFrame:
    """Replay every policy of ``plan``; one row per (policy, period): verdict, realized metrics, refits.

    Fits at the same cutoff are shared between policies (the same model: fits are deterministic).
    """
    cfg = cand.experiment_config()
    tx, store = candidate_store(cand, transactions=tx)
    fits: dict[dt.date, _Champion] = {}
    cache: dict[tuple[dt.date, dt.date], dict[str, Any]] = {}
    mplan = MonitorPlan(scores=Path(""), input="", format="", thresholds=plan.thresholds, n_boot=plan.n_boot)
    rows = []
    for policy in plan.policies:
        champ: _Champion | None = None
        verdict = "ok"
        for cutoff in _cutoffs(plan, cfg.freq):
            refitted = champ is None or policy == "monthly" or (policy == "on-retrain-verdict" and verdict == "retrain")
            if refitted:
                if cutoff not in fits:
                    fits[cutoff] = _fit(cand, tx, store, cutoff)
                champ = fits[cutoff]
            assert champ is not None
            key = (champ.cutoff, cutoff)
            if key not in cache:
                t0 = time.perf_counter()
                scores, lineage = _score(champ, store, cutoff, cfg.freq, f"fit-{champ.cutoff}")
                record = ModelRecord(cand, champ.reference, backtest if backtest is not None else pd.DataFrame())
                res = measure(scores, lineage, store.con, record, mplan, features=store.features(cutoff))
                cache[key] = {"period": res.period, "verdict": res.verdict, "reasons": "; ".join(res.reasons),
                              **{k: res.summary[k] for k in _KEPT},
                              "seconds": time.perf_counter() - t0}
                if progress is not None:
                    progress(f"{policy}: {res.period} scored by the fit of {champ.cutoff}: {res.verdict}")
            row = cache[key]
            verdict = row["verdict"]
            rows.append({"policy": policy, **row, "model_cutoff": champ.cutoff, "retrained": refitted})
    return pd.DataFrame(rows)


def execute(plan: ReplayPlan, *, tracking_uri: str | None = None, progress: Any = None) -> dict[str, Any]:
    """Run a replay plan: replay every policy, log them side by side to MLflow, write the report.

    Returns
    -------
    dict
        ``table`` (one row per policy and period), ``seconds``, ``run_id`` and ``paths``.
    """
    t0 = time.perf_counter()
    name = experiment_name(plan.experiment)
    cand = run_candidate(latest_experiment_run(name, tracking_uri=tracking_uri))
    backtest = model_backtest(cand, tracking_uri=tracking_uri)
    last_day = period_end(plan.last, cand.experiment_config().freq)
    table = run_policies(plan, cand, backtest=backtest, progress=progress)
    seconds = time.perf_counter() - t0
    run_id, paths = log_and_write(plan, cand, table, seconds=seconds, last_day=last_day, tracking_uri=tracking_uri)
    return {"table": table, "seconds": seconds, "run_id": run_id, "paths": paths}
