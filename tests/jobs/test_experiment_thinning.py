"""``train_zero_fraction`` end to end: recorded in MLflow, and a refit from the candidate fits the
same thinned, weighted rows as the backtest did (the same predictions at that origin)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from spendlab.features.config import at_origin
from spendlab.forecast.candidate import read_candidate
from spendlab.forecast.cold_start import cold_users
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.promote import candidate_store, refit
from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow


def test_the_zero_fraction_is_recorded_and_a_refit_reproduces_the_backtests_fit(workdir: Path) -> None:
    path = write_experiment(workdir, models=["zero", "lightgbm"])
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "train_zero_fraction": 0.5}, sort_keys=False))
    result = run_experiment(path, out_dir=workdir / "out")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["train_zero_fraction"] == "0.5"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    lgb = next(r for r in children if r.data.tags["model"] == "lightgbm")
    assert lgb.data.params["config.train_zero_fraction"] == "0.5"

    cand = read_candidate(Path(client.download_artifacts(result.parent_run_id, "candidates/lightgbm.json"))
                          .read_text(encoding="utf-8"))
    assert cand.experiment_config().train_zero_fraction == 0.5
    cutoff = dt.date(2023, 12, 31)
    fitted = refit(cand, cutoff=cutoff)
    _, store = candidate_store(cand)
    X = store.features(cutoff)
    warm = ~np.asarray(cold_users(X), dtype=bool)
    ours = fitted.estimator.predict(at_origin(X.drop(columns=["user_id"]), cutoff))
    preds = pd.read_parquet(workdir / "out" / "predictions.parquet")
    theirs = preds[(preds["model"] == "lightgbm") & (pd.to_datetime(preds["cutoff"]) == pd.Timestamp(cutoff))]
    theirs = theirs.set_index("user_id").loc[X["user_id"], "y_pred"].to_numpy()
    np.testing.assert_allclose(ours[warm], theirs[warm], rtol=1e-12, atol=1e-12)
