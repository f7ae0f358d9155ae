"""``describe --tables parquet``: the per-user tables as Parquet, the same rows and values as the CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from spendlab import api
from spendlab.cli import app
from spendlab.jobs.describe import BIG_TABLES

FIXTURE = Path(__file__).parent / "fixtures" / "describe_small.csv"


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tables")
    api.describe_transactions(str(FIXTURE), out=root / "csv")
    api.describe_transactions(str(FIXTURE), out=root / "parquet", tables="parquet")
    return root / "csv", root / "parquet"


@pytest.mark.parametrize("name", list(BIG_TABLES))
def test_each_per_user_table_holds_the_csvs_rows_and_values(both: tuple[Path, Path], name: str) -> None:
    csv_dir, pq_dir = both
    from_csv = pd.read_csv(csv_dir / name, dtype={"user_id": str})
    pq = pq_dir / Path(name).with_suffix(".parquet")
    assert not (pq_dir / name).exists() and pq.exists()  # one format, never both
    from_pq = pd.read_parquet(pq)
    assert list(from_pq.columns) == list(from_csv.columns) and len(from_pq) == len(from_csv) > 0
    assert from_pq["user_id"].tolist() == from_csv["user_id"].tolist()  # same order, ids kept as text
    for col in from_csv.columns:
        a, b = from_pq[col], from_csv[col]
        if pd.api.types.is_numeric_dtype(b):
            # money is DECIMAL in Parquet (exact); the CSV rounds averages to cents and ratios to 6 decimals
            np.testing.assert_allclose(pd.to_numeric(a).to_numpy(dtype=float), b.to_numpy(dtype=float), rtol=0,
                                       atol=5e-3, equal_nan=True)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist()


def test_everything_else_is_the_same_in_both_formats(both: tuple[Path, Path]) -> None:
    csv_dir, pq_dir = both
    per_user = set(BIG_TABLES)
    rest = sorted(str(p.relative_to(csv_dir)) for p in csv_dir.rglob("*") if p.is_file()
                  and str(p.relative_to(csv_dir)) not in per_user)
    assert "summary.json" in rest and "report.html" in rest
    for name in rest:
        assert (pq_dir / name).read_bytes() == (csv_dir / name).read_bytes(), name


def test_cli_takes_tables_parquet_and_refuses_other_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["describe", str(FIXTURE), "--out", str(tmp_path / "o"), "--tables", "parquet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "monthly_spend_per_user.parquet").exists()
    assert not (tmp_path / "o" / "monthly_spend_per_user.csv").exists()
    res = runner.invoke(app, ["describe", str(FIXTURE), "--out", str(tmp_path / "x"), "--tables", "xlsx"])
    assert res.exit_code == 2 and not (tmp_path / "x").exists()
