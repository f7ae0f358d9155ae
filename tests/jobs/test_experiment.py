"""The experiment runner end to end on a small synthetic millions export (weekly, 4-week horizon):
outputs, champion choice, independent oracles, MLflow layout, tuned params, failure handling."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from spendlab.forecast.leaderboard import LEADERBOARD_COLUMNS, PREDICTION_COLUMNS
from spendlab.forecast.selection import DEFAULT_RULE
from spendlab.io import load_transactions
from spendlab.jobs.compare import compare_runs
from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.experiment import load_experiment, run_experiment
from spendlab.models import registry

pytestmark = pytest.mark.slow

MODELS = ["zero", "last_period", "sm_tweedie_glm", "lightgbm", "ensemble", "stack"]


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
def first_run(workdir: Path, mlflow_store: Callable[[Path], str]) -> object:
    mp = pytest.MonkeyPatch()
    mp.chdir(workdir)
    mlflow_store(workdir / "mlruns" / "mlflow.db")  # where the experiment's default store goes
    try:
        yield run_experiment(workdir / "tiny.yaml", out_dir=workdir / "out", tuned_dir=workdir / "tuned")
    finally:
        mp.undo()


def test_leaderboard_has_every_model_and_one_champion_chosen_on_validation(first_run: object, workdir: Path) -> None:
    board = pd.read_csv(workdir / "out" / "leaderboard.csv")
    assert list(board.columns[: len(LEADERBOARD_COLUMNS)]) == list(LEADERBOARD_COLUMNS)
    assert sorted(board["model"]) == sorted(MODELS)
    assert board["champion"].sum() == 1
    champ = board.loc[board["champion"], "model"].item()
    assert champ not in registry.BASELINES  # chosen by the default rule: see the selection test below
    assert {"gini_norm", "spearman", "decile_mape", "delta_rmse_vs_best_peer", "ci_low", "ci_high"} <= set(board.columns)
    peer_rows = board[board["model"].isin(registry.PEERS)]
    best_peer = peer_rows.sort_values("validation_rmse")["model"].iloc[0]
    assert board.set_index("model").loc[best_peer, "delta_rmse_vs_best_peer"] == 0.0
    assert first_run.champion == board.loc[board["champion"], "model"].item()


def test_predictions_cover_every_acquired_user_and_match_a_pandas_oracle(first_run: object, workdir: Path) -> None:
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
    # Per-origin series: step = the cutoff as YYYYMMDD (weekly cutoffs share months).
    steps = sorted(m.step for m in client.get_metric_history(lgb.info.run_id, "origin/test_rmse"))
    assert steps == [20231126, 20231203]
    assert {m.step for m in client.get_metric_history(lgb.info.run_id, "origin/validation_rmse")} == {20231022,
                                                                                                       20231029}
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
    assert "hp.estimator__n_estimators" not in set(diff["param"])  # not a param every compared run has
    board, diff = compare_runs("tiny_weekly", top=10, model="lightgbm")
    assert board["model"].tolist() == ["lightgbm", "lightgbm"]
    lgb_params = diff[diff["param"] == "hp.estimator__n_estimators"]
    assert set(lgb_params.iloc[0, 1:]) == {"40", "25"}


def test_a_failing_model_fails_the_runs_and_writes_no_leaderboard(workdir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(registry.MODELS["zero"]):  # type: ignore[misc, valid-type]
        def fit(self, X, y=None):
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
                              "--out", str(workdir / "out_cli"), "--profile"])
    assert res.exit_code == 0, res.output
    assert "champion: " in res.output and "last_period" in res.output
    board = pd.read_csv(workdir / "out_cli" / "leaderboard.csv")
    assert sorted(board["model"]) == ["last_period", "zero"]
    # stdout is not a terminal (as in `... | cat`): the leaderboard is CSV with every column, untruncated.
    lines = res.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# tiny_weekly"))
    printed = pd.read_csv(io.StringIO("\n".join(lines[start + 1:start + 4])))
    assert list(printed.columns) == list(board.columns)
    pd.testing.assert_frame_equal(printed, board, check_exact=False, rtol=1e-5)
    assert "…" not in res.output and "\r" not in res.output  # no ellipsis, no progress-bar redraws
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# where the time went"))
    profile = pd.read_csv(io.StringIO("\n".join(lines[start + 1:])))
    assert profile.set_index(["stage", "detail"]).loc[("fit", "last_period"), "calls"] == 4  # --profile: per stage
    res = runner.invoke(app, ["compare", "tiny_weekly"])
    assert res.exit_code == 0, res.output
    assert "model runs across invocations" in res.output and "zero" in res.output


def test_the_champion_is_the_default_rules_pick_from_the_per_origin_validation_rmse(first_run: object,
                                                                                   workdir: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    parent = client.get_run(first_run.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    errors = pd.DataFrame({r.data.tags["model"]: {m.step: m.value for m in client.get_metric_history(
        r.info.run_id, "origin/validation_rmse")} for r in children if r.data.tags["model"] not in registry.BASELINES})
    ranks = errors.rank(axis=1, method="average").mean(axis=0)  # rank_mean by hand
    worst = (errors.to_numpy() / errors.to_numpy().min(axis=1, keepdims=True)).max(axis=0)  # minimax regret by hand
    tags = parent.data.tags
    assert tags["selection_rule"] == DEFAULT_RULE and tags[f"selection_pick.{DEFAULT_RULE}"] == first_run.champion
    assert tags["selection_pick.rank_mean"] == min(ranks.index, key=lambda m: (ranks[m], errors[m].mean(), m))
    assert tags["selection_pick.minimax_regret"] == errors.columns[int(np.argmin(worst))]
    assert tags["selection_origins"] == "2" and tags["selection_few_origins"] == "true"
    means = errors.mean()
    assert tags["selection_pick.lowest_mean"] == means.idxmin()
    board = pd.read_csv(workdir / "out" / "leaderboard.csv").set_index("model")
    assert parent.data.metrics["selection_test_rmse.lowest_mean"] == pytest.approx(board.loc[means.idxmin(), "rmse"], rel=1e-5)
    html = (workdir / "out" / "report.html").read_text(encoding="utf-8")
    assert 'id="selection-table"' in html and "on 2 validation origins" in html and "fewer than 3" in html
    assert f"runner-up on validation: {tags['runner_up']}" in html


def test_report_html_is_written_beside_the_leaderboard_and_logged_to_the_parent(first_run: object,
                                                                                 workdir: Path) -> None:
    report = workdir / "out" / "report.html"
    html = report.read_text(encoding="utf-8")
    assert first_run.paths["report"] == report
    assert html.count('src="data:image/png;base64,') == 5 and "<script" not in html
    for model in MODELS:
        assert f"<td>{model}</td>" in html
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    assert "report.html" in {a.path for a in client.list_artifacts(first_run.parent_run_id)}
    note = client.get_run(first_run.parent_run_id).data.tags["mlflow.note.content"]
    assert note.startswith(f"**Champion: {first_run.champion}**")
    assert all(f"| {m} |" in note or f"| **{m}** |" in note for m in MODELS)


def test_child_runs_are_dated_by_their_backtests_not_by_their_logging(first_run: object, workdir: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    parent = client.get_run(first_run.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_model = {r.data.tags["model"]: r.info for r in children}
    for model, info in by_model.items():
        assert parent.info.start_time <= info.start_time <= info.end_time <= parent.info.end_time, model
        assert children[0].data.tags["kind"] == "model"
    # The first backtest builds every cutoff's features: it cannot have taken less than its successors'
    # logging, which is what the runs measured before (each child was created after all backtests).
    spans = sorted(info.start_time for info in by_model.values())
    assert spans[0] < by_model["lightgbm"].end_time


def test_compare_lists_only_model_runs_sorted_by_the_metric_shown(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two experiment invocations plus a tuning study (parent + trials) and a promotion run."""
    import json

    from typer.testing import CliRunner

    from spendlab.cli import app
    from spendlab.tracking import runs as tracking
    from spendlab.tracking import studies
    from tests.jobs.conftest import write_experiment

    monkeypatch.chdir(tmp_path)
    exp = write_experiment(tmp_path, models=["zero", "last_period"], users=60)
    run_experiment(exp, out_dir=tmp_path / "a", tuned_dir=tmp_path / "tuned")
    run_experiment(exp, models=["last_period"], out_dir=tmp_path / "b", tuned_dir=tmp_path / "tuned")
    with studies.study_run(experiment_name="synth_next_month", study_name="s", tags={"model": "ridge"}) as study:
        with studies.trial_run(study.info.run_id, 0, {"alpha": 1.0}) as trial:
            trial.metric("validation_rmse", 0.001)
    with tracking.start_parent_run("synth_next_month", run_name="promote-zero",
                                   tags={"kind": "promotion", "model": "zero"}) as promo:
        promo.metrics({"test_rmse": 0.0, "validation_rmse": 0.0})

    board, _ = compare_runs("synth_next_month")
    assert sorted(board["model"]) == ["last_period", "last_period", "zero"]
    assert board["rmse"].is_monotonic_increasing and list(board.columns[:3]) == ["model", "started", "rmse"]
    board, _ = compare_runs("synth_next_month", metric="top10_capture")
    assert board["top10_capture"].is_monotonic_decreasing and board.columns[2] == "top10_capture"

    res = CliRunner().invoke(app, ["compare", "synth_next_month", "--metric", "mae", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    maes = [r["mae"] for r in payload["runs"]]
    assert maes == sorted(maes) and len(maes) == 3 and payload["metric"] == "mae"
    # Params every compared run has, and only those that differ: the two last_period runs are equal.
    res = CliRunner().invoke(app, ["compare", "synth_next_month", "--model", "last_period", "--json"])
    assert json.loads(res.stdout)["param_diff"] == []
    res = CliRunner().invoke(app, ["compare", "synth_next_month"])  # stdout is not a terminal: CSV
    lines = res.stdout.splitlines()
    assert lines[0].startswith("# synth_next_month: model runs") and lines[1].startswith("model,started,rmse,")
    assert len([ln for ln in lines if ln.startswith(("zero,", "last_period,"))]) == 3
    res = CliRunner().invoke(app, ["compare", "synth_next_month", "--metric", "no_such"])
    assert res.exit_code != 0


@pytest.mark.parametrize("key", ["ensemble", "stack"])
def test_a_combination_refitted_from_its_candidate_reproduces_its_composed_test_score(
        first_run: object, workdir: Path, key: str) -> None:
    """The experiment composes ``ensemble`` and ``stack`` from their members' predictions; promote and
    ``spendlab evaluate`` rebuild them from ``candidate.json`` and refit: the same test RMSE."""
    from spendlab.forecast.backtest import run_backtest
    from spendlab.forecast.candidate import read_candidate

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    cand = read_candidate(Path(client.download_artifacts(first_run.parent_run_id, f"candidates/{key}.json"))
                          .read_text(encoding="utf-8"))
    assert cand.model_key == key and set(cand.params["member_params"]) == set(cand.params["members"])
    if key == "stack":
        assert "all" in cand.params["weights"] and cand.params["active_window"] == 4
    tx = load_transactions(str(workdir / "millions.csv"), "millions")
    res = run_backtest(tx, experiment=load_experiment(workdir / "tiny.yaml"), model_key=key, params=cand.params,
                       origins="test")
    board = pd.read_csv(workdir / "out" / "leaderboard.csv").set_index("model")
    assert res.means["test_rmse"] == pytest.approx(board.loc[key, "rmse"], abs=5e-4)  # the CSV has 3 decimals
    assert res.means["test_rmse"] == pytest.approx(cand.figures.test_rmse, abs=1e-9)


def test_profile_times_every_stage_and_the_parent_run_records_it(first_run: object, workdir: Path) -> None:
    prof = first_run.profile
    origins = 4  # 2 validation + 2 test
    calls = prof.set_index(["stage", "detail"])["calls"]
    backtested = [m for m in MODELS if m not in ("ensemble", "stack")]
    for model in backtested:  # every model's fit and predict, once per origin
        assert calls[("fit", model)] == origins and calls[("predict", model)] == origins
    assert calls[("blend", "ensemble")] == 1 and calls[("blend", "stack")] == 1
    assert calls[("bootstrap", f"{len(MODELS)} models x 1000")] == 1
    assert calls[("load", "tiny")] == 1
    assert {("mlflow", m) for m in MODELS} <= set(calls.index)
    assert (prof["seconds"] >= 0).all() and (prof["cpu_seconds"] >= 0).all()
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    parent = client.get_run(first_run.parent_run_id)
    stages = pd.read_csv(client.download_artifacts(parent.info.run_id, "profile/stages.csv", str(workdir / "dl")))
    assert set(stages.columns) >= {"stage", "detail", "origin", "seconds", "cpu_seconds"}
    fits = stages[(stages["stage"] == "fit") & (stages["detail"] == "lightgbm")]
    built = stages.loc[stages["stage"] == "features", "origin"]
    assert built.is_unique and set(fits["origin"]) <= set(built)  # each cutoff built once, shared by every model
    assert sorted(fits["origin"]) == ["2023-10-22", "2023-10-29", "2023-11-26", "2023-12-03"]
    for stage, total in stages.groupby("stage")["seconds"].sum().items():
        assert parent.data.metrics[f"profile_seconds.{stage}"] == pytest.approx(total, rel=1e-9)
