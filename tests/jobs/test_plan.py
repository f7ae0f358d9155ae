"""An experiment is planned once, before any run opens, and the plan is all ``execute`` reads besides
its data: parameters with their sources, the feature set, the tuned per-origin settings."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from spendlab.jobs.experiment import execute, run_experiment
from spendlab.jobs.plan import load_experiment, plan_experiment, plan_tune
from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow

FOLDS = {"2023-07-31": {"alpha": 0.5}, "2023-08-31": {"alpha": 2.0}, "2023-09-30": {"alpha": 8.0}}


def _setup(root: Path) -> Path:
    """A small experiment with a feature file, experiment params and a hand-written tuned file."""
    exp = write_experiment(root, models=["zero", "last_period", "ridge", "lightgbm"], users=120,
                           params={"lightgbm": {"n_estimators": 20, "num_leaves": 7}})
    (root / "features.yaml").write_text(yaml.safe_dump({"weekly_activity_windows": [4]}))
    spec = yaml.safe_load(exp.read_text())
    spec["features"] = str(root / "features.yaml")
    exp.write_text(yaml.safe_dump(spec, sort_keys=False))
    tuned = root / "configs" / "tuned"
    tuned.mkdir(parents=True)
    (tuned / "synth_next_month-ridge.yaml").write_text(yaml.safe_dump({"params": {"alpha": 3.0},
                                                                       "fold_params": FOLDS}))
    return exp


def test_the_plan_names_every_parameter_source_and_cannot_be_changed(workdir: Path) -> None:
    exp = _setup(workdir)
    plan = plan_experiment(load_experiment(exp), experiment_path=exp)

    assert plan.keys == ("zero", "last_period", "ridge", "lightgbm")
    assert plan.features.weekly_activity_windows == (4,)
    ridge, lgbm, zero = plan.models["ridge"], plan.models["lightgbm"], plan.models["zero"]
    assert ridge.tuned and dict(ridge.params) == {"alpha": 3.0}
    assert ridge.sources["alpha"] == "tuned"
    assert {c.isoformat(): dict(p) for c, p in ridge.fold_params.items()} == FOLDS
    assert not lgbm.tuned and dict(lgbm.params) == {"n_estimators": 20, "num_leaves": 7}
    assert lgbm.sources["n_estimators"] == "experiment" and lgbm.sources["learning_rate"] == "default"
    assert set(lgbm.sources) == set(lgbm.resolved())
    assert dict(zero.params) == {} and set(zero.sources.values()) <= {"default"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.keys = ("zero",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ridge.params["alpha"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.models["zero"] = ridge  # type: ignore[index]
    as_json = json.loads(plan.to_json())
    assert as_json["models"]["ridge"]["fold_params"] == FOLDS
    assert as_json["models"]["lightgbm"]["resolved"]["n_estimators"] == 20


def test_an_ensemble_plans_its_members_even_when_they_are_not_reported(workdir: Path) -> None:
    exp = _setup(workdir)
    plan = plan_experiment(load_experiment(exp), models=["zero", "ensemble"])
    assert plan.keys == ("zero", "ensemble")
    assert list(plan.models) == ["zero", "ridge", "lightgbm"]  # the members, after the single models


def test_a_tuning_plan_starts_from_the_experiment_params_within_the_search_space(workdir: Path) -> None:
    exp = _setup(workdir)
    plan = plan_tune(load_experiment(exp), model_key="lightgbm", n_trials=3)
    assert dict(plan.base_params) == {"n_estimators": 20, "num_leaves": 7}
    assert plan.baseline_params["n_estimators"] == 20 and plan.baseline_params["num_leaves"] == 7
    assert json.loads(plan.to_json())["model"] == "lightgbm"


def test_execute_reads_no_config_file_only_the_plans_data(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the experiment YAML, the feature file and the tuned file deleted after planning and every
    YAML reader disabled, ``execute`` writes the same leaderboard as a run that reads them, and the only
    file under the project it opens for reading through Python is in the data, the run store or
    its own output."""
    exp = _setup(workdir)
    models = ["zero", "last_period", "ridge"]
    reference = run_experiment(exp, models=models, out_dir=workdir / "ref")
    plan = plan_experiment(load_experiment(exp), experiment_path=exp, models=models)
    for path in (exp, workdir / "features.yaml"):
        path.unlink()
    shutil.rmtree(workdir / "configs")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"execute read a config: {args}")

    import spendlab.config
    import spendlab.jobs.features
    import spendlab.jobs.plan
    import spendlab.jobs.tuned_params

    for module in (spendlab.config, spendlab.jobs.features, spendlab.jobs.plan, spendlab.jobs.tuned_params):
        monkeypatch.setattr(module, "load_yaml", refuse)
    monkeypatch.setattr(yaml, "safe_load", refuse)
    opened: list[Path] = []
    real_open = builtins.open

    def recording_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, Path)) and not any(c in mode for c in "wax+"):
            opened.append(Path(file).resolve())
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    result = execute(plan, out_dir=workdir / "out")
    monkeypatch.undo()

    allowed = [(workdir / d).resolve() for d in ("data", "mlruns", "out")]
    under_project = [p for p in opened if p.is_relative_to(workdir.resolve())]
    assert all(any(p.is_relative_to(a) for a in allowed) for p in under_project), under_project
    pd.testing.assert_frame_equal(pd.read_csv(result.paths["leaderboard"]),
                                  pd.read_csv(reference.paths["leaderboard"]))
    pd.testing.assert_frame_equal(pd.read_parquet(result.paths["predictions"]),
                                  pd.read_parquet(reference.paths["predictions"]))


def test_the_run_logs_its_plan_and_uses_the_tuned_fold_settings(workdir: Path) -> None:
    import mlflow

    exp = _setup(workdir)
    plan = plan_experiment(load_experiment(exp), experiment_path=exp, models=["zero", "ridge"])
    result = execute(plan, out_dir=workdir / "out")
    client = mlflow.MlflowClient(f"sqlite:///{Path.cwd()}/mlruns/mlflow.db")
    logged = client.download_artifacts(result.parent_run_id, "plan.json", str(workdir / "dl"))
    assert json.loads(Path(logged).read_text()) == json.loads(plan.to_json())
    child = mlflow.search_runs(experiment_names=["synth_next_month"], output_format="list",
                               filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}' "
                                             "and tags.model = 'ridge'")
    assert child[0].data.params["hp.validation_scoring"] == "cross_fitted"
    assert [v for k, v in child[0].data.params.items() if k.endswith("alpha")] == ["3.0"]
    assert min(plan.models["ridge"].fold_params) == dt.date(2023, 7, 31)
