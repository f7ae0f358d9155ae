"""``spendlab monitor``: a champion's scores against the period that happened.

One small synthetic experiment (ridge) is run and promoted once per module; its champion's scores
are monitored through the CLI. The equality with the backtest is checked at every test origin: the
candidate refitted at the origin's cutoff, saved and loaded as a model directory, scored by
``spendlab score``'s job, monitored, equals the experiment's own per-origin test metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from spendlab.cli import main
from spendlab.io import load_transactions
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.monitor import EXIT_RETRAIN, execute, plan_monitor
from spendlab.jobs.promote import promote_experiment, refit
from spendlab.jobs.score import LINEAGE_KEY, score
from spendlab.tracking.experiment_runs import latest_experiment_run, run_candidate
from spendlab.tracking.registry import save_model_dir
from spendlab.tracking.scorer import load_model
from spendlab.tracking.trust import KEY_ENV, sign_model_dir
from tests.jobs.conftest import write_experiment

CHAMPION = "models:/spendlab-next-month@champion"
POINT = ("rmse", "mae", "bias", "gini_norm", "top10_capture")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Callable[[Path], str]) -> Iterator[dict]:
    """The synthetic experiment, run and promoted in its own store; the champion's scores of 2023-12."""
    root = tmp_path_factory.mktemp("monitor")
    old = os.getcwd()
    os.chdir(root)
    uri = mlflow_store(root / "store" / "mlflow.db")
    try:
        exp = write_experiment(root, models=["ridge"], months=14)
        run_experiment(exp, out_dir=root / "out", tracking_uri=uri)
        assert promote_experiment(str(exp), tracking_uri=uri).promoted
        tx = load_transactions(str(root / "data" / "tx.parquet"), "generic")
        import datetime as dt

        res = score(tx, out=root / "scores.parquet", model=load_model(CHAMPION, tracking_uri=uri),
                    as_of=dt.date(2023, 12, 31), progress=False)
        yield {"root": root, "uri": uri, "exp": exp, "tx": tx, "scores": res.out, "result": res}
    finally:
        os.chdir(old)


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_scores_carry_their_lineage(world: dict) -> None:
    meta = json.loads(pq.read_schema(world["scores"]).metadata[LINEAGE_KEY.encode()])
    assert meta["model_name"] == "spendlab-next-month" and meta["model_version"] == world["result"].model_version
    assert (meta["as_of"], meta["target_period"], meta["freq"]) == ("2023-12-31", "2024-01", "month")
    assert meta["train_cutoff"] == "2024-02-29"  # the champion was trained on the whole export
    drift = world["result"].drift  # against the reference profile logged at promotion
    assert set(drift) == {"max_psi", "max_psi_feature", "max_segment_shift", "max_shift_segment", "cold_start_share"}
    assert drift["max_psi"] > 0  # scored two months before the training cutoff: another population


