"""Run the ``spendlab datasets`` jobs, writing their outputs atomically.

Seeded synthetic transactions (with their oracle) and delta scenarios; the generators in
:mod:`spendlab.datasets` only compute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from spendlab.calendar import check_freq
from spendlab.datasets.deltas import COLUMNS, delta_scenario
from spendlab.datasets.shift import parse_shift
from spendlab.datasets.synth import FUTURE_PERIODS, ORACLE_FILE, ORACLE_KEY
from spendlab.datasets.worlds import make_world
from spendlab.errors import SpendlabError
from spendlab.io.atomic import atomic_path


def _check_oracle_target(path: Path, out: Path) -> None:
    """Refuse to overwrite an ``oracle.parquet`` that spendlab did not write (or the output itself)."""
    import pyarrow.parquet as pq

    if path.resolve() == out.resolve():
        raise SpendlabError(f"--out {out} is where the oracle goes ({ORACLE_FILE}); name the output otherwise")
    if not path.exists() and not path.is_symlink():
        return
    try:
        ours = path.is_file() and not path.is_symlink() and ORACLE_KEY in (pq.read_schema(path).metadata or {})
    except Exception:  # not Parquet at all: certainly not ours
        ours = False
    if not ours:
        raise SpendlabError(f"refusing to overwrite {path}: it was not written by spendlab datasets synth --oracle")


# long: one streaming loop writing data and oracle chunk by chunk under two atomic paths; its setup and teardown belong together
def synth_transactions(
    out: str | Path,
    *,
    users: int = 10_000,
    months: int = 18,
    fmt: str = "parquet",
    start: str = "2023-01-01",
    seed: int = 0,
    chunk_users: int = 50_000,
    refund_rate: float = 0.01,
    profile: str = "default",
    oracle: bool = False,
    freq: str = "month",
    progress: bool = False,
    shift: str | None = None,
) -> dict[str, int]:
    """Write seeded synthetic transactions, generated in chunks of users (bounded memory).

    Behaviour per user (:class:`SynthWorld`, profiles in :data:`PROFILES`): an acquisition month
    in the first two thirds of the window with at least one purchase, a gamma-distributed purchase
    rate (so counts are gamma-Poisson, i.e. negative binomial), churn after a geometric number of
    months with a beta-distributed monthly probability, lognormal baskets around a user-level
    mean, calendar effects (weekday, November/December, Black Friday, Cyber Monday, quieter public
    holidays) and a few partial refunds. ``profile="habit"`` or ``"mixed"`` writes a world of
    :mod:`spendlab.datasets.worlds` instead (routine shoppers; no refunds). ``fmt="parquet"`` writes canonical columns ``user_id, ts,
    amount`` (positive = spend); ``fmt="millions"`` writes the card CSV format.

    ``oracle=True`` also writes ``oracle.parquet`` beside ``out``: ``user_id, period_start,
    expected_spend``, each user's true expected gross spend per ``freq`` period (month or ISO
    week) given the latent parameters, for every period of the data and
    :data:`FUTURE_PERIODS` more.

    ``shift`` (``MONTH:rate=R,basket=B``, :func:`spendlab.datasets.shift.parse_shift`): from that month
    on, purchase rates and baskets are multiplied by ``R`` and ``B`` (the oracle follows).
    """
    import contextlib
    import json

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq


    if fmt not in {"parquet", "millions"}:
        raise SpendlabError(f"unknown synthetic format {fmt!r}; choose parquet or millions")
    if users < 1 or months < 1:
        raise SpendlabError("--users and --months must be positive")
    try:
        check_freq(freq)
    except ValueError as exc:
        raise SpendlabError(str(exc)) from None
    change = parse_shift(shift, start=start) if shift else None
    world = make_world(profile, users=users, months=months, start=start, seed=seed, chunk_users=chunk_users,
                       refund_rate=refund_rate, shift=change)
    out = Path(out)
    oracle_path = out.parent / ORACLE_FILE
    if oracle:
        _check_oracle_target(oracle_path, out)
    about = json.dumps({"profile": profile, "seed": seed, "users": users, "months": months, "start": start,
                        "freq": freq, "chunk_users": chunk_users, "data": out.name,
                        "future_periods": FUTURE_PERIODS, **({"shift": shift} if shift else {})}).encode()
    total = oracle_rows = 0
    with contextlib.ExitStack() as stack:
        otmp = stack.enter_context(atomic_path(oracle_path)) if oracle else None
        tmp = stack.enter_context(atomic_path(out))  # renamed first: the data, then its oracle
        writer = oracle_writer = None
        csv_fh = None
        if fmt == "millions":
            csv_fh = stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))
            csv_fh.write("type,data,created_at,user_id\n")
        for c in range(world.n_chunks):
            latent = world.latent(c)
            u_rep, ts_us, amount = world.purchases(c, latent)
            ids = world.user_ids(c)
            total += len(u_rep)
            if fmt == "parquet":
                table = pa.table({
                    "user_id": pa.array(ids[u_rep], pa.string()),
                    "ts": pa.array(ts_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "amount": pa.array(amount, pa.float64()),
                })
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=1_000_000)
            else:
                stamp = pd.to_datetime(ts_us, unit="us")
                created = (stamp.strftime("%Y-%m-%d ") + pd.Index(stamp.hour.astype(str))
                           + stamp.strftime(":%M:%S"))
                money = np.char.mod("%.2f", -amount)
                numeric_ids = np.char.lstrip(np.char.lstrip(ids[u_rep], "u"), "0")
                lines = np.char.add(np.char.add('auth,"{""amount"":""', money), '""}",')
                lines = np.char.add(np.char.add(lines, np.asarray(created, dtype=str)), ",")
                lines = np.char.add(lines, numeric_ids)
                csv_fh.write("\n".join(lines.tolist()) + "\n")  # type: ignore[union-attr]
            if oracle:
                starts, expected = world.oracle(latent, freq)
                otable = pa.table({
                    "user_id": pa.array(np.repeat(ids, len(starts)), pa.string()),
                    "period_start": pa.array(np.tile(np.asarray(starts, dtype="datetime64[D]"), len(ids)),
                                             pa.date32()),
                    "expected_spend": pa.array(expected.ravel(), pa.float64()),
                }).replace_schema_metadata({ORACLE_KEY: about})
                if oracle_writer is None:
                    oracle_writer = pq.ParquetWriter(otmp, otable.schema, compression="zstd")
                oracle_writer.write_table(otable, row_group_size=1_000_000)
                oracle_rows += otable.num_rows
            if progress:
                print(f"synth: chunk {c + 1}/{world.n_chunks}, {total:,} transactions", file=sys.stderr)
        if writer is not None:
            writer.close()
        if oracle_writer is not None:
            oracle_writer.close()
        if csv_fh is not None:
            csv_fh.close()
    stats = {"users": users, "transactions": total}
    if oracle:
        stats["oracle_rows"] = oracle_rows
    return stats


def _csv(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df[COLUMNS].astype({c: "int64" for c in COLUMNS[1:]}).astype({"user_id": str}),
                                 preserve_index=False)
    with atomic_path(path) as tmp:
        pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="none"))


def _write(out: Path, rows: pd.DataFrame, fnames: list[str], platform: pd.DataFrame, source: pd.DataFrame,
           answer: dict) -> None:
    ddir = out / "inputs" / "deltas"
    ddir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(fnames):
        part = rows[rows["file"] == k].sort_values("line_order", kind="mergesort")
        _csv(part, ddir / name)
    for df, name in ((platform, "platform_summary.csv"), (source, "client_summary.csv")):
        df = df.reset_index().sort_values("user_id", kind="mergesort")
        _csv(df, out / "inputs" / name)
    with atomic_path(out / "answer_key.json") as tmp:
        tmp.write_text(json.dumps(answer, indent=1, default=str) + "\n", encoding="utf-8")


def generate_deltas(out: str | Path, **scenario: Any) -> dict:
    """Write one delta scenario under ``out`` and return its answer key.

    The keyword arguments are :func:`spendlab.datasets.deltas.delta_scenario`'s.
    """
    s = delta_scenario(**scenario)
    _write(Path(out), s.rows, s.files, s.platform, s.source, s.answer)
    return s.answer
