"""One candidate from experiment to score: what is registered is what was tested (issue 16).

- ``spendlab tune`` between ``experiment run`` and ``promote`` does not change what is registered;
- promoting the same candidate twice is a no-op;
- ``spendlab evaluate`` reproduces the version's recorded test RMSE;
- a failed look-up creates no tracking store;
- a model directory is verified before anything in it is unpickled or imported (issue 15 item 2).
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from spendlab.cli import app
from spendlab.forecast.candidate import read_candidate
from spendlab.jobs.evaluate import evaluate_model
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.tune import tune_experiment
from spendlab.tracking.registry import REGISTERED_MODEL, read_model_candidate, verified_model_dir
from tests.jobs.conftest import write_experiment


@pytest.fixture(scope="module")
def tested(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> dict:
    """experiment run (lightgbm, 60 trees) -> tune lightgbm (writes configs/tuned/) -> promote."""
    root = tmp_path_factory.mktemp("candidate")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    uri = mlflow_store(root / "store" / "mlflow.db")
    try:
        exp = write_experiment(root, models=["ridge", "lightgbm"], params={"lightgbm": {"n_estimators": 60}})
        result = run_experiment(exp, out_dir=root / "out", tracking_uri=uri)
        tuned = tune_experiment(exp, model_key="lightgbm", n_trials=2, tracking_uri=uri,
                                storage_url=f"sqlite:///{root}/optuna.db")
        first = promote_experiment(str(exp), tracking_uri=uri)
        again = promote_experiment(str(exp), tracking_uri=uri)
        yield {"root": root, "uri": uri, "experiment": exp, "result": result, "tuned": tuned, "first": first,
               "again": again}
    finally:
        mp.undo()


def _candidate_of_run(run_id: str, name: str = "candidate.json"):
    return read_candidate(Path(MlflowClient().download_artifacts(run_id, name)).read_text())


def test_every_model_run_logs_a_typed_candidate(tested: dict) -> None:
    mlflow.set_tracking_uri(tested["uri"])
    parent = tested["result"].parent_run_id
    champion = _candidate_of_run(parent)
    assert champion.model_key == tested["result"].champion
    for key in ("ridge", "lightgbm"):
        cand = _candidate_of_run(parent, f"candidates/{key}.json")
        assert cand.model_key == key and cand.schema_version == 1
        assert not any(k.startswith("estimator__") for k in cand.params)  # registry-level names
        assert cand.feature_names and cand.feature_config and cand.calibration["method"]
        assert cand.protocol_id and cand.experiment["name"] == "synth_next_month"
    assert _candidate_of_run(parent, "candidates/lightgbm.json").params["n_estimators"] == 60


def test_tune_between_experiment_and_promote_registers_exactly_the_tested_candidate(tested: dict) -> None:
    mlflow.set_tracking_uri(tested["uri"])
    assert Path("configs/tuned/synth_next_month-lightgbm.yaml").exists() or \
        (tested["root"] / "configs/tuned/synth_next_month-lightgbm.yaml").exists()
    tested_cand = _candidate_of_run(tested["result"].parent_run_id)
    version = MlflowClient().get_model_version(REGISTERED_MODEL, tested["first"].version)
    with verified_model_dir(f"models:/{REGISTERED_MODEL}/{version.version}") as (local, _, _):
        registered = read_model_candidate(local)
    assert registered == tested_cand  # the same params, features, calibration and figures
    assert version.tags["candidate_id"] == tested_cand.candidate_id
    assert float(version.tags["test_rmse"]) == tested_cand.figures.test_rmse
    if tested_cand.model_key == "lightgbm":  # the tuned parameters were not picked up
        assert registered.params["n_estimators"] == 60


def test_promoting_the_same_candidate_twice_is_a_no_op(tested: dict) -> None:
    assert tested["first"].new_version
    assert not tested["again"].new_version and tested["again"].version == tested["first"].version


def test_evaluate_reproduces_the_recorded_test_rmse(tested: dict) -> None:
    ev = evaluate_model(f"models:/{REGISTERED_MODEL}@champion", tested["experiment"], tracking_uri=tested["uri"])
    assert ev.reproduced and abs(ev.test_rmse - ev.recorded_test_rmse) <= 1e-6
    res = CliRunner().invoke(app, ["evaluate", f"models:/{REGISTERED_MODEL}@champion", str(tested["experiment"]),
                                   "--tracking-uri", tested["uri"]])
    assert res.exit_code == 0, res.output
    assert "recorded test RMSE" in res.output and "reproduced" in res.output


@pytest.mark.parametrize("command", ["score", "promote", "evaluate", "compare"])
def test_a_failed_lookup_creates_no_tracking_store(command: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = write_experiment(tmp_path, models=["ridge"])
    args = {"score": ["score", str(tmp_path / "data" / "tx.parquet"), "--out", "s.parquet"],
            "promote": ["promote", str(exp)],
            "evaluate": ["evaluate", f"models:/{REGISTERED_MODEL}@champion", str(exp)],
            "compare": ["compare", "synth_next_month"]}[command]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert "no MLflow tracking store" in str(res.exception) or "no MLflow tracking store" in res.output
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "s.parquet").exists()


def test_mlflow_tracking_uri_is_honoured(tested: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tested["uri"])
    res = CliRunner().invoke(app, ["score", str(tested["root"] / "data" / "tx.parquet"), "--out", "s.parquet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.parquet").exists() and not (tmp_path / "mlruns").exists()


class _Canary:
    """Unpickling this creates a file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("tamper", ["estimator", "estimator_as_joblib", "code", "unrecorded_pickle"])
