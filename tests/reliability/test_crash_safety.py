"""Issue 10 item 3, catalogue rows 56 and 59: the main job killed with SIGKILL, then rerun.

One small synthetic job (validate -> describe -> tune ridge, 3 trials -> experiment -> promote ->
score) runs to completion once; that is the baseline. Then:

* it is killed at random points (seeded delays) and after each kill every file at a final output
  path is byte-identical to the baseline (nothing partial was renamed into place), no model version
  was added and the champion alias did not move;
* a rerun finishes, marks every run the killed jobs left ``RUNNING`` as ``KILLED`` and reproduces the
  baseline outputs byte for byte, without a new model version (row 59);
* the job is killed while it runs a trial of a larger study; the rerun resumes the study to its
  target with no trial left ``RUNNING``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from spendlab.tracking.registry import REGISTERED_MODEL
from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow

KILL_SEEDS = (11, 12, 13)
STUDY = "synth_next_month-ridge"
# The study's trial heartbeat and grace period (s), shortened from 5 and 15 as test_tuning shortens
# them: a trial silent for GRACE seconds is failed and retried. The pipeline runs two trials at once,
# so the grace leaves room for a live trial's heartbeat thread to be late on a loaded machine.
HEARTBEAT, GRACE = 1, 5


def _config(root: Path, trials: int) -> Path:
    path = root / f"pipeline-{trials}.yaml"
    path.write_text(yaml.safe_dump({"experiment": "experiments/synth_next_month.yaml", "out_dir": "outputs",
                                    "tune": {"model": "ridge", "trials": trials, "timeout": 300},
                                    "promote": True, "score": True}))
    return path


def _start(root: Path, cfg: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("SPENDLAB_TRACKING_URI", "MLFLOW_TRACKING_URI")}
    env.update(SPENDLAB_OPTUNA_HEARTBEAT=str(HEARTBEAT), SPENDLAB_OPTUNA_GRACE=str(GRACE))
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "spendlab.cli", "pipeline", "-c", str(cfg)], cwd=root,
                                stdout=fh, stderr=subprocess.STDOUT, env=env)


def _run(root: Path, cfg: Path, log: Path) -> str:
    proc = _start(root, cfg, log)
    assert proc.wait(timeout=600) == 0, log.read_text()
    return log.read_text()


def _outputs(root: Path) -> dict[str, str]:
    """sha256 of every file at a final path under outputs/ (temporary dot-paths left aside)."""
    out = {}
    for p in sorted((root / "outputs").rglob("*")):
        rel = p.relative_to(root / "outputs")
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db",
                        registry_uri=f"sqlite:///{root}/mlruns/mlflow.db")


def _registry(root: Path) -> tuple[list[str], str]:
    c = _client(root)
    versions = sorted(str(v.version) for v in c.search_model_versions(f"name='{REGISTERED_MODEL}'"))
    return versions, str(c.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)


def _runs_by_status(root: Path) -> dict[str, dict[str, str]]:
    """run id -> {status, kind, killed_reason} over every experiment of the store."""
    c = _client(root)
    ids = [e.experiment_id for e in c.search_experiments()]
    return {r.info.run_id: {"status": r.info.status, "kind": r.data.tags.get("kind", ""),
                            "killed_reason": r.data.tags.get("killed_reason", "")}
            for r in c.search_runs(ids, max_results=5000)}


def _trial_states(root: Path) -> list[str]:
    with sqlite3.connect(root / "mlruns" / "optuna.db") as con:
        return [s for (s,) in con.execute(
            "SELECT t.state FROM trials t JOIN studies s USING (study_id) WHERE s.study_name = ?", (STUDY,))]


def _running_trial_has_a_heartbeat(root: Path) -> bool:
    """Optuna alone never fails a trial killed before its first heartbeat; spendlab's storage
    fails it once the grace period has passed since it started (``tuning._storage_class``). The
    kill waits for the heartbeat row so that this test's timing covers the ordinary case."""
    with sqlite3.connect(root / "mlruns" / "optuna.db") as con:
        try:
            return con.execute("SELECT count(*) FROM trials t JOIN trial_heartbeats h USING (trial_id) "
                               "WHERE t.state = 'RUNNING'").fetchone()[0] > 0
        except sqlite3.OperationalError:  # tables not created yet
            return False


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crash")
    write_experiment(root, models=["zero", "last_period", "ridge"], params={}, users=150)
    cfg = _config(root, 3)
    _run(root, cfg, root / "baseline.log")
    baseline = _outputs(root)
    # A rerun is what the kills below interrupt (the study is complete by then): time one, so every
    # kill lands while a job is still running, however fast or slow this machine is.
    t0 = time.monotonic()
    _run(root, cfg, root / "timed-rerun.log")
    return {"root": root, "cfg": cfg, "baseline": baseline, "registry": _registry(root),
            "rerun_seconds": time.monotonic() - t0}


