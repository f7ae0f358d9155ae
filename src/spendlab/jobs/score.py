"""Batch scoring: every user's next-period spend, streamed in user chunks.

Each row is the registered pyfunc's output for the user (expected spend ``prediction``, ``p_spend``,
``median`` and the 80% interval ``lower``/``upper`` of the realized amount, ``segment``, ``basis``),
plus the cutoff, the target period and the model: nothing is computed outside the model.

The input is read once: its as-of rows go into a slim DuckDB table (user, day, exact amount, a
hash bucket of ``user_id``), which lives in DuckDB's buffer manager under its memory limit and spills
to disk beyond it. DuckDB then computes the features for one chunk of users at a time from that
table, the registered pyfunc model predicts (with every core: ``n_threads``), and each chunk is
appended to one Parquet file at a temporary path that is renamed into place only when every user
has a row. Python-side memory is bounded by the chunk size, not by the number of transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.calendar import shift_period, target_period_label
from spendlab.errors import NoDataError, SpendlabError
from spendlab.features import asof_rows_table, build_features_arrow
from spendlab.features.metadata import default_as_of
from spendlab.io.atomic import atomic_path
from spendlab.io.load import Transactions, connect
from spendlab.models.base import usable_cores
from spendlab.tracking.scorer import LoadedModel, _resolved, score_frame

log = logging.getLogger(__name__)


SCORE_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("target_period", pa.string(), nullable=False),
        pa.field("prediction", pa.float64(), nullable=False),
        pa.field("p_spend", pa.float64(), nullable=False),
        pa.field("median", pa.float64(), nullable=False),
        pa.field("lower", pa.float64(), nullable=False),
        pa.field("upper", pa.float64(), nullable=False),
        pa.field("segment", pa.string(), nullable=False),
        pa.field("basis", pa.string(), nullable=False),
        pa.field("model_uri", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class ScoreResult:
    out: Path
    as_of: dt.date
    target_period: str
    users_in: int
    rows_out: int
    by_basis: dict[str, int]
    model_uri: str
    model_version: str
    total_prediction: float
    #: What a reviewer should know about this run (other training data, an as-of past the data).
    warnings: tuple[str, ...] = ()


def score(
    tx: Transactions,
    *,
    out: Path,
    model: LoadedModel | Future[LoadedModel],
    as_of: dt.date | None = None,
    chunk_users: int = 250_000,
    threads: int | None = None,
    memory_limit: str | None = "3GB",
    progress: bool = True,
) -> ScoreResult:
    """Score every user seen up to ``as_of`` and write ``out`` atomically.

    One row per user, including users with a single transaction or a single month; the count of
    rows written is checked against the count of users before the file is moved into place.
    ``model`` may be a future of a loaded model (see :func:`load_model_async`): with ``as_of`` given,
    the input is read and cut while the model loads, and the model is awaited only when needed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


    con = connect(threads=threads, memory_limit=memory_limit)
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendlab-hash")
    input_hash = hashing.submit(tx.content_hash)  # read beside the scoring; hashlib releases the GIL
    hashing.shutdown(wait=False)
    try:
        tx.register(con)
        if as_of is None:
            model = _resolved(model)
            as_of = default_as_of(con, model.freq)
        rows = asof_rows_table(con, as_of)  # one read of the input; every chunk is a slice of it
        users_in = con.execute(f"SELECT count(DISTINCT user_id) FROM {rows}").fetchone()[0]
        if users_in == 0:
            raise NoDataError(f"no user has a transaction on or before {as_of}: nothing to score")
        model = _resolved(model)
        target_period = target_period_label(as_of, model.freq)
        last_day = con.execute(f"SELECT max(ts)::DATE FROM {rows}").fetchone()[0]
        n_chunks = max(1, math.ceil(users_in / max(1, chunk_users)))
        with atomic_path(out) as tmp, Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("users"), TimeElapsedColumn(),
            transient=True, disable=not progress,
        ) as bar:
            task = bar.add_task("score", total=users_in)
            written = _write_chunks(con, rows, n_chunks, tmp, model=model, as_of=as_of, target_period=target_period,
                                    threads=threads or usable_cores(),
                                    done=lambda n: bar.advance(task, n))
            if written.rows != users_in:
                raise SpendlabError(f"scoring wrote {written.rows} rows for {users_in} users; output not written")
    finally:
        con.close()
    warnings = score_warnings(as_of=as_of, last_day=last_day, freq=model.freq, model_hash=model.dataset_hash,
                              input_hash=input_hash.result(), model_uri=model.uri)
    for w in warnings:
        log.warning(w)
    return ScoreResult(Path(out), as_of, target_period, int(users_in), written.rows, written.by_basis, model.uri,
                       model.version, written.total, tuple(warnings))


