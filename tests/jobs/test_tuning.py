"""Optuna tuning: validation origins only, resumable studies, nested MLflow runs, tuned params file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

from spendlab.jobs.tune import study_storage, tune_experiment
from tests.jobs.conftest import write_experiment


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