def test_a_tampered_model_directory_is_refused_before_anything_is_unpickled(tested: dict, tmp_path: Path,
                                                                           tamper: str) -> None:
    mlflow.set_tracking_uri(tested["uri"])
    model_dir = tmp_path / "model"
    with verified_model_dir(f"models:/{REGISTERED_MODEL}@champion") as (local, _, _):
        shutil.copytree(local, model_dir)
    canary = tmp_path / "canary"
    if tamper == "estimator":  # a pickle under the recorded name of the skops archive
        (model_dir / "artifacts" / "estimator.skops").write_bytes(pickle.dumps(_Canary(str(canary))))
    elif tamper == "estimator_as_joblib":  # the archive replaced by a pickle named as one
        (model_dir / "artifacts" / "estimator.skops").unlink()
        (model_dir / "artifacts" / "estimator.joblib").write_bytes(pickle.dumps(_Canary(str(canary))))
    elif tamper == "code":
        code = model_dir / "pyfunc_model.py"
        code.write_text(f"from pathlib import Path\nPath({str(canary)!r}).touch()\n" + code.read_text())
    else:
        (model_dir / "python_model.pkl").write_bytes(pickle.dumps(_Canary(str(canary))))
        meta = yaml.safe_load((model_dir / "MLmodel").read_text())
        meta["flavors"]["python_function"]["python_model"] = "python_model.pkl"
        (model_dir / "MLmodel").write_text(yaml.safe_dump(meta))
    res = CliRunner().invoke(app, ["score", str(tested["root"] / "data" / "tx.parquet"), "--out",
                                   str(tmp_path / "s.parquet"), "--model", str(model_dir)])
    assert res.exit_code != 0
    assert not canary.exists(), "a pickle or code file of the tampered model ran"
    assert not (tmp_path / "s.parquet").exists()
    assert "altered" in str(res.exception) or "unexpected flavour" in str(res.exception) or \
        "manifest" in str(res.exception), res.exception


def test_an_untampered_model_directory_scores(tested: dict, tmp_path: Path) -> None:
    mlflow.set_tracking_uri(tested["uri"])
    model_dir = tmp_path / "model"
    with verified_model_dir(f"models:/{REGISTERED_MODEL}@champion") as (local, _, _):
        shutil.copytree(local, model_dir)
    # trusted because the registry it is read against records its digest (the store is named)
    res = CliRunner().invoke(app, ["score", str(tested["root"] / "data" / "tx.parquet"), "--out",
                                   str(tmp_path / "s.parquet"), "--model", str(model_dir),
                                   "--tracking-uri", tested["uri"]])
    assert res.exit_code == 0, res.output
    meta = json.loads(json.dumps(yaml.safe_load((model_dir / "MLmodel").read_text())["metadata"]))
    # ridge and lightgbm are written with skops (the booster as LightGBM's text model), not pickled
    assert meta["spendlab"]["files"]["artifacts/estimator.skops"]
    assert not [name for name in meta["spendlab"]["files"] if name.endswith((".joblib", ".pkl"))]
