"""The ``mlflow_store`` fixture (tests/conftest.py): a copied, already migrated store behaves as a new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def test_a_copied_store_opens_without_migrating_and_numbers_experiments_as_a_new_store(
        mlflow_store: Callable[[Path], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.store.db.utils as db_utils
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # both stores put the Default experiment's artifacts under ./mlruns
    (tmp_path / "new").mkdir()
    new = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/new/mlflow.db")
    new_id = new.create_experiment("x")

    def migrate(*_: object) -> None:
        raise AssertionError("the copied store ran MLflow's migrations")

    monkeypatch.setattr(db_utils, "_initialize_tables", migrate)
    monkeypatch.setattr(db_utils, "_upgrade_db", migrate)
    uri = mlflow_store(tmp_path / "copied" / "store.db")
    assert uri == f"sqlite:///{tmp_path}/copied/store.db"
    copied = MlflowClient(tracking_uri=uri)
    assert copied.create_experiment("x") == new_id == "1"
    default, want = copied.get_experiment("0"), new.get_experiment("0")
    assert (default.name, default.artifact_location) == (want.name, want.artifact_location) == (
        "Default", str(tmp_path / "mlruns" / "0"))
    # search_experiments orders by creation time in milliseconds: the Default experiment and "x" may share
    # one, and then their order is the database's; what must match is which experiments each store holds.
    assert (sorted((e.experiment_id, e.name) for e in copied.search_experiments())
            == sorted((e.experiment_id, e.name) for e in new.search_experiments()) == [("0", "Default"), ("1", "x")])
