"""Shared fixtures and tiny-file builders for the whole suite.

Other developers' tests import from here: only add helpers, never rename or change one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

MILLIONS_HEADER = "type,data,created_at,user_id"


def millions_row(amount: str, created_at: str, user_id: str, type_: str = "auth") -> str:
    """One millions-format CSV line (no line ending): ``data`` is CSV-quoted JSON."""
    data = json.dumps({"amount": amount}, separators=(",", ":")).replace('"', '""')
    return f'{type_},"{data}",{created_at},{user_id}'


def millions_csv(
    rows: Iterable[str | Sequence[str]],
    *,
    header: str = MILLIONS_HEADER,
    eol: str = "\n",
    final_newline: bool = True,
) -> bytes:
    """Bytes of a millions-format file.

    Each row is either a raw line (``str``, written verbatim) or a tuple
    ``(amount, created_at, user_id[, type])`` built with :func:`millions_row`.
    """
    lines = [header]
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
        else:
            amount, created_at, user_id, *rest = row
            lines.append(millions_row(amount, created_at, user_id, *rest))
    text = eol.join(lines) + (eol if final_newline else "")
    return text.encode("utf-8")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile`` hands out the longest file first, Spark files together (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.scheduling import heaviest_first_scheduler

    return heaviest_first_scheduler(config, log)


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment, which the CLI
    honours: without this, a test would log to the store an earlier test configured."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], str]:
    """``mlflow_store(db)`` puts an empty, already migrated MLflow store at ``db``; returns its ``sqlite:///`` URI.

    A new ``sqlite:///`` store runs MLflow's schema migrations (about 0.8 CPU s each, 50-odd stores
    in a run). The template is migrated once per worker by the installed MLflow, so a copy opens
    without migrating (about 0.06 CPU s). Its Default experiment (id 0) is removed: the first
    client of the copy creates it with its own artifact location, as it does in a new store, and
    the next experiment gets id 1, as in a new store. Use it where the store is not the subject;
    tests of store creation or of an out-of-date schema make their own.
    """
    from mlflow import MlflowClient

    template = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
    with sqlite3.connect(template) as con:
        con.execute("DELETE FROM experiment_tags")
        con.execute("DELETE FROM experiments")
    con.close()

    def copy(db: Path) -> str:
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, db)
        return f"sqlite:///{db}"

    return copy


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """``write_file(name, data)`` writes bytes (or UTF-8 text) under ``tmp_path`` and returns the path."""

    def write(name: str, data: bytes | str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    return write


def load(path: Path | str, fmt: str = "millions", mode: str = "quarantine", **config: object):
    """``load_transactions`` with reader-config keyword overrides; checks conservation per file."""
    from spendlab.config import ReaderConfig
    from spendlab.io import Mode, load_transactions

    tx = load_transactions(str(path), fmt, config=ReaderConfig(**config), mode=Mode(mode))
    for f in tx.report.files:
        assert f.rows_in == f.accepted + f.rejected, f.as_dict()
    return tx
