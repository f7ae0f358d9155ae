"""``configs/readers/grocery-panel.yaml`` reads a retail panel in its own layout, end to end to features.

The fixture (``tests/data/grocery_panel``) is ten lines in the column layout of a public grocery panel
(dunnhumby's "The Complete Journey"): time as a day index, baskets of product lines, discounts as
negative amounts, a product table with departments and a household table with upper-case column
names that covers only some households. Every figure below is computed by hand from those lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from spendlab.cli.common import reader_config, users_config
from spendlab.config import UserTableSpec, parse_config
from spendlab.errors import ConfigError
from spendlab.io.users import load_users

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "readers" / "grocery-panel.yaml"
FIXTURE = ROOT / "tests" / "data" / "grocery_panel"


@pytest.fixture()
def panel(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "data")
    return tmp_path


def test_the_panel_config_reads_day_numbers_baskets_departments_and_households(panel: Path) -> None:
    out = panel / "f.parquet"
    run = subprocess.run([sys.executable, "-m", "spendlab.cli", "features", "data/transaction_data.csv", "--config",
                          str(CONFIG), "--as-of", "2020-03-31", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=panel, env={**os.environ})
    assert run.returncode == 0, run.stderr
    f = pd.read_parquet(out).set_index("user_id")
    assert sorted(f.index) == ["1130", "1173", "1364", "2375"]   # 10 lines, 8 baskets, 4 households
    h = f.loc["2375"]
    # baskets: day 1 (2020-01-01) 1.39 + 0.82 produce and 0.99 grocery; day 40 (Feb 9) 2.78 produce; day 70 (Mar 10)
    # 0.99 grocery: March spend 0.99, 4 transactions in the window, 6.97 spent
    assert h["spend_lag1"] == pytest.approx(0.99) and h["spend_lag3"] == pytest.approx(2.21 + 0.99)
    # departments ranked by everyone's spend: GROCERY 9.35, PRODUCE 4.99, DRUG GM 0.70 (1173's product is unknown)
    assert h["cov_department_share_top1_window6"] == pytest.approx(1.98 / 6.97)
    assert h["cov_department_share_top2_window6"] == pytest.approx(4.99 / 6.97)
    assert f.loc["1130", "cov_department_share_top3_window6"] == 1.0
    assert f.loc["1173", "cov_department_distinct_window6"] == 0.0   # its one product is not in product.csv
    assert h["cov_retail_disc_amount_share_window6"] == pytest.approx(0.9 / 6.97)   # |-0.60 - 0.30|
    assert f.loc["1173", "cov_coupon_disc_use_rate_window6"] == 1.0
    # households: only 1364 has a row (45-54, 50-74K, size 1); the others get the explicit missing level
    assert f.loc["1364", ["user_age_band__45_54", "user_income_band__50_74k", "user_household_size__1"]].tolist() \
        == [1.0, 1.0, 1.0]
    assert f.loc[["1130", "1173", "2375"], "user_age_band__missing"].tolist() == [1.0, 1.0, 1.0]


def test_a_user_column_read_under_another_name_equals_one_named_as_the_attribute(tmp_path: Path) -> None:
    spec = users_config(CONFIG)
    assert spec is not None and spec.sources["age_band"] == "AGE_DESC" and spec.kinds["age_band"] == "category"
    renamed = load_users(spec.model_copy(update={"input": str(FIXTURE / "hh_demographic.csv")}))
    plain_csv = tmp_path / "hh.csv"
    raw = pd.read_csv(FIXTURE / "hh_demographic.csv", dtype=str)
    raw.rename(columns={"AGE_DESC": "age_band", "INCOME_DESC": "income_band",
                        "HOUSEHOLD_SIZE_DESC": "household_size"}).to_csv(plain_csv, index=False)
    plain = load_users(UserTableSpec(input=str(plain_csv), key="household_key",
                                     columns={"age_band": "category", "income_band": "category",
                                              "household_size": "category"}))
    assert renamed.table.equals(plain.table) and renamed.report.accepted == 5


@pytest.mark.parametrize(("columns", "message"), [
    ({"AGE_DESC": "category"}, "{age_desc: {column: AGE_DESC, type: category}}"),
    ({"age": {"column": "AGE_DESC", "type": "text"}}, "type"),
    ({"age": {"column": "household_key", "type": "category"}}, "must be different columns"),
])
def test_user_column_mistakes_are_config_errors_that_say_what_to_write(columns: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="users") as exc:
        parse_config(UserTableSpec, {"input": "h.csv", "key": "household_key", "columns": columns}, "c.yaml (users)")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_panel_config_parses() -> None:
    cfg = reader_config(CONFIG)
    assert (cfg.generic.ts_unit, str(cfg.generic.ts_origin), cfg.generic.order_col) == ("day", "2019-12-31",
                                                                                       "BASKET_ID")


def test_the_user_table_comes_from_a_config_or_from_an_experiment(tmp_path):
    """``--config`` takes a config's ``users:`` or the experiment YAML's ``dataset.users`` (the one a model came from)."""
    table = {"input": "hh.csv", "key": "hh", "columns": {"age": "category"}}
    config, experiment, both, neither = (tmp_path / f"{n}.yaml" for n in ("config", "experiment", "both", "neither"))
    config.write_text(yaml.safe_dump({"users": table}))
    experiment.write_text(yaml.safe_dump({"name": "x", "dataset": {"input": "t.csv", "users": table}}))
    both.write_text(yaml.safe_dump({"users": table, "dataset": {"input": "t.csv", "users": {**table, "columns": {
        "age": "category"}}}}))  # not the same objects: safe_dump would write an alias, which configs refuse
    neither.write_text(yaml.safe_dump({"reader": {"timezone": "UTC"}}))
    assert users_config(config) == users_config(experiment) == UserTableSpec.model_validate(table)
    assert users_config(neither) is None and users_config(None) is None
    with pytest.raises(ConfigError, match=r"both\.yaml: a user table in both users: and dataset\.users"):
        users_config(both)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"dataset": {"users": {"input": "hh.csv"}}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml \(dataset\.users\)"):
        users_config(tmp_path / "bad.yaml")
