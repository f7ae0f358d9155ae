"""Shared set-up for the job tests (tuning, promotion, scoring, pipeline): a small synthetic
experiment in a temporary working directory, so ``mlruns/`` and ``configs/tuned/`` stay there."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spendlab.jobs.datasets import synth_transactions


def write_experiment(root: Path, *, name: str = "synth_next_month", models: list[str] | None = None,
                     params: dict | None = None, users: int = 300, seed: int = 3, months: int = 14) -> Path:
    """A synthetic monthly experiment: ``months`` months from 2023-01, validation 2023-07..09, test 2023-10..12."""
    data = root / "data" / "tx.parquet"
    if not data.exists():
        synth_transactions(data, users=users, months=months, start="2023-01-01", seed=seed)
    exp = {
        "name": name,
        "dataset": {"input": str(data), "format": "generic", "name": "synth"},
        "freq": "month",
        "horizon": 1,
        "train_origins": 3,
        "validation": {"start": "2023-07-31", "end": "2023-09-30"},
        "test": {"start": "2023-10-31", "end": "2023-12-31"},
        "models": models or ["zero", "last_period", "ridge", "lightgbm"],
        "params": params or {"lightgbm": {"n_estimators": 60}},
        "ensemble_members": ["ridge", "lightgbm"],
    }
    path = root / "experiments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory (mlruns/, configs/tuned/ and outputs/ are created here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
