"""Explicit limits: every amount and date limit is held exactly or refused at the edge in one line
naming the value and the limit (never a DuckDB conversion error or a pandas overflow later)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

import spendlab
from spendlab.config import AMOUNT_CEILING, TS_LAST_DAY, ReaderConfig, parse_config
from spendlab.errors import ConfigError
from tests.reliability.cli_harness import run_cli


@pytest.mark.parametrize("limit", [1e10 + 1, 1e12, 1e15, 1e300])
def test_a_max_abs_amount_above_the_ceiling_is_refused_naming_both(limit: float) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(ReaderConfig, {"max_abs_amount": limit}, "reader")
    assert f"{limit:g}" in str(err.value) and f"{AMOUNT_CEILING:g}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("amount", ["1000000000000", "1e12", "99999999999999.99", "123456789012345678901"])
def test_amounts_past_the_limit_are_rejected_rows_naming_value_and_limit(tmp_path: Path, amount: str) -> None:
    (tmp_path / "a.csv").write_text(f"user_id,ts,amount\nu1,2024-01-02,{amount}\nu2,2024-01-03,5.00\n")
    loaded = spendlab.load(str(tmp_path / "a.csv"), reader={"max_abs_amount": AMOUNT_CEILING})
    assert loaded.rejects[["line", "error_type"]].values.tolist() == [[2, "OUT_OF_RANGE"]]
    assert f"{AMOUNT_CEILING:g}" in loaded.rejects["message"].iloc[0]
    assert spendlab.describe_transactions(loaded, top_n=3).summary["total_spend"] == 5.0


@pytest.mark.parametrize("values", [["9999999999.99"] * 3, ["9999999999.99", "0.01", "1234567890.12"],
                                    ["0.01"] * 7 + ["9999999999.99"]])
def test_amounts_up_to_the_ceiling_are_summed_exactly_by_describe_and_features(tmp_path: Path,
                                                                             values: list[str]) -> None:
    rows = "".join(f"u1,2024-01-{i + 2:02d},{v}\n" for i, v in enumerate(values))
    (tmp_path / "a.csv").write_text("user_id,ts,amount\n" + rows)
    reader = {"max_abs_amount": AMOUNT_CEILING}
    loaded = spendlab.load(str(tmp_path / "a.csv"), reader=reader)
    assert loaded.rejects.empty
    exact = sum(Decimal(v) for v in values)
    described = spendlab.describe_transactions(loaded, top_n=3)
    assert Decimal(str(described.summary["total_spend"])) == exact
    assert Decimal(str(described.per_user.set_index("user_id").loc["u1", "total_spend"])) == exact
    feats = spendlab.user_features(loaded, as_of="2024-01-31").table.set_index("user_id")
    spend_cols = [c for c in feats.columns if c.startswith("spend") and "lag1" in c]
    assert spend_cols and Decimal(repr(float(feats.loc["u1", spend_cols[0]]))).quantize(Decimal("0.01")) == exact


@pytest.mark.parametrize("day", ["2262-04-12", "2300-01-01", "9999-12-31", "1600-01-01"])
def test_a_window_past_the_representable_days_is_refused_by_validate_itself(tmp_path: Path, day: str) -> None:
    key = "window_start" if day.startswith("16") else "window_end"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"reader": {key: day}}))
    (tmp_path / "a.csv").write_text("user_id,ts,amount\nu1,2261-01-02,1.00\n")
    res = run_cli(["validate", str(tmp_path / "a.csv"), "--format", "generic", "--config", str(cfg)])
    assert res.code == 2 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and day in lines[0] and str(TS_LAST_DAY) in lines[0], res.stderr


@pytest.mark.parametrize("ts", ["2262-04-12 00:00:00", "2300-01-01", "9999-12-31 23:59:59", "2262-04-11 23:47:17"])
def test_timestamps_past_2262_never_pass_validate(tmp_path: Path, ts: str) -> None:
    """With the latest window allowed, a timestamp past pandas' range is a rejected row, not a later crash."""
    (tmp_path / "a.csv").write_text(f"user_id,ts,amount\nu1,{ts},1.00\nu2,2262-04-01,2.00\n")
    loaded = spendlab.load(str(tmp_path / "a.csv"), reader={"window_end": str(TS_LAST_DAY)})
    assert loaded.rejects[["line", "error_type"]].values.tolist() == [[2, "OUT_OF_WINDOW"]]
    assert spendlab.describe_transactions(loaded, top_n=3).summary["total_spend"] == 2.0
