"""``spendlab describe`` end to end through the command line, on CDNOW and on bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "describe_small.csv"


def spendlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spendlab.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_describe_cdnow_writes_every_output_with_the_known_totals(tmp_path: Path) -> None:
    out = tmp_path / "cdnow"
    result = spendlab("describe", "builtin:cdnow", "--format", "cdnow", "--out", str(out))
    assert result.returncode == 0, result.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["n_transactions"] == 69_659
    assert s["n_users"] == 23_570
    assert s["total_spend"] == 2_500_315.63
    assert s["rows_rejected"] == 0 and s["n_refunds"] == 0
    assert s["period_start"].startswith("1997-01-01") and s["period_end"].startswith("1998-06-30")
    with open(out / "avg_transaction_value_per_user.csv", newline="") as fh:
        per_user = list(csv.DictReader(fh))
    assert len(per_user) == 23_570
    assert round(sum(float(r["total_spend"]) for r in per_user), 2) == pytest.approx(2_500_315.63, abs=0.01)
    with open(out / "monthly_spend_per_user.csv", newline="") as fh:
        monthly = list(csv.DictReader(fh))
    assert sum(int(r["n_transactions"]) for r in monthly) == 69_659
    for name in ("days_spent_per_week.csv", "report.html", "insights/daily_spend.csv",
                 "insights/cohort_retention.csv", "figures/daily_spend.png"):
        assert (out / name).stat().st_size > 0, name
    assert "2,500,315.63" in result.stdout


def test_describe_net_refunds_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "net.yaml"
    cfg.write_text("reader:\n  refunds: net\n")
    out = tmp_path / "out"
    result = spendlab("describe", str(FIXTURE), "--format", "generic", "--config", str(cfg), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["net_spend"] == 181.50


def test_describe_bad_input_is_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = spendlab("describe", str(tmp_path / "missing.csv"), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.csv" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()

    strict = spendlab("describe", str(FIXTURE), "--mode", "strict", "--out", str(out))
    assert strict.returncode == 2
    assert "line 12" in strict.stderr and "amount" in strict.stderr and "Traceback" not in strict.stderr
    assert not out.exists()
