"""Issue 10 item 4, catalogue row 57: four experiment processes on one new SQLite tracking store.

All four start at once on a store that does not exist yet, so they race to create and migrate it
(without the file lock in ``spendlab.tracking.runs`` this failed with "table ... already exists" or an
alembic "expected to match one row" error) and then write runs concurrently (SQLite lock
contention, retried with backoff). Every process must exit 0, no "database is locked" or
traceback may reach the user, and every run must be recorded and finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow

N_PROCESSES = 4


def test_row57_four_concurrent_experiment_runs_on_a_new_store_all_finish_and_are_all_recorded(
        tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, models=["zero"], params={}, users=100)
    assert not (tmp_path / "mlruns").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("SPENDLAB_TRACKING_URI", "MLFLOW_TRACKING_URI")}
    procs = [subprocess.Popen([sys.executable, "-m", "spendlab.cli", "experiment", "run", str(exp),
                               "--out", f"out{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(N_PROCESSES)]
    outputs = [p.communicate(timeout=600) for p in procs]  # drains the pipes (no wait() deadlock)
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "database is locked" not in (stdout + stderr).lower()
        assert "Traceback" not in stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiments = [e for e in client.search_experiments() if e.name == "synth_next_month"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("kind") == "experiment"]
    children = [r for r in runs if r.data.tags.get("model") == "zero" and r.data.tags.get("kind") != "experiment"]
    assert len(parents) == N_PROCESSES and len(children) == N_PROCESSES
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["spendlab.pid"] for r in parents}) == N_PROCESSES
    parent_ids = {r.info.run_id for r in parents}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == parent_ids
    for r in children:
        assert "validation_rmse" in r.data.metrics and "test_rmse" in r.data.metrics
    for i in range(N_PROCESSES):
        assert (tmp_path / f"out{i}" / "leaderboard.csv").exists()
