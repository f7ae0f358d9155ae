"""The Python API (``spendlab.describe_transactions(...)`` and friends): the README example, lazy exposure, DataFrame inputs."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

import spendlab
from spendlab.errors import ConfigError, SpendlabError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "describe" / "fixtures" / "describe_small.csv"


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- python-api-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no marked Python API example"
    return m.group(1)


def test_readme_python_api_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), "README.md", "exec"), {})
    assert out.getvalue().split() == ["165.65", "3"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "$165.65" in html and "Bottom 5 spenders" in html


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_spendlab_imports_no_job_or_api() -> None:
    out = _run("import sys, spendlab; print(sorted(m for m in sys.modules if m.startswith('spendlab')))")
    assert out.strip() == "['spendlab']"


@pytest.mark.parametrize("first", ["import spendlab.describe.render", "import spendlab.cli", ""])
def test_api_functions_work_whatever_was_imported_first(first: str) -> None:
    code = f"""{first}
import spendlab
import spendlab.describe.render, spendlab.features.build
assert spendlab.describe.render.render_html and spendlab.features.build.build_features_arrow
r = spendlab.describe_transactions({str(FIXTURE)!r}, top_n=3)
f = spendlab.user_features({str(FIXTURE)!r}, as_of="2022-01-31")
from spendlab import reconcile_summaries, describe_transactions
import types
assert callable(reconcile_summaries) and callable(describe_transactions)
assert type(spendlab.describe) is types.ModuleType and type(spendlab) is types.ModuleType
print(r.summary["n_users"], len(f.table))
"""
    assert _run(code).split() == ["4", "2"]


def test_api_functions_leave_subpackages_plain_and_patchable() -> None:
    import types

    import spendlab.describe.render

    with mock.patch("spendlab.describe.render.check_currency", side_effect=ConfigError("patched")):
        with pytest.raises(ConfigError, match="patched"):
            spendlab.describe_transactions(str(FIXTURE), top_n=3)
    assert type(spendlab.describe) is types.ModuleType and not callable(spendlab.describe)
    assert spendlab.describe.__name__ == "spendlab.describe"


def test_dataframe_and_file_give_the_same_report() -> None:
    loaded = spendlab.load(str(FIXTURE))
    assert loaded.summary["users"] == 4 and list(loaded.rejects["error_type"]) == ["AMOUNT_FORMAT"]
    from_file = spendlab.describe_transactions(loaded, top_n=5)
    frame = loaded.transactions[["user_id", "ts", "amount"]]
    from_frame = spendlab.describe_transactions(frame, top_n=5)
    for key in ("total_spend", "n_transactions", "n_users", "refund_amount", "avg_transaction_value"):
        assert from_frame.summary[key] == from_file.summary[key]
    pd.testing.assert_frame_equal(from_frame.monthly_overview, from_file.monthly_overview)
    per_user = from_frame.per_user.set_index("user_id")
    assert per_user.loc["u1", "total_spend"] == pytest.approx(70.0)  # 10 + 5.5 + 20 + 4.5 + 30
    assert per_user["n_transactions"].dtype.kind == "i"


def test_dataframe_columns_can_be_renamed_and_bad_rows_are_named() -> None:
    df = pd.DataFrame({"customer": ["a", "b"], "when": ["2024-01-02", "2024-01-03"], "value": [1.0, 2.5]})
    r = spendlab.describe_transactions(df, user_col="customer", time_col="when", amount_col="value")
    assert r.summary["total_spend"] == 3.5
    with pytest.raises(ConfigError, match=r"missing required column\(s\) \['user_id'"):
        spendlab.describe_transactions(df)
    bad = df.assign(value=[1.0, None])  # the readers' policy and modes: quarantined, or named in strict mode
    loaded = spendlab.load(bad, user_col="customer", time_col="when", amount_col="value")
    assert loaded.rejects[["line", "column"]].values.tolist() == [[1, "value"]] and loaded.summary["users"] == 1
    with pytest.raises(SpendlabError, match="dataframe, row index 1, column 'value'"):
        spendlab.load(bad, user_col="customer", time_col="when", amount_col="value", mode="strict")


def test_features_of_a_frame_ignore_rows_after_the_cutoff() -> None:
    df = pd.DataFrame({"user_id": ["a", "a", "b"], "ts": ["2024-01-05", "2024-02-10", "2024-01-20"],
                       "amount": [10.0, 99.0, 4.0]})
    full = spendlab.user_features(df, as_of="2024-01-31")
    cut = spendlab.user_features(df[pd.to_datetime(df["ts"]) <= "2024-01-31"], as_of="2024-01-31")
    pd.testing.assert_frame_equal(full.table, cut.table)
    assert full.as_of.isoformat() == "2024-01-31" and full.metadata["spendlab.as_of"] == "2024-01-31"


def test_reconcile_accepts_dataframes_like_files(tmp_path: Path) -> None:
    from spendlab.jobs.datasets import generate_deltas

    generate_deltas(tmp_path / "gen", scenario=["stale"], users=60, files=3, seed=1)
    inputs = tmp_path / "gen" / "inputs"
    by_path = spendlab.reconcile_summaries(str(inputs / "deltas"), platform=inputs / "platform_summary.csv",
                                           source=inputs / "client_summary.csv")
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted((inputs / "deltas").glob("delta*.csv"))]
    by_frame = spendlab.reconcile_summaries(frames, platform=pd.read_csv(inputs / "platform_summary.csv", dtype=str,
                                                                         keep_default_na=False),
                                            source=pd.read_csv(inputs / "client_summary.csv", dtype=str, keep_default_na=False))
    assert by_frame.summary["gap"] == by_path.summary["gap"]
    pd.testing.assert_frame_equal(by_frame.user_causes.drop(columns="file"), by_path.user_causes.drop(columns="file"))
    assert "outputs" not in by_path.summary and not by_path.causes.empty


@pytest.mark.slow
def test_experiment_then_score_from_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """spendlab.experiment on a YAML and on a DataFrame with a mapping config, promote, then spendlab.score."""
    import yaml

    from spendlab.jobs.promote import promote_experiment
    from tests.jobs.conftest import write_experiment

    monkeypatch.chdir(tmp_path)
    exp = write_experiment(tmp_path, models=["zero", "last_period"], users=120)
    run = spendlab.experiment(config=exp)
    assert set(run.leaderboard["model"]) == {"zero", "last_period"} and run.champion in {"zero", "last_period"}
    assert {"user_id", "model", "y_pred", "y_true"} <= set(run.predictions.columns) and run.out_dir is None
    assert promote_experiment(str(exp)).promoted

    frame = pd.read_parquet(tmp_path / "data" / "tx.parquet")[["user_id", "ts", "amount"]]
    raw = yaml.safe_load(exp.read_text())
    raw.pop("dataset")
    again = spendlab.experiment(frame, config={**raw, "name": "from_frame"}, models=["last_period"])
    by_file = run.leaderboard.set_index("model").loc["last_period", "rmse"]
    assert again.leaderboard.set_index("model").loc["last_period", "rmse"] == pytest.approx(by_file)

    scored = spendlab.score(frame, as_of="2023-12-31", tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    assert len(scored.scores) == frame["user_id"].nunique() == scored.users
    assert scored.target_period == "2024-01" and (scored.scores["lower"] <= scored.scores["upper"]).all()

    # the CLI's score command is the same call
    from typer.testing import CliRunner

    from spendlab.cli import app

    res = CliRunner().invoke(app, ["score", str(tmp_path / "data" / "tx.parquet"), "--as-of", "2023-12-31",
                                   "--out", str(tmp_path / "cli_scores.parquet")])
    assert res.exit_code == 0, res.output
    cli_scores = pd.read_parquet(tmp_path / "cli_scores.parquet")
    pd.testing.assert_frame_equal(cli_scores.sort_values("user_id", ignore_index=True),
                                  scored.scores.sort_values("user_id", ignore_index=True))
