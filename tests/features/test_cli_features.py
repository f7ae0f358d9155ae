"""``spendlab features``: one row per user, Parquet with the config hash, clear errors, idempotent reruns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas.testing as pd_testing
import pyarrow.parquet as pq
import pytest

from spendlab.config import config_hash
from spendlab.features import FeatureConfig, feature_columns
from spendlab.features.metadata import read_feature_metadata
from spendlab.jobs.features import load_feature_config

SPENDLAB = [sys.executable, "-m", "spendlab.cli"]
pytestmark = pytest.mark.slow  # subprocesses of the real CLI


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SPENDLAB, "features", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("freq,default_as_of", [("month", "1998-06-30"), ("week", "1998-06-28")])
def test_features_command_writes_one_row_per_cdnow_user_with_metadata(tmp_path: Path, freq: str,
                                                                       default_as_of: str) -> None:
    out = tmp_path / "f.parquet"
    run = _run("builtin:cdnow", "--format", "cdnow", "--freq", freq, "--out", str(out))
    assert run.returncode == 0, run.stderr
    table = pq.read_table(out)
    assert table.num_rows == 23_570
    assert table.column_names == feature_columns(FeatureConfig(), freq)  # type: ignore[arg-type]
    meta = read_feature_metadata(out)
    assert meta["spendlab.config_hash"] == config_hash(FeatureConfig())
    assert (meta["spendlab.freq"], meta["spendlab.as_of"]) == (freq, default_as_of)
    assert meta["spendlab.rows_accepted"] == "69659"
    assert not list(tmp_path.glob(".f.parquet.*"))  # the atomic writer left no temp file


def test_rerun_gives_byte_identical_output_and_config_file_changes_the_hash(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    for out in (a, b):
        assert _run("builtin:cdnow", "--format", "cdnow", "--as-of", "1997-12-31", "--out", str(out)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    cfg = tmp_path / "run.yaml"
    cfg.write_text("reader:\n  timezone: UTC\nfeatures:\n  month:\n    lags: {spend: 2}\n    trend_windows: [3]\n")
    assert _run("builtin:cdnow", "--format", "cdnow", "--as-of", "1997-12-31", "--config", str(cfg),
                "--out", str(c)).returncode == 0
    assert read_feature_metadata(c)["spendlab.config_hash"] == config_hash(load_feature_config(cfg))
    assert pq.read_schema(c).names[1:3] == ["spend_lag1", "spend_lag2"]
    assert "spend_lag3" not in pq.read_schema(c).names


@pytest.mark.parametrize("args,message", [
    (["--freq", "day"], "--freq must be month or week"),
    (["--as-of", "1997-13-01"], "--as-of must be a date"),
    (["--horizon", "0"], "--horizon must be a whole number of periods >= 1"),
    (["--horizon", "-2"], "--horizon must be a whole number of periods >= 1"),
])
def test_bad_options_give_one_line_error_and_no_output(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "f.parquet"
    run = _run("builtin:cdnow", "--format", "cdnow", *args, "--out", str(out))
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_unknown_feature_config_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("features:\n  month:\n    lagz: {spend: 2}\n")
    run = _run("builtin:cdnow", "--format", "cdnow", "--config", str(cfg), "--out", str(tmp_path / "f.parquet"))
    assert run.returncode == 2 and "lagz" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("freq,as_of,horizon,days", [
    ("month", "1997-12-31", 3, 31 + 28 + 31),   # January .. March 1998
    ("month", "1997-12-31", 1, 31),
    ("week", "1998-01-04", 4, 28),             # ISO weeks 1998-W02 .. W05
])
def test_horizon_sets_the_target_window_of_the_calendar_covariates(tmp_path: Path, freq: str, as_of: str,
                                                                   horizon: int, days: int) -> None:
    out = tmp_path / "f.parquet"
    run = _run("builtin:cdnow", "--format", "cdnow", "--freq", freq, "--as-of", as_of, "--horizon", str(horizon),
               "--out", str(out))
    assert run.returncode == 0, run.stderr
    table = pq.read_table(out).to_pandas()
    assert set(table["target_days_in_period"]) == {days}   # every user's target window: the horizon's days, by hand
    assert read_feature_metadata(out)["spendlab.horizon"] == str(horizon)
    # the same features the experiment's store builds for that cutoff and horizon (one feature code path)
    import datetime as dt

    from spendlab.features import build_features
    from spendlab.io.load import connect, load_transactions

    con = connect()
    load_transactions("builtin:cdnow", "cdnow").register(con, native_ids=True)
    expected = build_features(con, freq=freq, as_of=dt.date.fromisoformat(as_of), horizon=horizon)  # type: ignore[arg-type]
    con.close()
    pd_testing.assert_frame_equal(table.sort_values("user_id", ignore_index=True),
                                  expected.sort_values("user_id", ignore_index=True)[table.columns])
