"""Covariate data jobs.

The ``covariates`` synthetic world written to disk, and a dataset loaded with its user table (the comparison
with and without covariates is :mod:`spendlab.jobs.covariate_experiment`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from spendlab.datasets.worlds.covariates import generate
from spendlab.io import load_transactions
from spendlab.io.atomic import atomic_path
from spendlab.io.load import Transactions, connect
from spendlab.io.rejects import Mode
from spendlab.io.users import link_counts, load_users

#: Files :func:`synth_covariates` writes into its output directory.
LINES_FILE, HOUSEHOLDS_FILE, COVARIATE_ORACLE_FILE = "lines", "households.csv", "oracle.parquet"


def synth_covariates(out: str | Path, *, users: int = 20_000, months: int = 24, start: str = "2022-01-01",
                     seed: int = 0, fmt: str = "parquet") -> dict[str, int]:
    """Write the ``covariates`` world into directory ``out``.

    ``lines.parquet`` (or ``lines.csv``), ``households.csv`` and ``oracle.parquet`` (each household's true
    expected spend per month).

    Returns
    -------
    dict
        ``lines``, ``orders``, ``users``, ``household_rows`` and ``oracle_rows`` written.
    """
    world = generate(users=users, months=months, start=start, seed=seed)
    out = Path(out)
    lines = pa.Table.from_pandas(world.lines, preserve_index=False)
    with atomic_path(out / f"{LINES_FILE}.{'csv' if fmt == 'csv' else 'parquet'}") as tmp:
        if fmt == "csv":
            pacsv.write_csv(lines, tmp)
        else:
            pq.write_table(lines, tmp)
    with atomic_path(out / HOUSEHOLDS_FILE) as tmp:
        pacsv.write_csv(pa.Table.from_pandas(world.households.astype({"household_size": "int64"}),
                                             preserve_index=False), tmp)
    with atomic_path(out / COVARIATE_ORACLE_FILE) as tmp:
        pq.write_table(pa.Table.from_pandas(world.oracle, preserve_index=False), tmp)
    return {"lines": len(world.lines), "orders": int(world.lines["order_id"].nunique()), "users": users,
            "household_rows": len(world.households), "oracle_rows": len(world.oracle)}


def with_users(tx: Transactions, spec: Any, *, mode: Mode = Mode.QUARANTINE) -> Transactions:
    """Return a copy of ``tx`` with the user table of ``spec`` (``dataset.users``) attached and linked.

    The copy counts the table's unused keys and the users without a row; ``tx`` itself is not changed.
    ``tx`` itself when ``spec`` is None. ``mode`` is the validation mode.
    """
    if spec is None:
        return tx
    out = replace(tx, users=load_users(spec, mode=mode))
    con = connect()
    out.register(con)
    link_counts(out.users, con)  # type: ignore[arg-type]
    return out


def materialised(tx: Transactions) -> Transactions:
    """``tx`` with its rows read once into an Arrow table (a Parquet input is otherwise re-scanned, its orders regrouped, at every cutoff of both runs of a comparison)."""
    if tx.table is not None:
        return tx
    return replace(tx, table=tx.to_arrow(), sql=None, lookups={}, levels={})


def load_dataset_with_users(cfg: Any) -> Transactions:
    """Return an experiment's transactions (its ``dataset`` under its ``reader``) with its user table, if any."""
    tx = load_transactions(cfg.dataset.input, cfg.dataset.format, config=cfg.reader)
    return with_users(tx, cfg.dataset.users)
