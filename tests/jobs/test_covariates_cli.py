"""The covariates world from the command line: synth-covariates, then validate with the household table."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from spendlab.cli import app

CONFIG = {
    "reader": {"generic": {"user_col": "household_key", "order_col": "order_id",
                           "attributes": {"department": {"column": "department"},
                                          "retail_disc": {"column": "retail_disc", "type": "amount"}}}},
    "users": {"input": None, "key": "household_key", "valid_from": "valid_from",
              "columns": {"age_band": "category", "household_size": "number"}},
}


def test_synth_covariates_then_validate_reports_lines_orders_and_the_user_table(tmp_path):
    runner = CliRunner()
    out = tmp_path / "world"
    r = runner.invoke(app, ["datasets", "synth-covariates", "--users", "40", "--months", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    households = out / "households.csv"
    extra = "H999999,,19-34,low,2\n"  # a household no transaction uses
    households.write_text(households.read_text() + extra)
    cfg = {**CONFIG, "users": {**CONFIG["users"], "input": str(households)}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["validate", str(out / "lines.parquet"), "--format", "generic", "--config",
                            str(tmp_path / "c.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    lines = pq.read_table(out / "lines.parquet")
    f = summary["files"][0]
    assert f["rows_in"] == lines.num_rows == f["accepted"] + f["rejected"] + f["excluded"]
    assert summary["users"] == len(set(lines.column("household_key").to_pylist()))
    table = summary["user_table"]
    assert table["rows_in"] == table["accepted"] == len(households.read_text().splitlines()) - 1
    # every synthetic household buys in its first month, but only those whose first month is in the window
    assert table["unused_keys"] == 1 + (40 - summary["users"])
    assert table["missing_users"] == 0
