"""Promotion to the MLflow Model Registry and batch scoring with the registered champion."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from spendlab.features import build_features
from spendlab.io import load_transactions
from spendlab.io.atomic import OutputWriteError
from spendlab.io.load import connect
from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.score import score
from spendlab.tracking.registry import EXIT_NOT_PROMOTED, REGISTERED_MODEL
from spendlab.tracking.scorer import BASIS_COLD_START, BASIS_MODEL, load_model
from tests.jobs.conftest import write_experiment

CHAMPION = f"models:/{REGISTERED_MODEL}@champion"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> Iterator[dict]:
    """Three promotions in one store: a first champion, a worse candidate, a better candidate."""
    root = tmp_path_factory.mktemp("registry")
    mlflow_store(root / "mlruns" / "mlflow.db")  # where the experiments' default store goes
    old = os.getcwd()
    os.chdir(root)
    try:
        outcomes = {}
        for label, models in (("first", ["last_period"]), ("worse", ["zero"]), ("better", ["ridge"])):
            exp = write_experiment(root, models=models)
            run_experiment(exp, out_dir=root / "out" / label)
            outcomes[label] = promote_experiment(str(exp))
        yield {"root": root, "outcomes": outcomes, "experiment": exp}
    finally:
        os.chdir(old)


@pytest.fixture
def in_registry(registry: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(registry["root"])
    mlflow.set_tracking_uri(f"sqlite:///{Path.cwd()}/mlruns/mlflow.db")
    return registry


def test_first_candidate_becomes_champion(in_registry: dict) -> None:
    first = in_registry["outcomes"]["first"]
    assert first.promoted and first.new_version and first.exit_code == 0
    assert first.reason.startswith("first champion")


def test_worse_model_is_registered_but_does_not_take_the_alias(in_registry: dict) -> None:
    worse = in_registry["outcomes"]["worse"]
    assert not worse.promoted and worse.new_version
    assert worse.exit_code == EXIT_NOT_PROMOTED
    tags = MlflowClient().get_model_version(REGISTERED_MODEL, worse.version).tags
    assert tags["promoted"] == "false"
    assert "does not beat champion version" in tags["promotion_reason"]
    assert float(tags["test_rmse"]) >= float(
        MlflowClient().get_model_version(REGISTERED_MODEL, in_registry["outcomes"]["first"].version).tags["test_rmse"])


def test_better_model_takes_the_alias_and_its_tags_say_why(in_registry: dict) -> None:
    better = in_registry["outcomes"]["better"]
    assert better.promoted and better.exit_code == 0
    client = MlflowClient()
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
    assert str(champion.version) == better.version
    tags = champion.tags
    assert tags["model_key"] == "ridge" and tags["promoted"] == "true"
    assert tags["promotion_reason"].startswith(f"beats champion version {better.previous_champion}")
    assert tags["train_cutoff"] == "2024-02-29"  # the latest complete month of the synthetic data
    for key in ("feature_set_version", "fingerprint", "protocol", "dataset_hash", "interval_coverage_80"):
        assert tags[key]


def test_repromoting_the_same_champion_registers_nothing(in_registry: dict) -> None:
    before = len(MlflowClient().search_model_versions(f"name = '{REGISTERED_MODEL}'"))
    again = promote_experiment(str(in_registry["experiment"]))
    assert not again.new_version and again.promoted and again.exit_code == 0
    assert len(MlflowClient().search_model_versions(f"name = '{REGISTERED_MODEL}'")) == before


def _features(root: Path, as_of: str = "2024-02-29") -> pd.DataFrame:
    tx = load_transactions(str(root / "data" / "tx.parquet"), "generic")
    con = connect()
    tx.register(con)
    return build_features(con, freq="month", as_of=as_of)


def test_champion_loads_by_alias_and_predicts_on_a_feature_frame(in_registry: dict) -> None:
    model = mlflow.pyfunc.load_model(CHAMPION)
    feats = _features(in_registry["root"])
    out = model.predict(feats)
    assert list(out.columns) == ["user_id", "prediction", "p_spend", "median", "lower", "upper", "segment", "basis"]
    assert out["user_id"].tolist() == feats["user_id"].astype(str).tolist()
    assert (out["prediction"] >= 0).all() and (out["lower"] <= out["upper"]).all() and (out["lower"] >= 0).all()
    assert ((out["p_spend"] >= 0) & (out["p_spend"] <= 1)).all()
    assert set(out["segment"]) <= {"new", "active", "lapsed"}


def test_missing_feature_column_is_a_schema_error_naming_it(in_registry: dict) -> None:
    model = mlflow.pyfunc.load_model(CHAMPION)
    feats = _features(in_registry["root"]).drop(columns=["spend_lag1"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="spend_lag1"):
        model.predict(feats)


def test_wrong_dtype_feature_column_is_a_schema_error(in_registry: dict) -> None:
    model = mlflow.pyfunc.load_model(CHAMPION)
    feats = _features(in_registry["root"])
    feats["mean_basket"] = feats["mean_basket"].map(lambda v: f"{v:.2f} USD")
    with pytest.raises(mlflow.exceptions.MlflowException, match="mean_basket"):
        model.predict(feats)


def test_altered_model_artifact_is_refused(in_registry: dict, tmp_path: Path) -> None:
    """Catalogue row 66: flip one byte of the registered estimator; loading is refused."""
    import shutil

    version = MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, "champion")
    local = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "m")))
    est = next(local.rglob("estimator.skops"))
    data = bytearray(est.read_bytes())
    data[len(data) // 2] ^= 0xFF
    est.write_bytes(bytes(data))
    with pytest.raises(Exception, match="altered after registration"):
        mlflow.pyfunc.load_model(str(local))
    with pytest.raises(Exception, match="altered after registration"):
        load_model(str(local))
    shutil.rmtree(local)


def test_two_month_millions_export_gets_one_scored_row_per_user(in_registry: dict, tmp_path: Path) -> None:
    """Issue 7: every user of a short export gets a prediction, an interval and a basis."""
    export = tmp_path / "export.csv"
    synth_transactions(export, users=120, months=2, start="2021-11-01", seed=5, fmt="millions")
    # a refund-only user: outside what the model learned, so it gets the cold-start fallback
    with open(export, "a", encoding="utf-8") as fh:
        fh.write('auth,"{""amount"":""4.00""}",2021-12-03 9:15:00,99999\n')
    tx = load_transactions(str(export), "millions")
    users = tx.to_pandas()["user_id"].nunique()
    out = tmp_path / "scores.parquet"
    result = score(tx, out=out, model=load_model(), progress=False, chunk_users=50)
    scores = pd.read_parquet(out)
    assert result.users_in == users == len(scores) == scores["user_id"].nunique()
    assert result.as_of.isoformat() == "2021-12-31" and set(scores["target_period"]) == {"2022-01"}
    assert (scores["prediction"] >= 0).all()
    assert (scores["lower"] <= scores["upper"]).all()
    assert set(scores["basis"]) == {BASIS_MODEL, BASIS_COLD_START}
    assert scores.loc[scores["user_id"] == "99999", "basis"].item() == BASIS_COLD_START
    assert np.isfinite(scores[["prediction", "lower", "upper"]].to_numpy()).all()
    # Another export than the champion's training data: said once, scoring still runs.
    assert len(result.warnings) == 1 and "is not the data" in result.warnings[0]


def test_scores_are_identical_across_chunk_sizes_and_reruns(in_registry: dict, tmp_path: Path) -> None:
    tx = load_transactions(str(in_registry["root"] / "data" / "tx.parquet"), "generic")
    model = load_model()
    a = score(tx, out=tmp_path / "a.parquet", model=model, progress=False, chunk_users=1_000_000)
    b = score(tx, out=tmp_path / "b.parquet", model=model, progress=False, chunk_users=70)
    left = pd.read_parquet(a.out).sort_values("user_id", ignore_index=True)
    right = pd.read_parquet(b.out).sort_values("user_id", ignore_index=True)
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-12)
    assert a.users_in == b.rows_out == len(left)
    assert a.warnings == ()  # the training data itself, at the latest complete month: nothing to warn about


def test_cli_score_prints_counts_and_warns_on_an_as_of_past_the_data(in_registry: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spendlab.cli import app

    data = str(in_registry["root"] / "data" / "tx.parquet")  # 14 months from 2023-01: last day 2024-02-29
    res = CliRunner().invoke(app, ["score", data, "--out", str(tmp_path / "s.parquet"), "--as-of", "2024-06-30"])
    assert res.exit_code == 0, res.output
    assert "warning: --as-of 2024-06-30 is more than one month after the last transaction" in res.stderr
    assert re.search(r"by basis: [\d,]+ model(, [\d,]+ cold_start_fallback)?;", res.stdout), res.stdout
    assert "{" not in res.stdout


def test_score_warnings_name_an_as_of_past_one_period_and_other_training_data() -> None:
    import datetime as dt

    from spendlab.jobs.score import score_warnings

    d = dt.date
    ok = dict(model_hash="abcd", input_hash="abcdef", model_uri="m")
    assert score_warnings(as_of=d(2024, 1, 31), last_day=d(2023, 12, 15), freq="month", **ok) == []
    [w] = score_warnings(as_of=d(2024, 2, 29), last_day=d(2023, 12, 15), freq="month", **ok)
    assert "more than one month after the last transaction (2023-12-15)" in w
    assert score_warnings(as_of=d(2024, 1, 7), last_day=d(2023, 12, 27), freq="week", **ok) == []
    assert score_warnings(as_of=d(2024, 1, 14), last_day=d(2023, 12, 27), freq="week", **ok) != []
    [w] = score_warnings(as_of=d(2024, 1, 31), last_day=d(2024, 1, 31), freq="month", model_hash="ffff",
                         input_hash="abcdef", model_uri="models:/x@champion")
    assert "not the data models:/x@champion was trained on (ffff)" in w
    assert score_warnings(as_of=d(2024, 1, 31), last_day=d(2024, 1, 31), freq="month", model_hash="",
                          input_hash="abcdef", model_uri="m") == []  # a model without the tag: nothing known


def test_failed_scoring_leaves_no_output(in_registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spendlab.jobs.score as scoring

    tx = load_transactions(str(in_registry["root"] / "data" / "tx.parquet"), "generic")
    model = load_model()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scoring, "score_frame", boom)
    out = tmp_path / "scores.parquet"
    with pytest.raises(OutputWriteError, match="scores.parquet: cannot write the output .No space left on device."):
        score(tx, out=out, model=model, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".scores.parquet*"))


def test_scores_equal_the_champion_on_features_built_straight_from_the_input(in_registry: dict,
                                                                            tmp_path: Path) -> None:
    """Scoring's one-read, chunked path against the plain one: features from the source, then predict."""
    tx = load_transactions(str(in_registry["root"] / "data" / "tx.parquet"), "generic")
    model = load_model()
    assert model.takes_threads  # the signature declares the n_threads param, so scoring can use every core
    result = score(tx, out=tmp_path / "s.parquet", model=model, progress=False, chunk_users=90)
    feats = _features(in_registry["root"], as_of=result.as_of.isoformat())
    expected = mlflow.pyfunc.load_model(CHAMPION).predict(feats)
    scores = pd.read_parquet(result.out).sort_values("user_id", ignore_index=True)
    assert scores["user_id"].tolist() == feats["user_id"].tolist() == expected["user_id"].tolist()
    # (features agree exactly: tests/features; a linear model's matmul rounds by batch size in the last bits)
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(scores[col].to_numpy(), expected[col].to_numpy(), rtol=1e-9, atol=1e-9)
    for col in ("segment", "basis"):
        assert scores[col].tolist() == expected[col].tolist()


