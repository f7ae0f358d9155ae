"""Optuna tuning: validation origins only, resumable studies, nested MLflow runs, tuned params file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

from spendlab.jobs.tune import study_storage, tune_experiment
from tests.jobs.conftest import write_experiment


@pytest.fixture(autouse=True)
def _migrated_store(request: pytest.FixtureRequest, mlflow_store: Callable[[Path], str]) -> None:
    """A test in ``workdir`` starts with a migrated MLflow store where the jobs' default store goes
    (``mlruns/mlflow.db``): these tests are about the studies, not about making the store."""
    if "workdir" in request.fixturenames:
        mlflow_store(request.getfixturevalue("workdir") / "mlruns" / "mlflow.db")


def _finished(storage_url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_name, storage=study_storage(storage_url))
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def test_tune_writes_best_params_and_nests_trial_runs(workdir: Path) -> None:
    import mlflow

    exp = write_experiment(workdir)
    result = tune_experiment(exp, model_key="ridge", n_trials=3)
    assert result.n_complete + result.n_pruned == 3
    saved = yaml.safe_load(result.params_path.read_text())
    assert result.params_path == Path("configs/tuned/synth_next_month-ridge.yaml")
    assert saved["params"] == result.best_params and set(saved["params"]) == {"alpha"}
    mlflow.set_tracking_uri(f"sqlite:///{Path.cwd()}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["synth_next_month"])
    trials = runs[runs["tags.kind"] == "trial"]
    assert len(trials) == 3
    assert set(trials["tags.mlflow.parentRunId"]) == {result.parent_run_id}
    parent = runs[runs["run_id"] == result.parent_run_id].iloc[0]
    assert parent["status"] == "FINISHED"
    assert parent["metrics.best_validation_rmse"] == pytest.approx(result.best_value)


def test_tuning_objective_never_reads_test_origins(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spendlab.jobs.tune as bt

    seen: list[str] = []
    real = bt.run_backtest

    def spy(*args, **kwargs):
        seen.append(kwargs["origins"])
        return real(*args, **kwargs)

    monkeypatch.setattr(bt, "run_backtest", spy)
    tune_experiment(write_experiment(workdir), model_key="ridge", n_trials=2)
    assert seen and set(seen) == {"validation"}


def test_rerun_of_a_complete_study_adds_no_trial_and_keeps_best(workdir: Path) -> None:
    exp = write_experiment(workdir)
    first = tune_experiment(exp, model_key="ridge", n_trials=3)
    second = tune_experiment(exp, model_key="ridge", n_trials=3)
    assert second.best_params == first.best_params
    assert len(_finished("sqlite:///mlruns/optuna.db", first.study_name)) == 3


@pytest.mark.slow
def test_killed_study_resumes_to_target_without_duplicate_trials(workdir: Path) -> None:
    """Catalogue row 58: kill -9 part-way, rerun; finished trials reach the target, none repeated."""
    exp = write_experiment(workdir)
    url = "sqlite:///mlruns/optuna.db"
    name = "synth_next_month-ridge"
    cmd = [sys.executable, "-m", "spendlab.cli", "tune", str(exp), "--model", "ridge", "--trials", "20"]
    env = {**os.environ, "SPENDLAB_OPTUNA_HEARTBEAT": "1", "SPENDLAB_OPTUNA_GRACE": "2"}
    log = workdir / "tune.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            if proc.poll() is not None:
                pytest.fail(f"tune exited ({proc.returncode}) before it could be killed: {log.read_text()[-2000:]}")
            if not Path("mlruns/optuna.db").exists():
                continue
            try:
                if len(_finished(url, name)) >= 3:
                    break
            except (KeyError, sqlalchemy.exc.OperationalError):  # not created yet, or the child holds the lock
                continue
        else:
            pytest.fail(f"the study never reached 3 finished trials: {log.read_text()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = len(_finished(url, name))
    assert 3 <= before < 20
    time.sleep(2.5)  # past the heartbeat grace period: an orphaned RUNNING trial is now stale
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    finished = _finished(url, name)
    assert len(finished) == 20
    params = [tuple(sorted(t.params.items())) for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(params) == len(set(params)), "a resumed study repeated a trial"
    study = optuna.load_study(study_name=name, storage=study_storage(url))
    assert not [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]


def test_trial_orphaned_before_its_first_heartbeat_is_failed_and_retried(tmp_path: Path) -> None:
    """A process killed between ``study.ask()`` and its first heartbeat leaves a RUNNING trial with
    no heartbeat row; Optuna alone never fails it. Past the grace period it is failed and retried,
    while a younger one (a live process that has not beaten yet) is left alone."""
    from optuna.storages import fail_stale_trials

    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="s", storage=study_storage(url, heartbeat_interval=1, grace_period=2))
    with warnings.catch_warnings():  # Optuna warns that ask() with a heartbeat storage beats nothing: the point here
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        time.sleep(2.2)
        young = study.ask()
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    assert states[young.number] == optuna.trial.TrialState.RUNNING
    retried = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.WAITING]
    assert len(retried) == 1 and retried[0].params == study.trials[orphan.number].params
    assert retried[0].system_attrs["failed_trial"] == orphan.number


def test_two_jobs_give_the_same_trials_as_one_within_the_start_up_budget(workdir: Path) -> None:
    """The main job tunes 3 trials two at a time; the study must be the one a single job makes."""
    from spendlab.jobs.tune import PRUNER_STARTUP

    exp = write_experiment(workdir)
    one = tune_experiment(exp, model_key="ridge", n_trials=PRUNER_STARTUP, jobs=1, tuned_dir=workdir / "t1",
                          storage_url=f"sqlite:///{workdir}/one.db")
    two = tune_experiment(exp, model_key="ridge", n_trials=PRUNER_STARTUP, jobs=2, tuned_dir=workdir / "t2",
                          storage_url=f"sqlite:///{workdir}/two.db")

    def trials(url: str) -> list[tuple[int, dict, float]]:
        study = optuna.load_study(study_name=one.study_name, storage=study_storage(url))
        return sorted((t.number, t.params, t.value) for t in study.get_trials()
                      if t.state == optuna.trial.TrialState.COMPLETE)

    seq, par = trials(f"sqlite:///{workdir}/one.db"), trials(f"sqlite:///{workdir}/two.db")
    assert len(seq) == PRUNER_STARTUP
    # Trial numbers are taken in start order, which threads may swap; the set of trials may not change.
    assert sorted((repr(p), v) for _, p, v in seq) == sorted((repr(p), v) for _, p, v in par)
    assert (one.best_params, one.best_value) == (two.best_params, two.best_value)


def test_a_failing_trial_among_parallel_ones_fails_the_study_and_starts_no_more(workdir: Path) -> None:
    from spendlab.errors import SpendlabError
    from spendlab.jobs.tune import tune

    calls: list[float] = []

    def evaluate(params: dict, report) -> float:
        calls.append(params["x"])
        return float("nan")  # a non-finite validation RMSE fails the trial

    with pytest.raises(SpendlabError, match="non-finite validation RMSE"):
        tune(experiment_name="failing", model_key="m", search_space=lambda t: {"x": t.suggest_float("x", 0, 1)},
             evaluate=evaluate, n_trials=10, jobs=2, storage_url=f"sqlite:///{workdir}/fail.db",
             tuned_dir=workdir / "tuned")
    assert 1 <= len(calls) <= 3  # the two started at once, perhaps one more; never the whole budget


def test_a_resumed_study_whose_best_changes_updates_its_summary(workdir: Path) -> None:
    """A study's parent run is reused on resume; a new best must not hit MLflow's write-once params."""
    from mlflow import MlflowClient

    from spendlab.tracking import studies
    from spendlab.tracking.runs import start_parent_run

    with start_parent_run("summary-test", run_name="study") as parent:
        run_id = parent.run_id
    studies.log_study_summary(run_id, best_params={"alpha": 1.0}, best_value=2.0, n_complete=3, n_pruned=0)
    studies.log_study_summary(run_id, best_params={"alpha": 0.5}, best_value=1.5, n_complete=4, n_pruned=0)

    run = MlflowClient().get_run(run_id)
    assert run.data.tags["best_alpha"] == "0.5"
    assert run.data.metrics["best_validation_rmse"] == 1.5


# --- tuned settings scored out of sample on validation (cross-fitting over the trials) -----------------


def test_fold_choices_pick_the_best_trial_on_the_other_origins() -> None:
    from spendlab.jobs.tune import fold_choices

    scores = {0: [10.0, 10.0, 10.0],  # steady
              1: [1.0, 12.0, 12.0],  # lucky on the first origin only: best in sample overall (25 < 30)
              2: [11.0, 9.5, 30.0],
              3: [5.0, 20.0]}  # pruned after two origins: never chosen
    # a: others 20 / 24 / 39.5 -> 0 (the lucky trial is not chosen to score its lucky origin);
    # b: 20 / 13 / 41 -> 1; c: 20 / 13 / 20.5 -> 1
    assert fold_choices(scores, ["a", "b", "c"]) == {"a": 0, "b": 1, "c": 1}
    assert fold_choices(scores, ["a"]) == {} and fold_choices({0: [1.0, 2.0]}, ["a", "b"]) == {}


def test_tuned_model_scores_each_validation_origin_with_settings_chosen_without_it(workdir: Path) -> None:
    import mlflow
    import pandas as pd

    from spendlab.forecast.backtest import run_backtest
    from spendlab.io import load_transactions
    from spendlab.jobs.experiment import load_experiment, run_experiment

    exp = write_experiment(workdir, models=["ridge"])
    result = tune_experiment(exp, model_key="ridge", n_trials=4)
    saved = yaml.safe_load(result.params_path.read_text())
    origins = ["2023-07-31", "2023-08-31", "2023-09-30"]
    assert sorted(saved["fold_params"]) == origins
    # (with this seed one origin is scored by another trial than the best: the check below has power)
    assert any(p != saved["params"] for p in saved["fold_params"].values())
    # Independently: each trial's per-origin RMSE from its MLflow run's running means.
    client = mlflow.MlflowClient(f"sqlite:///{Path.cwd()}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["synth_next_month"], filter_string="tags.kind = 'trial'",
                              output_format="list")
    per_trial = {}
    for r in runs:
        if r.data.tags.get("trial_state") != "COMPLETE":
            continue
        running = [m.value for m in sorted(client.get_metric_history(r.info.run_id, "validation_rmse_running"),
                                           key=lambda m: m.step)]
        per_trial[int(r.data.tags["trial"])] = ([(i + 1) * m - i * (running[i - 1] if i else 0.0)
                                                 for i, m in enumerate(running)], r.data.params)
    for j, origin in enumerate(origins):
        best = min(per_trial, key=lambda n: (sum(v for i, v in enumerate(per_trial[n][0]) if i != j), n))
        assert saved["fold_trials"][origin] == best
        assert saved["fold_params"][origin]["alpha"] == pytest.approx(float(per_trial[best][1]["alpha"]))
    # The experiment scores validation origin c with fold_params[c] and the test origins with params.
    res = run_experiment(exp, out_dir=workdir / "out")
    cfg = load_experiment(exp)
    tx = load_transactions(str(workdir / "data" / "tx.parquet"), "generic")
    preds = pd.read_parquet(workdir / "out" / "predictions.parquet")  # test origins
    child = mlflow.search_runs(experiment_names=["synth_next_month"],
                               filter_string=f"tags.mlflow.parentRunId = '{res.parent_run_id}'", output_format="list")
    assert child[0].data.params["hp.validation_scoring"] == "cross_fitted"
    logged = {m.step: m.value for m in client.get_metric_history(child[0].info.run_id, "origin/validation_rmse")}
    assert len(logged) == 3
    for origin in origins:
        c = pd.Timestamp(origin).date()
        fold = run_backtest(tx, experiment=cfg, model_key="ridge", params=saved["fold_params"][origin],
                            origins="validation")
        expected = fold.per_origin.set_index("cutoff").loc[c, "rmse"]
        assert logged[int(origin[:7].replace("-", ""))] == pytest.approx(expected, rel=1e-9)  # step YYYYMM
    final = run_backtest(tx, experiment=cfg, model_key="ridge", params=saved["params"], origins="test")
    np_test = preds[preds["model"] == "ridge"]
    assert np_test["y_pred"].to_numpy() == pytest.approx(final.predictions["y_pred"].to_numpy())