def test_row56_row59_killed_jobs_leave_final_outputs_and_champion_intact_and_a_rerun_reproduces_them(
        job: dict) -> None:
    root, cfg, baseline = job["root"], job["cfg"], job["baseline"]
    versions, champion = job["registry"]
    assert versions == ["1"] and champion == "1"
    assert {"validation.json", "describe/report.html", "experiment/leaderboard.csv", "scores.parquet",
            "promotion.json"} <= set(baseline)
    orphans: set[str] = set()
    for seed in KILL_SEEDS:
        delay = random.Random(seed).uniform(0.05, 0.8) * job["rerun_seconds"]
        log = root / f"killed-{seed}.log"
        proc = _start(root, cfg, log)
        time.sleep(delay)
        # the kill must hit a running job: a job that finished first would test nothing
        assert proc.poll() is None, f"seed {seed}: the job ended before the kill at {delay:.1f}s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        now = _outputs(root)
        # nothing half-written at a final path: every file there is a complete baseline file
        # (promotion.json is rewritten as "unchanged" by a promote stage that finished)
        assert set(now) == set(baseline), f"seed {seed}, killed after {delay:.1f}s"
        changed = {k for k in now if now[k] != baseline[k]}
        assert changed <= {"promotion.json"}, (seed, changed)
        if changed:
            assert str(json.loads((root / "outputs" / "promotion.json").read_text())["version"]) == "1"
        assert _registry(root) == (["1"], "1"), f"seed {seed}: the registry changed"
        orphans |= {rid for rid, r in _runs_by_status(root).items() if r["status"] == "RUNNING"}

    # a killed job that got as far as its own orphan sweep marked the earlier kills' runs itself: the
    # final rerun marks exactly the runs still RUNNING before it (and every orphan ends marked, below)
    left = {rid for rid, r in _runs_by_status(root).items() if r["status"] == "RUNNING"}
    final_log = root / "rerun.log"
    _run(root, cfg, final_log)
    runs = _runs_by_status(root)
    assert not [rid for rid, r in runs.items() if r["status"] == "RUNNING"]
    for rid in orphans:
        assert runs[rid]["killed_reason"].startswith("orphaned: process "), rid
        # a killed study's parent run is resumed by the next tuning and finishes then
        assert runs[rid]["status"] == "KILLED" or (runs[rid]["kind"] == "tuning" and runs[rid]["status"] == "FINISHED")
    if left:
        assert f"marked {len(left)} orphaned MLflow run(s)" in final_log.read_text()
    # row 59: the rerun reproduces every output byte for byte and registers nothing new
    rerun = _outputs(root)
    assert {k: v for k, v in rerun.items() if k != "promotion.json"} == \
           {k: v for k, v in baseline.items() if k != "promotion.json"}
    promotion = json.loads((root / "outputs" / "promotion.json").read_text())
    # promotion.json is the one output that differs from the first run: it says "unchanged" now
    assert str(promotion["version"]) == "1" and not promotion["new_version"]
    assert promotion["reason"].startswith("unchanged")
    assert _registry(root) == (["1"], "1")
    assert _trial_states(root).count("COMPLETE") + _trial_states(root).count("PRUNED") == 3


def test_a_job_killed_during_a_trial_resumes_its_study_to_the_target(job: dict) -> None:
    root = job["root"]
    cfg = _config(root, 4)  # one more trial than the baseline study holds
    log = root / "killed-trial.log"
    proc = _start(root, cfg, log)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if (root / "mlruns" / "optuna.db").exists() and _running_trial_has_a_heartbeat(root):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no trial started (exit {proc.poll()}):\n{log.read_text()}")
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _trial_states(root).count("RUNNING") == 1
    orphans = {rid for rid, r in _runs_by_status(root).items() if r["status"] == "RUNNING"}
    assert orphans
    # past the study's heartbeat grace, the orphaned trial is stale and is failed
    time.sleep(max(0.0, killed_at + GRACE + 1 - time.time()))
    _run(root, cfg, root / "resumed.log")
    states = _trial_states(root)
    assert "RUNNING" not in states
    assert states.count("COMPLETE") + states.count("PRUNED") == 4
    assert states.count("FAIL") == 1  # the killed trial, failed by the heartbeat and retried
    runs = _runs_by_status(root)
    assert not [rid for rid, r in runs.items() if r["status"] == "RUNNING"]
    assert all(runs[rid]["killed_reason"] for rid in orphans)
