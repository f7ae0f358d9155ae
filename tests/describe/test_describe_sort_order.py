"""The per-user CSVs are sorted by the id as written, whichever sort describe uses internally."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

import spendlab.jobs.describe as job
from spendlab.io import load_transactions
from spendlab.io.load import connect

BIG = ["avg_transaction_value_per_user.csv", "monthly_spend_per_user.csv", "days_spent_per_week.csv",
       "insights/mom_change_per_user.csv"]
#: The second sort column of each table (after user_id), as written.
SECOND = {"monthly_spend_per_user.csv": "month", "days_spent_per_week.csv": "week_start",
          "insights/mom_change_per_user.csv": "month"}


def _write_input(path: Path, ids: list[str], seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "ts", "amount"])
        for uid in ids:
            for _ in range(rng.randint(1, 6)):
                amount = rng.choice([-5.0, 0.0]) if rng.random() < 0.1 else round(rng.uniform(0.5, 300), 2)
                w.writerow([uid, f"2022-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d}T10:00:00Z", f"{amount:.2f}"])


def _ids(rng: random.Random, hostile: bool) -> list[str]:
    # numbers of different lengths (string order is not numeric order), letters, punctuation between
    # the quote the writer adds and the formula characters
    pool = [str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(40)]
    pool += ["a1", "B", "(x)", "*star", ",comma", "0007", "~tilde", "ü-umlaut"]
    if hostile:
        pool += ["=1+1", "+cmd", "@SUM(A1)", "-2+3", "-7"]
    return sorted(set(pool))


def _describe(tmp: Path, src: Path, monkeypatch, *, raw: bool | None) -> Path:
    if raw is not None:
        monkeypatch.setattr(job, "ids_sort_as_written", lambda con: raw)
    out = tmp / f"out_{raw}"
    job.run_describe(load_transactions(str(src), "generic"), out, top_n=5)
    monkeypatch.undo()
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_raw_sort_writes_the_same_bytes(tmp_path, monkeypatch, seed):
    src = tmp_path / "tx.csv"
    _write_input(src, _ids(random.Random(seed), hostile=False), seed)
    fast = _describe(tmp_path, src, monkeypatch, raw=True)
    slow = _describe(tmp_path, src, monkeypatch, raw=False)
    for name in BIG:
        assert (fast / name).read_bytes() == (slow / name).read_bytes(), name
        rows = _rows(fast / name)
        assert len(rows) > 0
        key = [(r["user_id"], r.get(SECOND.get(name, ""), "")) for r in rows]
        assert key == sorted(key), name  # independent oracle: code-point order of the written cells


@pytest.mark.parametrize("hostile", [False, True])
def test_ids_sort_as_written_detects_formula_ids(tmp_path, hostile):
    src = tmp_path / "tx.csv"
    _write_input(src, _ids(random.Random(7), hostile=hostile), 7)
    tx = load_transactions(str(src), "generic")
    con = connect()
    tx.register(con)
    from spendlab.describe import tables as qt

    qt.prepare(con)
    assert job.ids_sort_as_written(con) is (not hostile)
    con.close()


def test_formula_ids_are_sorted_as_written(tmp_path, monkeypatch):
    src = tmp_path / "tx.csv"
    _write_input(src, _ids(random.Random(11), hostile=True), 11)
    out = _describe(tmp_path, src, monkeypatch, raw=None)
    for name in BIG:
        rows = _rows(out / name)
        assert any(r["user_id"].startswith("'") for r in rows), name
        key = [(r["user_id"], r.get(SECOND.get(name, ""), "")) for r in rows]
        assert key == sorted(key), name


def _parquet_pair(tmp: Path, seed: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    ids = [rng.choice([-1, 1]) * rng.randint(0, 10 ** rng.randint(1, 9)) for _ in range(60)]
    rows = [(uid, f"2022-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:00:00Z",
             rng.choice([-5.0, 0.0, round(rng.uniform(0.5, 300), 2)])) for uid in ids for _ in range(rng.randint(1, 5))]
    ts = pa.array([r[1] for r in rows]).cast(pa.timestamp("us", tz="UTC"))
    amount = pa.array([r[2] for r in rows], pa.float64())
    as_int, as_text = tmp / "int_ids.parquet", tmp / "text_ids.parquet"
    pq.write_table(pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()), "ts": ts, "amount": amount}), as_int)
    pq.write_table(pa.table({"user_id": pa.array([str(r[0]) for r in rows]), "ts": ts, "amount": amount}), as_text)
    return as_int, as_text


@pytest.mark.parametrize("seed", [4, 5])
def test_integer_ids_describe_like_their_text(tmp_path, seed):
    """Grouping on native integer ids writes what the same ids stored as text write, byte for byte."""
    as_int, as_text = _parquet_pair(tmp_path, seed)
    outs = []
    for src in (as_int, as_text):
        out = tmp_path / f"out_{src.stem}"
        job.run_describe(load_transactions(str(src), "generic"), out, top_n=5)
        outs.append(out)
    written = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*.csv"))
    assert len(written) >= len(BIG)
    for rel in written:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    assert (outs[0] / "summary.json").read_text().replace("int_ids", "text_ids") == \
        (outs[1] / "summary.json").read_text()


def test_stored_sorted_tables_are_written_in_order_across_row_groups_and_threads(tmp_path, monkeypatch):
    """The CSVs read from the tables ``prepare`` stores sorted come out in order without an ``ORDER BY``.

    Enough user-months (about 180k) to span more than one of DuckDB's row groups (122,880 rows) and vectors,
    on two threads under a small memory limit (the tables spill): the unsorted read must still give
    the written id's code-point order, and the same bytes as the sorted path.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20)
    n_users, per_user = 30_000, 8
    user = np.repeat(rng.permutation(n_users).astype(np.int64) * 37, per_user)
    days = rng.integers(0, 365, user.size)
    ts = (np.datetime64("2022-01-01T00:00:00", "us") + days * np.timedelta64(86_400, "s")
          + rng.integers(0, 86_400, user.size) * np.timedelta64(1, "s"))
    amount = np.round(rng.uniform(-20, 300, user.size), 2)
    src = tmp_path / "many.parquet"
    pq.write_table(pa.table({"user_id": user, "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
                             "amount": amount}), src)
    tx = load_transactions(str(src), "generic")
    outs = {}
    for raw in (True, False):
        monkeypatch.setattr(job, "ids_sort_as_written", lambda con, raw=raw: raw)
        outs[raw] = tmp_path / f"out_{raw}"
        job.run_describe(tx, outs[raw], top_n=5, threads=2, memory_limit="64MiB")
        monkeypatch.undo()
    for name in sorted(job.STORED_SORTED):
        rows = _rows(outs[True] / name)
        assert len(rows) > 122_880, name
        key = [(r["user_id"], r["month"]) for r in rows]
        assert key == sorted(key), name
        assert (outs[True] / name).read_bytes() == (outs[False] / name).read_bytes(), name