def test_monitor_cli_writes_the_report_and_one_tagged_run(world: dict, capsys: pytest.CaptureFixture) -> None:
    out = world["root"] / "mon"
    code, stdout, _ = _cli(["monitor", str(world["scores"]), str(world["root"] / "data" / "tx.parquet"),
                            "--format", "generic", "--out", str(out), "--tracking-uri", world["uri"]], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert code == (EXIT_RETRAIN if summary["verdict"] == "retrain" else 0)
    assert stdout.startswith(f"{summary['verdict']}: version {world['result'].model_version}, 2024-01")
    html = (out / "report.html").read_text()
    assert "<script" not in html and "data:image/png;base64," in html and "Verdict:" in html
    assert {p.name for p in out.iterdir()} >= {"summary.json", "accuracy.csv", "drift.csv", "segments.csv",
                                                "history.csv", "report.html"}
    mlflow.set_tracking_uri(world["uri"])
    runs = mlflow.search_runs(experiment_names=["synth_next_month"], filter_string="tags.kind = 'monitoring'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run["tags.model_name"], run["tags.period"]) == ("spendlab-next-month", "2024-01")
    assert run["tags.model_version"] == world["result"].model_version
    history = MlflowClient().get_metric_history(run["run_id"], "rmse")
    assert [m.step for m in history] == [202401] and history[0].value == pytest.approx(summary["rmse"])
    hist = pd.read_csv(out / "history.csv")  # the backtest's test origins beside the realized period
    assert set(hist["source"]) == {"backtest (test origin)", "realized"}


@pytest.mark.parametrize("case", ["no_model_version", "no_lineage", "other_model", "incomplete", "mixed_models"])
def test_bad_inputs_get_one_line_exit_2_and_nothing_written(world: dict, case: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    table = pq.read_table(world["scores"])
    scores, data, extra = tmp_path / "s.parquet", str(world["root"] / "data" / "tx.parquet"), []
    if case == "no_model_version":
        pq.write_table(table.drop(["model_version"]), scores)
    elif case == "no_lineage":
        pq.write_table(table.replace_schema_metadata(None), scores)
    elif case == "mixed_models":
        df = table.to_pandas()
        df.loc[df.index[:3], "model_version"] = "999"
        pq.write_table(table.from_pandas(df, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                       scores)
    else:
        pq.write_table(table, scores)
    if case == "other_model":
        extra = ["--model", "another-model"]
    if case == "incomplete":
        df = pd.read_parquet(data)
        data = str(tmp_path / "short.parquet")
        df[df["ts"] < pd.Timestamp("2024-01-20", tz="UTC")].to_parquet(data, index=False)
    mlflow.set_tracking_uri(world["uri"])
    before = len(mlflow.search_runs(experiment_names=["synth_next_month"]))
    code, stdout, err = _cli(["monitor", str(scores), data, "--format", "generic", "--out", str(tmp_path / "o"),
                              "--tracking-uri", world["uri"], *extra], capsys)
    line = " ".join(err.split())
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert {"no_model_version": "no model_version", "no_lineage": "lineage", "other_model": "another-model",
            "incomplete": "the last day seen is 2024-01-19", "mixed_models": "several models"}[case] in line
    assert not (tmp_path / "o").exists()
    assert len(mlflow.search_runs(experiment_names=["synth_next_month"])) == before


def test_monitor_equals_the_backtest_at_every_test_origin(world: dict, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch) -> None:
    """The class of the acceptance: the candidate refitted at each test cutoff, scored through the model
    directory and the scoring job, then monitored, gives the experiment's per-origin test metrics."""
    monkeypatch.setenv(KEY_ENV, "monitor-test-key")  # a refitted directory is trusted through its signature
    cand = run_candidate(latest_experiment_run("synth_next_month", tracking_uri=world["uri"]))
    origins = cand.experiment_config().origins("test")
    for cutoff in origins:
        model_dir = save_model_dir(refit(cand, transactions=world["tx"], cutoff=cutoff), tmp_path / f"m{cutoff}")
        sign_model_dir(model_dir, b"monitor-test-key")
        res = score(world["tx"], out=tmp_path / f"s{cutoff}.parquet", model=load_model(str(model_dir)),
                    as_of=cutoff, progress=False)
        result = execute(plan_monitor(res.out, str(world["root"] / "data" / "tx.parquet"), format="generic",
                                      config={"model": str(model_dir)}), tracking_uri=world["uri"], log_run=False)
        backtest = result.backtest.set_index("cutoff")
        assert list(backtest.index) == origins
        for m in POINT:
            assert result.accuracy.iloc[0][m] == pytest.approx(backtest.loc[cutoff, m], abs=1e-9, rel=0)


def test_the_reference_profile_travels_with_the_registered_version(world: dict) -> None:
    from spendlab.tracking.monitoring import model_record

    record = model_record(CHAMPION, tracking_uri=world["uri"])
    ref = record.reference
    assert ref is not None and ref["n_users"] > 0
    assert sum(ref["segment_shares"].values()) == pytest.approx(1.0)
    assert "spend_lag1" in ref["features"] and "target_weekend_days" not in ref["features"]
    assert len(record.backtest) == 3  # the experiment's three test origins, found through the candidate


def test_drift_and_estimates_at_a_cutoff_see_nothing_after_it(world: dict, tmp_path: Path) -> None:
    """Scoring on the full export and on the export cut at the cutoff gives the same rows and the same drift."""
    import datetime as dt

    full = pd.read_parquet(world["root"] / "data" / "tx.parquet")
    cut = tmp_path / "cut.parquet"
    full[full["ts"] < pd.Timestamp("2024-01-01", tz="UTC")].to_parquet(cut, index=False)
    model = load_model(CHAMPION, tracking_uri=world["uri"])
    a = score(load_transactions(str(cut), "generic"), out=tmp_path / "a.parquet", model=model,
              as_of=dt.date(2023, 12, 31), progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(a.out), pd.read_parquet(world["scores"]))
    assert a.drift == world["result"].drift