def test_loading_a_model_from_another_spendlab_version_warns(in_registry: dict, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """MLflow's own requirement check is skipped (it reads every installed package); spendlab's stands in."""
    import spendlab

    registered = mlflow.pyfunc.load_model(CHAMPION).model_config["spendlab_version"]
    assert registered == spendlab.__version__
    with caplog.at_level("WARNING", logger="spendlab.tracking.scorer"):
        load_model()
    assert not [r for r in caplog.records if "registered with spendlab" in r.getMessage()]
    monkeypatch.setattr(spendlab, "__version__", "0.0.0+other")
    with caplog.at_level("WARNING", logger="spendlab.tracking.scorer"):
        load_model()
    assert any(f"registered with spendlab {registered}; this is spendlab 0.0.0+other" in r.getMessage()
               for r in caplog.records)


def test_registration_chatter_is_dropped_and_everything_else_passes_through(capsys: pytest.CaptureFixture) -> None:
    import sys

    from spendlab.tracking.registry import _quiet_registration

    with pytest.raises(RuntimeError), _quiet_registration():
        print("Registered model 'm' already exists. Creating a new version of this model...", file=sys.stderr)
        print("Created version '1' of model 'm'.", file=sys.stderr)
        print("a real warning", file=sys.stderr)
        raise RuntimeError("registry down")
    assert capsys.readouterr().err == "a real warning\n"


def _promoted_and_scored(root: Path, spec_update: dict, models: list[str], params: dict | None = None,
                         months: int = 14) -> dict:
    """An experiment (the synthetic one over ``months`` months, updated), promoted into its own store, then scored."""
    import yaml

    uri = f"sqlite:///{root}/store/mlflow.db"
    exp = write_experiment(root, models=models, params=params, months=months)
    spec = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**spec, **spec_update}, sort_keys=False))
    run_experiment(exp, out_dir=root / "out", tracking_uri=uri)
    assert promote_experiment(str(exp), tracking_uri=uri).promoted
    model = load_model(CHAMPION, tracking_uri=uri)
    tx = load_transactions(str(root / "data" / "tx.parquet"), "generic")
    result = score(tx, out=root / "s.parquet", model=model, progress=False, chunk_users=70)
    scores = pd.read_parquet(result.out).sort_values("user_id", ignore_index=True)
    return {"tx": tx, "result": result, "scores": scores, "model": model}


