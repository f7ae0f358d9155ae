"""MLflow tracking: run layout, FAILED runs, non-finite metrics flagged (never clamped)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from spendlab.tracking import results
from spendlab.tracking import runs as tracking


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return tracking.configure(None)


def test_default_store_is_sqlite_under_mlruns_relative_to_cwd(store: str, tmp_path: Path) -> None:
    assert store == "sqlite:///mlruns/mlflow.db"
    assert tracking.tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    exp_id = tracking.ensure_experiment("demo")
    exp = MlflowClient().get_experiment(exp_id)
    assert exp.artifact_location == (tmp_path / "mlruns").resolve().as_uri() + "/demo"
    assert tracking.ensure_experiment("demo") == exp_id  # idempotent


def test_a_run_that_raises_ends_failed_with_a_reason(store: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_parent_run("demo", run_name="p") as parent:
            with tracking.child_run(parent, run_name="child", tags={"model": "zero"}) as child:
                child_id = child.run_id
                raise RuntimeError("boom in the middle of training")
    client = MlflowClient()
    for run_id in (parent.run_id, child_id):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        assert run.data.tags["failure_reason"] == "RuntimeError: boom in the middle of training"
    assert client.get_run(child_id).data.tags["mlflow.parentRunId"] == parent.run_id


def test_non_finite_metrics_are_flagged_and_never_stored(store: str) -> None:
    with tracking.start_parent_run("demo", run_name="p") as parent:
        parent.metrics({"rmse": 1.5, "bias": float("nan"), "wape": float("inf")})
        parent.metric("top10_capture", float("-inf"), step=3)
    run = MlflowClient().get_run(parent.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"rmse": 1.5}
    assert run.data.tags["nonfinite_metrics"] == "bias,wape,top10_capture@3"


def test_model_run_logs_params_steps_dataset_and_artifacts(store: str, tmp_path: Path) -> None:
    data = tmp_path / "tx.csv"
    data.write_text("user_id,ts,amount\nu1,2024-01-01,5\n")
    per_origin = pd.DataFrame({"origin": [0, 1], "split": ["test", "test"], "cutoff": ["2024-01-31", "2024-02-29"],
                               "rmse": [2.0, 4.0]})
    with tracking.start_parent_run("demo", run_name="p", tags={"kind": "experiment"}) as parent:
        run_id = results.log_model_run(
            parent, model_key="zero", params={"hp.window": 3}, per_origin=per_origin, means={"test_rmse": 3.0},
            tags={"dataset_hash": "abc"}, dataset={"name": "tiny", "digest": "abc", "source": str(data)},
            tables={"metrics.csv": per_origin}, texts={"note.txt": "hello"})
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.tags["model"] == "zero" and run.data.tags["mlflow.runName"] == "zero"
    assert run.data.params["hp.window"] == "3"
    assert run.data.metrics["test_rmse"] == 3.0
    history = client.get_metric_history(run_id, "origin/test_rmse")
    assert sorted((m.step, m.value) for m in history) == [(202401, 2.0), (202402, 4.0)]  # step = cutoff YYYYMM
    assert run.inputs.dataset_inputs[0].dataset.name == "tiny"
    assert {a.path for a in client.list_artifacts(run_id)} == {"metrics.csv", "note.txt"}
    assert run.data.tags["git_commit"] and run.data.tags["spendlab_version"]


def test_origin_step_reads_as_the_cutoff_date() -> None:
    assert results.origin_step("2023-12-31", "month") == 202312
    assert results.origin_step("2023-10-22", "week") == 20231022  # weekly cutoffs share months


def test_child_run_is_dated_by_the_work_it_records(store: str) -> None:
    import time

    t0 = time.time() - 120.0  # a backtest that ran two minutes ago for 42.5 s
    with tracking.start_parent_run("demo", run_name="p") as parent:
        with tracking.child_run(parent, run_name="m", start_time=t0, end_time=t0 + 42.5) as run:
            run.metric("x", 1.0)
    info = MlflowClient().get_run(run.run_id).info
    assert info.start_time == round(t0 * 1000) and info.end_time == round((t0 + 42.5) * 1000)
    assert info.status == "FINISHED"


def test_metrics_at_many_steps_go_in_batches_of_500_with_every_step_and_flag(store: str) -> None:
    calls: list[int] = []
    real = MlflowClient.log_batch

    def counting(self, run_id, metrics=(), *args, **kwargs):
        calls.append(len(metrics))
        return real(self, run_id, metrics, *args, **kwargs)

    by_step = {s: {f"m{k}": float(s * 10 + k) for k in range(60)} for s in range(1, 11)}  # 600 finite values
    by_step[11] = {"m0": float("nan")}
    with tracking.start_parent_run("demo", run_name="p") as parent, pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "log_batch", counting)
        parent.metric_steps(by_step)
    client = MlflowClient()
    assert calls == [500, 100]  # 600 metrics: two calls, not one per step
    assert sorted((m.step, m.value) for m in client.get_metric_history(parent.run_id, "m7")) == [
        (s, float(s * 10 + 7)) for s in range(1, 11)]
    assert client.get_run(parent.run_id).data.tags["nonfinite_metrics"] == "m0@11"
