"""Optuna studies over the registry's search spaces, tracked in MLflow.

The objective is the mean RMSE over the experiment's **validation** origins only; the test
origins are never seen while tuning. The study lives in SQLite under ``mlruns/`` and resumes
with ``load_if_exists``; a heartbeat fails trials orphaned by a killed process and a retry
callback re-queues them, so an interrupted study reaches its target trial count on rerun.
One parent MLflow run per study and one nested run per trial are written here, not through
Optuna's (deprecated) MLflow callback.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spendlab.errors import ConfigError, SpendlabError
from spendlab.forecast.backtest import run_backtest
from spendlab.forecast.protocol import resolve_validation
from spendlab.io.atomic import atomic_write_text
from spendlab.io.recovery import file_lock
from spendlab.jobs.experiment import feature_store, load_dataset
from spendlab.jobs.plan import TunePlan, load_experiment, plan_tune
from spendlab.jobs.tuned_params import TUNED_DIR, tuned_params_path
from spendlab.models.registry import SEARCH_SPACES
from spendlab.settings import DEFAULT_HEARTBEAT
from spendlab.tracking import studies

OPTUNA_DB = "mlruns/optuna.db"
N_STARTUP = 5  # TPE's random start-up trials
PRUNER_STARTUP = 3  # trials that finish before the median pruner may prune


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a tuning study: its best parameters and where they were written."""

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    n_complete: int
    n_pruned: int
    params_path: Path
    parent_run_id: str