def test_a_champion_trained_with_btyd_features_scores_end_to_end(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature set with ``btyd: true``: experiment, promote, then batch scoring builds the same columns
    and the scores equal the registered model's predictions on the store's features."""
    from spendlab.features import FeatureConfig
    from spendlab.features.btyd import BTYD_COLUMNS
    from spendlab.features.store import FeatureStore

    monkeypatch.chdir(tmp_path)
    (tmp_path / "btyd.yaml").write_text("features:\n  btyd: true\n")
    run = _promoted_and_scored(tmp_path, {"features": str(tmp_path / "btyd.yaml")}, ["lightgbm"],
                               {"lightgbm": {"n_estimators": 30}})
    feats = FeatureStore.from_source(run["tx"], freq="month", horizon=1,
                                     feature_config=FeatureConfig(btyd=True)).features(run["result"].as_of)
    assert set(BTYD_COLUMNS) <= set(feats.columns)
    expected = mlflow.pyfunc.load_model(CHAMPION).predict(feats)
    assert run["scores"]["user_id"].tolist() == expected["user_id"].tolist()
    np.testing.assert_allclose(run["scores"]["prediction"].to_numpy(), expected["prediction"].to_numpy(), rtol=1e-9)


def test_batch_scoring_passes_the_cutoff_to_a_seasonal_champion(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``bgnbd_seasonal`` reads the forecast's cutoff: scoring passes it as the pyfunc param ``as_of``.
    Trained on every origin of 17 months, the champion scored at 2024-05-31 has a year of origins
    (2023-05-31 .. 2024-04-30) behind it, each with established customers (acquired by 2023-03), so its
    seasonal level is not 1."""
    from spendlab.features.store import FeatureStore

    monkeypatch.chdir(tmp_path)
    run = _promoted_and_scored(tmp_path, {"train_origins": "all"}, ["bgnbd_seasonal"], months=17)
    assert run["model"].takes_as_of and run["result"].as_of.isoformat() == "2024-05-31"
    feats = FeatureStore.from_source(run["tx"], freq="month", horizon=1).features(run["result"].as_of)
    pyfunc = mlflow.pyfunc.load_model(CHAMPION)
    with_cutoff = pyfunc.predict(feats, params={"as_of": "2024-05-31"})
    without = pyfunc.predict(feats)
    np.testing.assert_allclose(run["scores"]["prediction"].to_numpy(), with_cutoff["prediction"].to_numpy(), rtol=1e-9)
    ratio = with_cutoff["prediction"].to_numpy() / np.maximum(without["prediction"].to_numpy(), 1e-12)
    moving = without["prediction"].to_numpy() > 1e-6
    assert np.ptp(ratio[moving]) < 1e-9 and abs(ratio[moving][0] - 1.0) > 1e-3  # one level, not 1


@pytest.mark.parametrize("combiner", ["ensemble", "stack"])
def test_a_combination_passes_the_cutoff_to_its_seasonal_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 combiner: str) -> None:
    """A combination champion whose members include ``bgnbd_seasonal`` (the default members do): the
    member reads the cutoff inside the registered ensemble, so batch scoring equals the pyfunc with
    ``as_of``, and without it the seasonal member falls back to level 1 and the scores move."""
    from spendlab.features.store import FeatureStore

    monkeypatch.chdir(tmp_path)
    run = _promoted_and_scored(tmp_path, {"train_origins": "all", "ensemble_members": ["bgnbd_seasonal", "ridge"]},
                               [combiner], months=17)
    assert run["result"].as_of.isoformat() == "2024-05-31"
    pyfunc = mlflow.pyfunc.load_model(CHAMPION)
    assert pyfunc.metadata.get_params_schema() is not None
    feats = FeatureStore.from_source(run["tx"], freq="month", horizon=1).features(run["result"].as_of)
    with_cutoff = pyfunc.predict(feats, params={"as_of": "2024-05-31"})["prediction"].to_numpy()
    without = pyfunc.predict(feats)["prediction"].to_numpy()
    np.testing.assert_allclose(run["scores"]["prediction"].to_numpy(), with_cutoff, rtol=1e-9)
    assert np.mean(np.abs(with_cutoff - without) > 1e-6 * np.maximum(without, 1.0)) > 0.5


