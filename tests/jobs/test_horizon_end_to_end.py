"""A four-week target end to end: experiment, refit, model directory, ``score``, ``monitor``.

The weekly experiment predicts each user's spend over the 4 ISO weeks after the cutoff's week. At every
test origin the candidate refitted at the cutoff, saved as a model directory, scored by the scoring job
and monitored gives the experiment's own per-origin test metrics (so scoring builds the features of the
same window and monitoring measures the same target), the scores name the window, and the realized total
is the independent pandas sum of the 28 days after the cutoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from spendlab.io import load_transactions
from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.monitor import MonitorInputError, execute, plan_monitor
from spendlab.jobs.promote import refit
from spendlab.jobs.score import LINEAGE_KEY, score
from spendlab.tracking.experiment_runs import latest_experiment_run, run_candidate
from spendlab.tracking.registry import save_model_dir
from spendlab.tracking.scorer import load_model
from spendlab.tracking.trust import KEY_ENV, sign_model_dir

pytestmark = pytest.mark.slow
POINT = ("rmse", "mae", "bias", "gini_norm", "top10_capture")


@pytest.fixture(scope="module")
def weekly(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("horizon")
    data, exp = root / "tx.parquet", root / "weekly.yaml"
    synth_transactions(data, users=250, months=9, start="2023-01-01", seed=5)
    exp.write_text(yaml.safe_dump({
        "name": "weekly_h4", "dataset": {"input": str(data), "format": "generic", "name": "synth"},
        "freq": "week", "horizon": 4, "train_origins": 3,
        "validation": {"start": "2023-06-04", "end": "2023-06-25"},
        "test": {"start": "2023-07-23", "end": "2023-08-06"},
        "models": ["moving_average", "bgnbd_gg", "ridge"], "ensemble_members": ["ridge", "bgnbd_gg"]}))
    uri = mlflow_store(root / "store" / "mlflow.db")
    with contextlib.chdir(root):  # tuned-params look-ups and MLflow artifacts stay in the test's directory
        run_experiment(exp, out_dir=root / "out", tracking_uri=uri)
        yield {"root": root, "uri": uri, "data": data, "tx": load_transactions(data, "generic")}


def _window_total(data: Path, cutoff: dt.date, users: pd.Series) -> float:
    tx = pd.read_parquet(data)
    ts = pd.to_datetime(tx["ts"]).dt.tz_localize(None) if pd.to_datetime(tx["ts"]).dt.tz is not None \
        else pd.to_datetime(tx["ts"])
    start = pd.Timestamp(cutoff + dt.timedelta(days=1))
    win = tx[(ts >= start) & (ts < start + pd.Timedelta(days=28)) & (tx["amount"] > 0)]
    return float(win.loc[win["user_id"].astype(str).isin(set(users.astype(str))), "amount"].sum())


def test_monitor_of_a_four_week_forecast_equals_the_backtest_at_every_test_origin(
        weekly: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "horizon-test-key")
    cand = run_candidate(latest_experiment_run("weekly_h4", tracking_uri=weekly["uri"]))
    origins = cand.experiment_config().origins("test")
    assert len(origins) == 3
    for cutoff in origins:
        model_dir = save_model_dir(refit(cand, transactions=weekly["tx"], cutoff=cutoff), tmp_path / f"m{cutoff}")
        sign_model_dir(model_dir, b"horizon-test-key")
        model = load_model(str(model_dir))
        assert model.horizon == 4
        res = score(weekly["tx"], out=tmp_path / f"s{cutoff}.parquet", model=model, as_of=cutoff, progress=False)
        meta = json.loads(pq.read_schema(res.out).metadata[LINEAGE_KEY.encode()])
        first, last = cutoff + dt.timedelta(days=1), cutoff + dt.timedelta(days=28)
        assert meta["horizon"] == "4"
        assert meta["target_period"] == (f"{first.isocalendar()[0]}-W{first.isocalendar()[1]:02d}/"
                                         f"{last.isocalendar()[0]}-W{last.isocalendar()[1]:02d}")
        result = execute(plan_monitor(res.out, str(weekly["data"]), format="generic",
                                      config={"model": str(model_dir)}), tracking_uri=weekly["uri"], log_run=False)
        backtest = result.backtest.set_index("cutoff")
        for m in POINT:
            assert result.accuracy.iloc[0][m] == pytest.approx(backtest.loc[cutoff, m], abs=1e-9, rel=0)
        scored = pd.read_parquet(res.out)["user_id"]
        assert result.accuracy.iloc[0]["realized_total"] == pytest.approx(_window_total(weekly["data"], cutoff, scored))


def test_monitor_refuses_until_the_whole_four_week_window_is_in(weekly: dict, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "horizon-test-key")
    cand = run_candidate(latest_experiment_run("weekly_h4", tracking_uri=weekly["uri"]))
    cutoff = cand.experiment_config().origins("test")[0]
    model_dir = save_model_dir(refit(cand, transactions=weekly["tx"], cutoff=cutoff), tmp_path / "m")
    sign_model_dir(model_dir, b"horizon-test-key")
    res = score(weekly["tx"], out=tmp_path / "s.parquet", model=load_model(str(model_dir)), as_of=cutoff,
                progress=False)
    tx = pd.read_parquet(weekly["data"])
    ts = pd.to_datetime(tx["ts"])
    ts = ts.dt.tz_localize(None) if ts.dt.tz is not None else ts
    short = tmp_path / "short.parquet"  # the first three weeks of the window only
    tx[ts < pd.Timestamp(cutoff + dt.timedelta(days=22))].to_parquet(short)
    with pytest.raises(MonitorInputError, match=f"period ends {cutoff + dt.timedelta(days=28)}"):
        execute(plan_monitor(res.out, str(short), format="generic", config={"model": str(model_dir)}),
                tracking_uri=weekly["uri"], log_run=False)


def test_scores_of_a_four_week_model_equal_its_pyfunc_on_every_feature_built_plainly(
        weekly: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring builds only the columns the model reads, in one pass; the plain path builds every feature
    (the text ids' view, pandas) and hands it to the pyfunc: the same rows within 1e-9."""
    import mlflow
    import numpy as np

    from spendlab.features import build_features
    from spendlab.io.load import connect
    from spendlab.tracking.scorer import scoring_columns

    monkeypatch.setenv(KEY_ENV, "horizon-test-key")
    cand = run_candidate(latest_experiment_run("weekly_h4", tracking_uri=weekly["uri"]))
    cutoff = cand.experiment_config().origins("test")[-1]
    model_dir = save_model_dir(refit(cand, transactions=weekly["tx"], cutoff=cutoff), tmp_path / "m")
    sign_model_dir(model_dir, b"horizon-test-key")
    model = load_model(str(model_dir))
    res = score(weekly["tx"], out=tmp_path / "s.parquet", model=model, as_of=cutoff, progress=False, chunk_users=70)
    con = connect()
    weekly["tx"].register(con)
    every = build_features(con, freq=model.freq, as_of=cutoff, config=model.feature_config, horizon=model.horizon)
    assert set(scoring_columns(model)) <= set(every.columns)
    expected = mlflow.pyfunc.load_model(str(model_dir)).predict(every, params={"as_of": cutoff.isoformat()})
    scores = pd.read_parquet(res.out)
    assert scores["user_id"].tolist() == expected["user_id"].tolist()
    for col in ("prediction", "p_spend", "median", "lower", "upper"):
        np.testing.assert_allclose(scores[col].to_numpy(), expected[col].to_numpy(), rtol=1e-9, atol=1e-9)
    assert scores["segment"].tolist() == expected["segment"].tolist()
    assert scores["basis"].tolist() == expected["basis"].tolist()
