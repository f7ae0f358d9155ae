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