def score_warnings(*, as_of: dt.date, last_day: dt.date | None, freq: str, model_hash: str, input_hash: str,
                   model_uri: str) -> list[str]:
    """Warnings about a scoring run (it still runs): an as-of more than one period (``freq``) past
    the last transaction on or before it (every user then looks inactive for the gap), and input
    data other than the model's training data (by content hash; expected when scoring a newer
    export, a mistake when the wrong file or model was picked)."""
    out = []
    if last_day is not None and as_of >= shift_period(last_day, freq, 2):  # type: ignore[arg-type]
        out.append(f"--as-of {as_of} is more than one {freq} after the last transaction ({last_day}): "
                   "every user looks inactive for the gap")
    if model_hash and input_hash and not input_hash.startswith(model_hash):
        out.append(f"the input (data hash {input_hash[:16]}) is not the data {model_uri} was trained on "
                   f"({model_hash[:16]}); expected for a newer export, otherwise check --model and the input")
    return out


@dataclass
class _Written:
    rows: int = 0
    total: float = 0.0
    by_basis: dict[str, int] = field(default_factory=dict)


def _write_chunks(con: Any, rows: str, n_chunks: int, path: Path, *, model: LoadedModel, as_of: dt.date,
                  target_period: str, threads: int, done: Callable[[int], None]) -> _Written:
    """Features, predictions and output rows for chunk k = the users with ``bucket % n_chunks = k``.

    DuckDB builds chunk k + 1 on a worker thread (the only user of ``con`` meanwhile) while this
    thread predicts and writes chunk k; both release the GIL. At most two chunks are held at once.
    """

    def chunk_features(k: int) -> pa.Table:
        con.execute(f"CREATE OR REPLACE TEMP VIEW score_chunk AS SELECT user_id, ts, amount FROM {rows} "
                    f"WHERE bucket % {n_chunks} = {k}")
        return build_features_arrow(con, freq=model.freq, as_of=as_of, config=model.feature_config,
                                    view="score_chunk")

    written = _Written()
    writer = pq.ParquetWriter(path, SCORE_SCHEMA, compression="zstd")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendlab-features")
    try:
        pending = pool.submit(chunk_features, 0)
        for k in range(n_chunks):
            features = pending.result()
            if k + 1 < n_chunks:
                pending = pool.submit(chunk_features, k + 1)
            if features.num_rows == 0:
                continue
            pred = score_frame(model, features.to_pandas(), threads=threads)
            if not pred["user_id"].equals(pd.Series(features.column("user_id").to_pylist(), dtype=object).astype(str)):
                raise SpendlabError("the model returned rows for other users than it was given")
            writer.write_table(_score_table(pred, as_of=as_of, target_period=target_period, model=model))
            written.rows += features.num_rows
            written.total += float(pred["prediction"].sum())
            for b, c in pred["basis"].value_counts().items():
                written.by_basis[str(b)] = written.by_basis.get(str(b), 0) + int(c)
            done(features.num_rows)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
    return written


def _score_table(pred: pd.DataFrame, *, as_of: dt.date, target_period: str, model: LoadedModel) -> pa.Table:
    """One chunk's rows of the output (:data:`SCORE_SCHEMA`): the model's rows, keyed by its ``user_id``."""
    n = len(pred)

    def constant(value: Any, kind: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, kind), n)

    def floats(col: str) -> pa.Array:
        return pa.array(pred[col].to_numpy(np.float64))

    return pa.table(
        {
            "user_id": pa.array(pred["user_id"].astype(str).to_numpy(), pa.string()),
            "as_of": constant(as_of, pa.date32()),
            "target_period": constant(target_period, pa.string()),
            **{c: floats(c) for c in ("prediction", "p_spend", "median", "lower", "upper")},
            "segment": pa.array(pred["segment"].astype(str).to_numpy(), pa.string()),
            "basis": pa.array(pred["basis"].astype(str).to_numpy(), pa.string()),
            "model_uri": constant(model.uri, pa.string()),
            "model_version": constant(model.version, pa.string()),
        },
        schema=SCORE_SCHEMA,
    )