@functools.cache
def _storage_class():
    """``RDBStorage`` that also fails orphans killed before their first heartbeat.

    Optuna records a trial's first heartbeat on a thread that starts after ``study.ask()``
    returned. A process killed between the two leaves a RUNNING trial with no heartbeat row,
    which Optuna's own stale check skips, so it stays RUNNING forever. A live trial records its first heartbeat within one interval of starting, so a
    RUNNING trial with no heartbeat that started more than the grace period ago is an orphan.
    """
    from datetime import datetime, timedelta

    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    class Storage(RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            grace = self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval
            cutoff = datetime.now() - timedelta(seconds=grace)  # the clock Optuna stamps datetime_start with
            session = self.scoped_session()
            try:
                never_beat = (
                    session.query(models.TrialModel.trial_id)
                    .filter(models.TrialModel.study_id == study_id)
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .filter(models.TrialModel.datetime_start < cutoff)
                    .filter(~models.TrialModel.heartbeats.any())
                    .all()
                )
                session.commit()
            finally:
                session.close()
            return stale + [tid for (tid,) in never_beat if tid not in stale]

    return Storage


def study_storage(url: str | None = None, *, heartbeat_interval: int = 5, grace_period: int = 15):
    """SQLite storage with a heartbeat: trials of a killed process become FAIL and are retried."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if url is None:
        Path(OPTUNA_DB).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{OPTUNA_DB}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    db = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    # Creating the storage runs Optuna's schema migration: serialise it across processes, or two
    # processes opening a new store at once race on alembic_version.
    lock = file_lock(db.with_name(db.name + ".lock")) if db is not None else contextlib.nullcontext()
    with lock, warnings.catch_warnings():  # heartbeats are marked experimental; they are what we rely on
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _storage_class()(
            url=url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            engine_kwargs={"connect_args": {"timeout": 60}},
        )


def _counts(study) -> tuple[int, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)


# long: one Optuna study's life: storage, resume, MLflow parent run, trials, summary; each step needs the previous one's objects
def tune(
    *,
    experiment_name: str,
    model_key: str,
    search_space: Callable[[Any], dict[str, Any]],
    evaluate: Callable[[dict[str, Any], Callable[[int, float], None]], float],
    n_trials: int,
    timeout: float | None = None,
    seed: int = 0,
    storage_url: str | None = None,
    tuned_dir: Path = TUNED_DIR,
    tracking_uri: str | None = None,
    extra_tags: dict[str, str] | None = None,
    heartbeat: tuple[int, int] = DEFAULT_HEARTBEAT,
    baseline_params: dict[str, Any] | None = None,
    jobs: int = 1,
    origins: Sequence[str] = (),
    plan_json: str | None = None,
) -> TuneResult:
    """Run (or resume) the study ``<experiment>-<model>`` until ``n_trials`` trials finished.

    ``baseline_params`` (the model's current settings) are enqueued as the first trial of a new
    study, so even a tiny budget never returns parameters worse on validation than the defaults.

    ``evaluate(params, report)`` returns the mean validation RMSE and calls
    ``report(step, rmse_so_far)`` after each validation origin, which drives pruning.

    ``jobs`` trials run at once on threads (``evaluate`` must be thread-safe). A study of at most
    ``PRUNER_STARTUP`` trials gets the same trials as with one job: the first trial's parameters
    are fixed, each later one draws its own from the random start-up sampler when it starts
    (after an earlier trial finished), and nothing is pruned. Past that, pruning (and past
    ``N_STARTUP`` trials, TPE) conditions on the finished trials, so with several jobs the
    sequence depends on which trial finishes first.
    """
    import optuna
    from optuna.trial import TrialState


    if n_trials < 1:
        raise ConfigError("--trials must be at least 1")
    study_name = f"{experiment_name}-{model_key}"
    storage = study_storage(storage_url, heartbeat_interval=heartbeat[0], grace_period=heartbeat[1])
    study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                load_if_exists=True)
    # Re-seed by history length: a resumed study draws new points instead of replaying the
    # first seeded draws (which would duplicate earlier trials), and stays deterministic.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)),
                                               n_startup_trials=N_STARTUP)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP, n_warmup_steps=1)
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    if baseline_params and not study.get_trials(deepcopy=False):
        study.enqueue_trial(baseline_params, user_attrs={"baseline": True})
    done = sum(_counts(study))
    parent_id = study.user_attrs.get("mlflow_parent_run_id")
    with studies.study_run(experiment_name=experiment_name, study_name=study_name, run_id=parent_id,
                            tracking_uri=tracking_uri, tags=extra_tags or {}) as parent:
        if parent_id is None:
            study.set_user_attr("mlflow_parent_run_id", parent.info.run_id)
        if plan_json is not None:
            studies.log_plan(parent.info.run_id, plan_json)

        def objective(trial: optuna.Trial, drawn: threading.Event | None = None) -> float:
            params = search_space(trial)
            if drawn is not None:
                drawn.set()
            seen = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.params == trial.params]
            with studies.trial_run(parent.info.run_id, trial.number, params) as run_log:
                if seen:
                    run_log.tag("duplicate_of", str(seen[0].number))
                    run_log.tag("trial_state", "PRUNED")
                    raise optuna.TrialPruned(f"same parameters as trial {seen[0].number}")

                running: list[float] = []

                def report(step: int, value: float) -> None:
                    running.append(value)
                    run_log.metric("validation_rmse_running", value, step)
                    trial.report(value, step)
                    if trial.should_prune():
                        run_log.tag("trial_state", "PRUNED")
                        raise optuna.TrialPruned(f"pruned at origin {step}")

                value = evaluate(params, report)
                if not math.isfinite(value):
                    run_log.tag("trial_state", "FAIL")
                    raise SpendlabError(f"trial {trial.number}: non-finite validation RMSE")
                run_log.metric("validation_rmse", value)
                run_log.tag("trial_state", "COMPLETE")
                # the running means give each origin's own RMSE: r_i = (i + 1) m_i - i m_(i-1)
                trial.set_user_attr("origin_rmse", [(i + 1) * m - i * (running[i - 1] if i else 0.0)
                                                    for i, m in enumerate(running)])
                return value

        remaining = n_trials - done
        if remaining > 0:
            _optimize(study, objective, n_trials=remaining, timeout=timeout, jobs=min(jobs, remaining))
        n_complete, n_pruned = _counts(study)
        if n_complete == 0:
            raise SpendlabError(f"study {study_name}: no trial completed")
        best = study.best_trial
        path = tuned_params_path(experiment_name, model_key, tuned_dir)
        payload = {
            "experiment": experiment_name,
            "model": model_key,
            "study": study_name,
            "objective": "mean validation RMSE",
            "best_value": float(best.value),
            "best_trial": best.number,
            "n_complete": n_complete,
            "params": dict(best.params),
        }
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        folds = fold_choices({t.number: t.user_attrs.get("origin_rmse", []) for t in complete}, list(origins))
        if folds:
            by_number = {t.number: t for t in complete}
            payload["fold_trials"] = folds
            payload["fold_params"] = {o: dict(by_number[n].params) for o, n in folds.items()}
        atomic_write_text(path, yaml.safe_dump(payload, sort_keys=True))
        studies.log_study_summary(parent.info.run_id, best_params=dict(best.params), best_value=float(best.value),
                                   n_complete=n_complete, n_pruned=n_pruned, params_file=path)
    return TuneResult(study_name, dict(best.params), float(best.value), n_complete, n_pruned, path,
                      parent.info.run_id)


def fold_choices(origin_rmse: dict[int, list[float]], origins: list[str]) -> dict[str, int]:
    """Pick, for each origin, the trial with the lowest mean RMSE over the *other* origins.

    Ties go to the lower trial number, among the trials scored on every origin; ``{}`` with fewer than
    two origins or trials. Selecting on the other origins is what makes the tuned model's score on this
    one out of sample: the choice of settings has not seen it.
    """
    full = {n: v for n, v in sorted(origin_rmse.items()) if len(v) == len(origins)}
    if len(origins) < 2 or len(full) < 2:
        return {}
    out = {}
    for j, origin in enumerate(origins):
        out[origin] = min(full, key=lambda n: (sum(v for i, v in enumerate(full[n]) if i != j), n))
    return out


def _optimize(study: Any, objective: Callable[..., float], *, n_trials: int, timeout: float | None,
              jobs: int) -> None:
    """``study.optimize`` with ``jobs`` trials at once, whose parameters are drawn in start order.

    Optuna's own ``n_jobs`` reseeds the sampler from the OS in every thread, so its parallel
    studies cannot be reproduced. Here each thread runs ``study.optimize(n_trials=1)`` (Optuna's
    heartbeat, stale-trial check and pruning all apply), the sampler keeps its seed, and the
    next trial starts only once the previous one has drawn its parameters.
    """
    if jobs <= 1:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(), gc_after_trial=True)
        return
    import time
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    deadline = None if timeout is None else time.monotonic() + timeout
    futures: list[Future] = []
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="optuna-trial") as pool:
        for _ in range(n_trials):
            running = [f for f in futures if not f.done()]
            if len(running) >= jobs:  # wait for a free slot
                wait(running, return_when=FIRST_COMPLETED)
            if any(f.done() and f.exception() is not None for f in futures):
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            drawn = threading.Event()
            future = pool.submit(study.optimize, lambda t, e=drawn: objective(t, e), n_trials=1, catch=(),
                                 gc_after_trial=True)
            futures.append(future)
            while not drawn.wait(0.05) and not future.done():
                pass
    failure = next((f.exception() for f in futures if f.exception() is not None), None)
    if failure is not None:
        raise failure


def tune_experiment(
    experiment_path: Path,
    *,
    model_key: str,
    n_trials: int,
    timeout: float | None = None,
    tracking_uri: str | None = None,
    tuned_dir: Path = TUNED_DIR,
    storage_url: str | None = None,
    heartbeat: tuple[int, int] = DEFAULT_HEARTBEAT,
    jobs: int = 1,
    transactions: Any = None,
    store: Any = None,
) -> TuneResult:
    """Tune ``model_key`` on the validation origins of the experiment at ``experiment_path``.

    Plans the study (:func:`spendlab.jobs.plan.plan_tune`), then runs it with :func:`execute_tune`;
    the other arguments are those of :func:`execute_tune`.
    """
    plan = plan_tune(load_experiment(experiment_path), model_key=model_key, n_trials=n_trials, timeout=timeout,
                     jobs=jobs, tuned_dir=tuned_dir)
    return execute_tune(plan, tracking_uri=tracking_uri, storage_url=storage_url, heartbeat=heartbeat,
                        transactions=transactions, store=store)


def execute_tune(plan: TunePlan, *, tracking_uri: str | None = None, storage_url: str | None = None,
                 heartbeat: tuple[int, int] = DEFAULT_HEARTBEAT, transactions: Any = None, store: Any = None) -> TuneResult:
    """Run a tuning plan: an Optuna study over the plan's validation origins.

    Reads no configuration; the only input read is the plan's dataset (unless ``transactions`` or
    ``store`` are given). The plan is logged as the study run's ``plan.json``.

    Parameters
    ----------
    plan : TunePlan
        From :func:`spendlab.jobs.plan.plan_tune`.
    tracking_uri : str, optional
        The MLflow store.
    storage_url : str, optional
        The Optuna storage (default ``sqlite:///mlruns/optuna.db``).
    heartbeat : tuple of int
        Trial heartbeat interval and grace period, seconds.
    transactions : Transactions, optional
        The plan's dataset, already loaded.
    store : FeatureStore, optional
        A store over the same data and settings whose features may already be built.

    Returns
    -------
    TuneResult
        The best parameters and where they were written.
    """
    exp, model_key = plan.experiment, plan.model_key
    tx = transactions if transactions is not None else load_dataset(exp)
    store = feature_store(plan, store if store is not None else tx)
    exp = resolve_validation(exp, store.first_cutoff)  # validation: auto -> the origins the data allow
    base = dict(plan.base_params)

    def evaluate(params: dict[str, Any], report: Callable[[int, float], None]) -> float:
        result = run_backtest(store, experiment=exp, model_key=model_key, params={**base, **params},
                              origins="validation", on_origin=report)
        return float(result.means["validation_rmse"])

    return tune(experiment_name=exp.name, model_key=model_key, search_space=SEARCH_SPACES[model_key],
                baseline_params=dict(plan.baseline_params),
                evaluate=evaluate, n_trials=plan.n_trials, timeout=plan.timeout, seed=exp.seed,
                storage_url=storage_url, tuned_dir=plan.tuned_dir, tracking_uri=tracking_uri, heartbeat=heartbeat,
                jobs=plan.jobs, origins=[c.isoformat() for c in exp.origins("validation")],
                extra_tags={"dataset_hash": tx.content_hash()[:16], "model": model_key}, plan_json=plan.to_json())