def test_an_error_on_the_drift_thread_is_the_one_line_cli_error_with_its_exit_code(
        in_registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The PSI runs on a thread beside the scoring: its error still ends the job as it did on the main thread."""
    import spendlab.jobs.score as scoring
    from spendlab.cli import main
    from spendlab.errors import SpendlabError

    def broken(*args, **kwargs):
        raise SpendlabError("the reference profile is broken\nsecond line")

    monkeypatch.setattr(scoring, "feature_drift", broken)
    data = str(in_registry["root"] / "data" / "tx.parquet")
    with pytest.raises(SystemExit) as exit_:
        main(["score", data, "--out", str(tmp_path / "s.parquet")])
    err = capsys.readouterr().err
    assert exit_.value.code == SpendlabError("x").exit_code != 0
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: the reference profile is broken second line"]  # the CLI's one line, as for any SpendlabError
    with pytest.raises(SpendlabError, match="^the reference profile is broken"):  # the library raises it as itself
        score(load_transactions(data, "generic"), out=tmp_path / "t.parquet", model=load_model(), progress=False)


def test_the_model_spec_is_read_before_the_estimator_loads_and_equals_the_loaded_models(
        in_registry: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the features need comes from the verified directory before anything in it is unpickled."""
    from spendlab.tracking.scorer import ModelSpec, model_spec, scoring_columns

    events: list[str] = []
    real = mlflow.pyfunc.load_model

    def loading(*args, **kwargs):
        events.append("estimator")
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow.pyfunc, "load_model", loading)
    specs: list[ModelSpec] = []
    model = load_model(on_spec=lambda s: (events.append("spec"), specs.append(s)))
    assert events == ["spec", "estimator"]
    assert specs == [model_spec(model)]
    assert specs[0].freq == model.freq and specs[0].horizon == model.horizon
    assert specs[0].feature_config == model.feature_config
    assert list(specs[0].columns) == scoring_columns(model) and set(model.feature_names) <= set(specs[0].columns)


