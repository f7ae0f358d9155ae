"""Catalogue rows 55 (exception mid-training) and 61 (NaN/inf metrics), against a real MLflow store."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from spendlab.tracking import results
from spendlab.tracking import runs as tracking
from tests.jobs.conftest import write_experiment


def _runs(experiment: str) -> pd.DataFrame:
    return tracking.search_runs(experiment)


def test_row55_exception_mid_training_fails_the_run_registers_nothing_and_writes_no_final_output(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spendlab.forecast.backtest as backtest
    from spendlab.cli import app

    exp = write_experiment(workdir, models=["zero", "last_period", "ridge"], params={}, users=120)
    cfg = workdir / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": str(exp), "out_dir": "outputs", "tune": None,
                                   "promote": True, "score": True}))
    real = backtest.run_backtest
    trained: list[str] = []

    def failing(*args, **kwargs):
        if kwargs["model_key"] == "ridge":  # the third model: two were trained and logged already
            raise RuntimeError("injected failure while training ridge")
        trained.append(kwargs["model_key"])
        return real(*args, **kwargs)

    monkeypatch.setattr(backtest, "run_backtest", failing)
    result = CliRunner().invoke(app, ["pipeline", "-c", str(cfg)])

    assert result.exit_code != 0
    assert isinstance(result.exception, RuntimeError)
    assert trained == ["zero", "last_period"]
    runs = _runs("synth_next_month")
    parent = runs[runs["tags.kind"] == "experiment"]
    assert len(parent) == 1 and parent["status"].item() == "FAILED"
    assert parent["tags.failure_reason"].item() == "RuntimeError: injected failure while training ridge"
    assert "RUNNING" not in set(runs["status"])
    assert MlflowClient().search_registered_models() == []
    out = workdir / "outputs"
    assert (out / "validation.json").exists()  # the stages before the failure did finish
    for name in ("experiment/leaderboard.csv", "experiment/predictions.parquet", "experiment/intervals.json",
                 "promotion.json", "scores.parquet"):
        assert not (out / name).exists(), name


def _stored_metric_values(db: Path) -> list[float]:
    with sqlite3.connect(db) as con:
        return [v for (v,) in con.execute("SELECT value FROM metrics UNION ALL SELECT value FROM latest_metrics")]


def test_row61_nan_and_inf_metrics_are_flagged_never_stored_as_clamped_values(workdir: Path) -> None:
    per_origin = pd.DataFrame({"origin": [0, 1], "split": ["validation", "test"],
                               "rmse": [2.0, float("inf")], "wape": [float("nan"), 0.5]})
    with tracking.start_parent_run("nonfinite", run_name="parent") as parent:
        parent.metrics({"ok": 1.0, "bad_nan": float("nan"), "bad_inf": float("-inf")})
        parent.metric("single_nan", float("nan"))
        child = results.log_model_run(
            parent, model_key="m", params={"a": 1}, per_origin=per_origin,
            means={"validation_rmse": 2.0, "test_rmse": float("inf")}, tags={},
            dataset={"name": "d", "digest": "0" * 64, "source": str(workdir)})
    client = MlflowClient()
    p = client.get_run(parent.run_id)
    assert p.data.metrics == {"ok": 1.0}
    assert p.data.tags["nonfinite_metrics"] == "bad_nan,bad_inf,single_nan"
    c = client.get_run(child)
    assert c.data.metrics == {"validation_rmse": 2.0, "origin/validation_rmse": 2.0, "origin/test_wape": 0.5}
    assert set(c.data.tags["nonfinite_metrics"].split(",")) == {"origin/validation_wape@0", "origin/test_rmse@1",
                                                                "test_rmse"}
    values = _stored_metric_values(workdir / "mlruns" / "mlflow.db")
    assert values and all(math.isfinite(v) and abs(v) < 1e300 for v in values)


def test_row17_header_only_input_is_refused_before_any_run_or_output(workdir: Path) -> None:
    """Row 17, job half: training refuses "no data" in one line (exit 2). The refusal comes before an
    MLflow run is opened, so there is no run to mark FAILED and the store is not even created."""
    import subprocess
    import sys

    (workdir / "empty.csv").write_text("type,data,created_at,user_id\n")
    exp = write_experiment(workdir, models=["zero"], params={}, users=20)
    doc = yaml.safe_load(exp.read_text())
    doc["dataset"] = {"input": "empty.csv", "format": "millions"}
    exp.write_text(yaml.safe_dump(doc))
    done = subprocess.run([sys.executable, "-m", "spendlab.cli", "experiment", "run", str(exp), "--out", "out"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: view 'transactions' holds no transactions"]
    assert not (workdir / "mlruns").exists() and not (workdir / "out").exists()
