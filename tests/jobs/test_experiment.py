"""The experiment runner end to end on a small synthetic millions export (weekly, 4-week horizon):
outputs, champion choice, independent oracles, MLflow layout, tuned params, failure handling."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from spendlab.datasets.synth import synth_transactions
from spendlab.forecast.leaderboard import LEADERBOARD_COLUMNS, PREDICTION_COLUMNS
from spendlab.io import load_transactions
from spendlab.jobs.experiment import compare_runs, load_experiment, run_experiment
from spendlab.models import registry

pytestmark = pytest.mark.slow

MODELS = ["zero", "last_period", "sm_tweedie_glm", "lightgbm", "ensemble"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exp")
    synth_transactions(root / "millions.csv", users=150, months=4, fmt="millions", start="2023-09-01", seed=7)
    spec = {
        "name": "tiny_weekly", "dataset": {"input": str(root / "millions.csv"), "format": "millions", "name": "tiny"},
        "freq": "week", "horizon": 4, "train_origins": 3,
        "validation": {"dates": ["2023-10-22", "2023-10-29"]},
        "test": {"dates": ["2023-11-26", "2023-12-03"]},
        "models": MODELS, "ensemble_members": ["sm_tweedie_glm", "lightgbm"],
        "params": {"lightgbm": {"n_estimators": 40}},
        "segments": {"active_window": 4},
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(spec))
    return root


@pytest.fixture(scope="module")
def first_run(workdir: Path) -> object:
    mp = pytest.MonkeyPatch()
    mp.chdir(workdir)
    try:
        yield run_experiment(workdir / "tiny.yaml", out_dir=workdir / "out", tuned_dir=workdir / "tuned")
    finally:
        mp.undo()


def test_leaderboard_has_every_model_and_one_champion_chosen_on_validation(first_run: object, workdir: Path) -> None:
    board = pd.read_csv(workdir / "out" / "leaderboard.csv")
    assert list(board.columns[: len(LEADERBOARD_COLUMNS)]) == list(LEADERBOARD_COLUMNS)
    assert sorted(board["model"]) == sorted(MODELS)
    assert board["champion"].sum() == 1
    learned = board[~board["model"].isin(registry.BASELINES)]
    assert board.loc[board["champion"], "model"].item() == learned.sort_values("validation_rmse")["model"].iloc[0]
    assert first_run.champion == board.loc[board["champion"], "model"].item()


def test_predictions_cover_every_acquired_user_and_match_a_pandas_oracle(workdir: Path) -> None:
    preds = pd.read_parquet(workdir / "out" / "predictions.parquet")
    assert list(preds.columns) == [*PREDICTION_COLUMNS, "p_spend", "median", "lower", "upper"]
    assert (preds["y_pred"] >= 0).all() and np.isfinite(preds["y_pred"]).all()
    # every model's rows carry P(spend) and an 80% interval of the realized amount
    assert preds[["p_spend", "median", "lower", "upper"]].notna().all().all()
    assert ((preds["p_spend"] >= 0) & (preds["p_spend"] <= 1)).all()
    assert ((preds["lower"] >= 0) & (preds["lower"] <= preds["median"]) & (preds["median"] <= preds["upper"])).all()
    tx = load_transactions(str(workdir / "millions.csv"), "millions").to_pandas()
    tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    for cutoff in (dt.date(2023, 11, 26), dt.date(2023, 12, 3)):
        end = pd.Timestamp(cutoff + dt.timedelta(days=1))
        users = sorted(tx.loc[tx["ts"] < end, "user_id"].unique())
        window = tx[(tx["ts"] >= end) & (tx["ts"] < end + pd.Timedelta(days=28)) & (tx["amount"] > 0)]
        oracle = window.groupby("user_id")["amount"].sum().reindex(users, fill_value=0.0)
        for model in MODELS:
            got = preds[(preds["model"] == model) & (preds["cutoff"] == cutoff)].set_index("user_id")
            assert sorted(got.index) == users  # one row per user acquired by the cutoff
            np.testing.assert_allclose(got.loc[users, "y_true"], oracle.to_numpy(), rtol=1e-9)
            assert got["target_period"].iloc[0] == cutoff + dt.timedelta(days=1)
    # The leaderboard's RMSE of `zero` is the mean over origins of the RMS of actual spend.
    board = pd.read_csv(workdir / "out" / "leaderboard.csv").set_index("model")
    zero = preds[preds["model"] == "zero"]
    rms = zero.groupby("cutoff")["y_true"].apply(lambda s: np.sqrt(np.mean(s ** 2))).mean()
    assert board.loc["zero", "rmse"] == pytest.approx(rms, rel=1e-5)


def test_mlflow_has_a_parent_run_with_one_child_per_model(first_run: object, workdir: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    parent = client.get_run(first_run.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["champion"] == first_run.champion
    assert parent.info.artifact_uri.startswith((workdir / "mlruns").resolve().as_uri())
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["model"] for r in children) == sorted(MODELS)
    for r in children:
        assert r.info.status == "FINISHED"
        assert {"test_rmse", "test_bias", "validation_rmse", "interval_coverage_80"} <= set(r.data.metrics)
        assert r.data.tags["dataset_hash"] and r.data.tags["git_commit"] and r.data.tags["tuned"] == "false"
        assert r.inputs.dataset_inputs[0].dataset.name == "tiny"
        arts = {a.path for a in client.list_artifacts(r.info.run_id)} | {
            a.path for a in client.list_artifacts(r.info.run_id, "figures")}
        assert {"predictions.parquet", "metrics.csv", "figures/calibration.png",
                "figures/error_by_segment.png"} <= arts
    lgb = next(r for r in children if r.data.tags["model"] == "lightgbm")
    assert lgb.data.params["hp.estimator__n_estimators"] == "40"
    assert "figures/feature_importance.png" in {a.path for a in client.list_artifacts(lgb.info.run_id, "figures")}


def test_tuned_params_file_is_picked_up_and_compare_spans_invocations(first_run: object, workdir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    (workdir / "tuned").mkdir(exist_ok=True)
    (workdir / "tuned" / "tiny_weekly-lightgbm.yaml").write_text(yaml.safe_dump({"params": {"n_estimators": 25}}))
    second = run_experiment(workdir / "tiny.yaml", models=["lightgbm"], out_dir=workdir / "out2",
                            tuned_dir=workdir / "tuned")
    assert second.leaderboard["tuned"].tolist() == [True]
    board, diff = compare_runs("tiny_weekly", top=10)
    assert (board["model"] == "lightgbm").sum() == 2
    lgb_params = diff[diff["param"] == "hp.estimator__n_estimators"]
    assert set(lgb_params.iloc[0, 1:].dropna()) >= {"40", "25"}


def test_a_failing_model_fails_the_runs_and_writes_no_leaderboard(workdir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(registry.MODELS["zero"]):  # type: ignore[misc, valid-type]
        def fit(self, X, y=None):  # noqa: ANN001, ANN201
            raise RuntimeError("injected failure")

    monkeypatch.setitem(registry.MODELS, "boom", Boom)
    monkeypatch.chdir(workdir)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_experiment(workdir / "tiny.yaml", models=["zero", "boom"], out_dir=workdir / "out_fail")
    assert not (workdir / "out_fail" / "leaderboard.csv").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("tiny_weekly")
    failed = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FAILED'")
    assert {r.data.tags.get("model", "parent") for r in failed} >= {"boom", "parent"}
    assert all("injected failure" in r.data.tags["failure_reason"] for r in failed)


def test_experiment_yaml_rejects_validation_origins_that_overlap_the_test_targets(tmp_path: Path) -> None:
    from spendlab.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "dataset": {"input": "builtin:cdnow", "format": "cdnow"},
                                   "validation": {"dates": ["1997-10-31"]}, "test": {"dates": ["1997-10-31"]}}))
    with pytest.raises(ConfigError, match="not strictly before the first test cutoff"):
        load_experiment(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "dataset": {"input": "builtin:cdnow", "format": "cdnow"},
                                   "validation": {"dates": ["1997-09-30"]}, "test": {"dates": ["1997-10-30"]}}))
    with pytest.raises(ConfigError, match="month ends"):
        load_experiment(bad)


def test_cli_experiment_run_prints_a_leaderboard_and_compare_lists_runs(workdir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from spendlab.cli import app

    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SPENDLAB_TRACKING_URI", f"sqlite:///{workdir}/cli.db")
    runner = CliRunner()
    res = runner.invoke(app, ["experiment", "run", str(workdir / "tiny.yaml"), "--models", "zero,last_period",
                              "--out", str(workdir / "out_cli")])
    assert res.exit_code == 0, res.output
    assert "champion: " in res.output and "last_period" in res.output
    board = pd.read_csv(workdir / "out_cli" / "leaderboard.csv")
    assert sorted(board["model"]) == ["last_period", "zero"]
    res = runner.invoke(app, ["compare", "tiny_weekly"])
    assert res.exit_code == 0, res.output
    assert "model runs across invocations" in res.output and "zero" in res.output
