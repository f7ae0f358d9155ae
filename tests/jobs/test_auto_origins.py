"""A plan with ``validation: auto`` gets explicit origins when the data's first period is known."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from spendlab.forecast.protocol import ExperimentConfig
from spendlab.jobs.auto_origins import resolve_plan
from spendlab.jobs.plan import ModelPlan, plan_experiment

D = dt.date


def test_resolve_plan_lists_the_origins_and_drops_tuned_folds_that_do_not_cover_them(tmp_path) -> None:
    cfg = ExperimentConfig.model_validate({
        "name": "auto", "dataset": {"input": "x.parquet"}, "validation": "auto", "train_origins": 2,
        "test": {"dates": ["2023-10-31"]}, "models": ["ridge", "lightgbm"]})
    plan = plan_experiment(cfg, tuned_dir=tmp_path)
    folds = MappingProxyType({D(2023, 8, 31): MappingProxyType({"alpha": 1.0}),
                              D(2023, 9, 30): MappingProxyType({"alpha": 2.0})})
    tuned = ModelPlan("ridge", MappingProxyType({"alpha": 1.5}), MappingProxyType({"alpha": "tuned"}), folds,
                      tmp_path / "ridge.yaml")
    plan = plan.__class__(plan.experiment, plan.features, plan.keys,
                          MappingProxyType({**plan.models, "ridge": tuned}), None)
    got = resolve_plan(plan, D(2023, 6, 30))  # data from June: 2 training origins -> first origin 2023-08-31
    assert got.experiment.origins("validation") == [D(2023, 8, 31), D(2023, 9, 30)]
    assert dict(got.models["ridge"].fold_params) == dict(folds)  # the folds cover both origins: kept
    earlier = resolve_plan(plan, D(2023, 5, 31))  # one more origin (2023-07-31) that no fold covers
    assert earlier.experiment.origins("validation")[0] == D(2023, 7, 31)
    assert dict(earlier.models["ridge"].fold_params) == {} and earlier.models["ridge"].tuned
    assert '"2023-07-31"' in earlier.to_json()  # the logged plan holds the resolved dates
    assert resolve_plan(got, D(2023, 1, 31)) is got  # explicit origins: unchanged


def test_an_experiment_with_validation_auto_runs_on_every_origin_the_data_allow(workdir) -> None:
    import json

    import yaml
    from mlflow import MlflowClient

    from spendlab.jobs.experiment import run_experiment

    from .conftest import write_experiment

    path = write_experiment(workdir, models=["zero", "ridge", "sm_tweedie_glm"], users=200)
    spec = yaml.safe_load(path.read_text())
    spec["validation"] = "auto"
    spec["selection"] = {"rule": "lowest_mean"}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    res = run_experiment(path, out_dir=workdir / "out", tuned_dir=workdir / "tuned")
    # data from 2023-01, 3 training origins -> 2023-04-30 .. 2023-09-30 (the first test cutoff is 2023-10-31)
    want = [f"2023-{m:02d}-{d}" for m, d in ((4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30))]
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    run = client.get_run(res.parent_run_id)
    assert run.data.tags["selection_origins"] == "6" and run.data.tags["selection_few_origins"] == "false"
    plan = json.loads(client.download_artifacts(res.parent_run_id, "plan.json", str(workdir)) and
                      (workdir / "plan.json").read_text())
    assert plan["experiment"]["validation"]["dates"] == want
    board = res.leaderboard.set_index("model")
    learned = board.drop(index="zero")
    assert res.champion == learned["validation_rmse"].idxmin()  # lowest_mean, as configured
    html = (workdir / "out" / "report.html").read_text(encoding="utf-8")
    assert "Chosen by lowest_mean on 6 validation origins" in html and "Warning" not in html