def test_a_model_that_cannot_be_looked_up_fails_its_spec_and_its_load_with_one_line(in_registry: dict) -> None:
    from spendlab.errors import SpendlabError
    from spendlab.tracking.scorer import load_model_async

    loading = load_model_async(f"models:/{REGISTERED_MODEL}@nope")
    with pytest.raises(SpendlabError, match=f"^cannot load model models:/{REGISTERED_MODEL}@nope") as spec_error:
        loading.spec.result(timeout=120)
    with pytest.raises(SpendlabError, match="^cannot load model"):
        loading.result(timeout=120)
    assert "\n" not in str(spec_error.value)


def test_scoring_builds_the_features_while_the_estimator_is_still_loading(
        in_registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimator's load waits until the feature build has started: a job that waited for it would fail."""
    import threading

    import spendlab.jobs.score as scoring
    from spendlab.tracking.scorer import load_model_async

    started = threading.Event()
    real_load, real_build = mlflow.pyfunc.load_model, scoring.build_features_arrow

    def estimator_after_the_features(*args, **kwargs):
        assert started.wait(timeout=60), "the feature build did not start before the estimator was loaded"
        return real_load(*args, **kwargs)

    def build(*args, **kwargs):
        started.set()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(mlflow.pyfunc, "load_model", estimator_after_the_features)
    monkeypatch.setattr(scoring, "build_features_arrow", build)
    tx = load_transactions(str(in_registry["root"] / "data" / "tx.parquet"), "generic")
    staged = score(tx, out=tmp_path / "staged.parquet", model=load_model_async(), progress=False)
    monkeypatch.setattr(mlflow.pyfunc, "load_model", real_load)
    whole = score(tx, out=tmp_path / "whole.parquet", model=load_model(), progress=False)
    assert staged.rows_out == whole.rows_out > 0
    assert pd.read_parquet(staged.out).equals(pd.read_parquet(whole.out))
