"""Batch scoring: every user's next-period spend, streamed in user chunks.

Each row is the registered pyfunc's output for the user (expected spend ``prediction``, ``p_spend``,
``median`` and the 80% interval ``lower``/``upper`` of the realized amount, ``segment``, ``basis``),
plus the cutoff, the target period and the model: nothing is computed outside the model.

Every user's as-of features come from one DuckDB feature build over the input (the compact
per-(user, period) aggregate of :mod:`spendlab.features`; integer ids keep their type until the
output), limited to the columns the model reads. The registered pyfunc model then predicts one slice
of users at a time (with every core: ``n_threads``), and each chunk is appended to one Parquet file at
a temporary path that is renamed into place only when every user has a row.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spendlab.calendar import shift_period, target_period_label
from spendlab.errors import NoDataError, SpendlabError
from spendlab.features import build_features_arrow
from spendlab.features.metadata import default_as_of
from spendlab.io.atomic import atomic_path
from spendlab.io.load import Transactions, connect, date_span, load_transactions
from spendlab.jobs.covariates import with_users
from spendlab.jobs.plan import ScorePlan
from spendlab.monitor.drift import feature_drift, segment_shift_counts
from spendlab.settings import DEFAULT_MEMORY_LIMIT, check_as_of, usable_cores
from spendlab.threads import on_a_thread, submit
from spendlab.tracking.scorer import (
    BASIS_COLD_START,
    LoadedModel,
    load_model_async,
    resolve_model,
    resolve_spec,
    score_frame,
)

log = logging.getLogger(__name__)

#: The scores file's key-value metadata key holding its lineage (:func:`scores_lineage`, JSON).
LINEAGE_KEY = "spendlab.scores"
#: A Parquet folder's metadata file (Spark's output): the footer's ``spendlab.*`` key-value metadata as JSON.
FOLDER_METADATA_FILE = "_spendlab_metadata.json"


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
    """What a scoring run wrote and how many users it scored."""

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
    #: Drift against the model's reference profile: ``max_psi`` (and its feature), ``max_segment_shift``,
    #: ``cold_start_share`` (empty without a profile).
    drift: dict[str, Any] = field(default_factory=dict)


def score(
    tx: Transactions,
    *,
    out: Path,
    model: LoadedModel | Future[LoadedModel],
    as_of: dt.date | None = None,
    chunk_users: int = 250_000,
    threads: int | None = None,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    progress: bool = True,
    check_cutoff: bool = False,
) -> ScoreResult:
    """Score every user seen up to ``as_of`` and write ``out`` atomically.

    Every user's features come from one feature build over the input (ids in their stored type until
    the output), then the model predicts ``chunk_users`` users at a time and each chunk is
    appended to the output, which is moved into place only when every user has a row. ``model`` may be
    a future of a loaded model (:func:`load_model_async`): the features are built on its spec while it loads.
    ``check_cutoff``: :func:`~spendlab.settings.check_as_of`, reading the span only when needed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = connect(threads=threads, memory_limit=memory_limit)
    input_hash = on_a_thread("spendlab-hash", tx.content_hash)  # read beside the scoring; hashlib releases the GIL
    try:
        tx.register(con, native_ids=True)
        spec = resolve_spec(model)
        as_of = default_as_of(con, spec.freq) if as_of is None else as_of
        if check_cutoff:
            _check_outside_window(tx, as_of)
        features = build_features_arrow(con, freq=spec.freq, as_of=as_of, config=spec.feature_config,
                                        horizon=spec.horizon, columns=spec.columns)
    finally:
        con.close()
    model = resolve_model(model)
    users_in = features.num_rows
    if check_cutoff:
        _check_cutoff(tx, as_of, features)
    if users_in == 0:
        raise NoDataError(f"no user has a transaction on or before {as_of}: nothing to score")
    target_period = target_period_label(as_of, model.freq, model.horizon)
    feature_psi = (on_a_thread("spendlab-drift", profile_psi, model.reference, features, model.feature_names)
                   if model.reference else None)  # without a profile, score_drift reports nothing
    with atomic_path(out) as tmp, Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("users"), TimeElapsedColumn(),
        transient=True, disable=not progress,
    ) as bar:
        task = bar.add_task("score", total=users_in)
        written = _write_chunks(features, max(1, chunk_users), tmp, model=model, as_of=as_of,
                                target_period=target_period, threads=threads or usable_cores(),
                                done=lambda n: bar.advance(task, n))
        if written.rows != users_in:
            raise SpendlabError(f"scoring wrote {written.rows} rows for {users_in} users; output not written")
    warnings = score_warnings(as_of=as_of, last_day=_last_purchase_day(features, as_of), freq=model.freq,
                              model_hash=model.dataset_hash, input_hash=input_hash.result(), model_uri=model.uri)
    for w in warnings:
        log.warning(w)
    drift = score_drift(model.reference, features, written, model.feature_names, psi=feature_psi and feature_psi.result())
    return ScoreResult(Path(out), as_of, target_period, int(users_in), written.rows, written.by_basis, model.uri,
                       model.version, written.total, tuple(warnings), drift)


def profile_psi(reference: dict[str, Any] | None, features: pa.Table,
                feature_names: list[str] | None = None) -> pd.DataFrame:
    """PSI of the profiled features of a scored population (:func:`~spendlab.monitor.drift.feature_drift`).

    ``feature_names`` (the model's) limits the PSI to the features the model reads (default: every
    profiled feature the table holds); each column is read from Arrow when its turn comes, with no
    pandas copy. Empty without a reference profile. It reads only the features, so the job runs it
    beside the scoring.
    """
    if not reference:
        return feature_drift({"features": {}}, {})
    used = set(feature_names) if feature_names is not None else set(features.column_names)
    cols = [c for c in reference["features"] if c in used and c in features.column_names]
    return feature_drift(reference, _ArrowColumns(features, cols))


class _ArrowColumns(Mapping[str, np.ndarray]):
    """Columns of an Arrow table as NumPy arrays, each converted when read (one copy alive at a time)."""

    def __init__(self, table: pa.Table, names: list[str]) -> None:
        self._table, self._names = table, names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._table.column(name).to_numpy()

    def __contains__(self, name: object) -> bool:  # without a conversion
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def score_drift(reference: dict[str, Any] | None, features: pa.Table, written: _Written,
                feature_names: list[str] | None = None, *, psi: pd.DataFrame | None = None) -> dict[str, Any]:
    """PSI of the profiled features, segment share shift and cold-start share of a scored population.

    ``psi``: :func:`profile_psi` of the same arguments, when already computed (else it is computed here).
    """
    if not reference:
        return {}
    if psi is None:
        psi = profile_psi(reference, features, feature_names)
    shift = segment_shift_counts(reference, written.by_segment)
    worst = shift.loc[shift["shift"].abs().idxmax()] if len(shift) else None
    return {"max_psi": float(psi["psi"].iloc[0]) if len(psi) else 0.0,
            "max_psi_feature": str(psi["feature"].iloc[0]) if len(psi) else "",
            "max_segment_shift": float(worst["shift"]) if worst is not None else 0.0,
            "max_shift_segment": str(worst["segment"]) if worst is not None else "",
            "cold_start_share": written.by_basis.get(BASIS_COLD_START, 0) / max(written.rows, 1)}


def scores_lineage(model: LoadedModel, *, as_of: dt.date, target_period: str) -> dict[str, str]:
    """Return the ``spendlab.scores`` key-value metadata of a scores file: which model scored which period."""
    return lineage(model_name=model.name, model_uri=model.uri, model_version=model.version,
                   train_cutoff=model.train_cutoff, as_of=as_of, target_period=target_period, freq=model.freq,
                   horizon=model.horizon, interval_level=model.interval_level)


def lineage(*, model_name: str, model_uri: str, model_version: str, train_cutoff: str, as_of: dt.date,
            target_period: str, freq: str, horizon: int, interval_level: float) -> dict[str, str]:
    """Return the lineage of scores, as text (what ``monitor`` reads), for a model known or not registered."""
    return {"model_name": model_name, "model_uri": model_uri, "model_version": model_version,
            "train_cutoff": train_cutoff, "as_of": as_of.isoformat(), "target_period": target_period,
            "freq": freq, "horizon": str(horizon), "interval_level": repr(float(interval_level))}


def _check_cutoff(tx: Transactions, as_of: dt.date, features: pa.Table) -> None:
    """Raise :func:`~spendlab.settings.check_as_of`'s error for ``as_of``, reading the data's span only if needed.

    With a user scored, a transaction lies on or before ``as_of`` (not before the data) and the latest of
    them bounds the data's last day from below: within a year of ``as_of``, no error is possible.
    """
    last = _last_purchase_day(features, as_of)
    if features.num_rows and last is not None and (as_of - last).days <= 366:
        return
    check_as_of(as_of, *date_span(tx))


def _check_outside_window(tx: Transactions, as_of: dt.date) -> None:
    """Raise :func:`~spendlab.settings.check_as_of`'s error for an ``as_of`` outside the reader's window.

    Every accepted transaction lies inside the window (``reader.window_start`` .. ``window_end``, default
    the run date): an ``as_of`` before it, or more than a year after it, is an error whatever the data,
    and is refused before the features (whose calendar would span the gap) are built.
    """
    start = tx.config.window_start if tx.config is not None else dt.date(1970, 1, 1)
    end = (tx.config.window_end if tx.config is not None else None) or dt.date.today()
    if as_of < start or (as_of - end).days > 366:
        check_as_of(as_of, *date_span(tx))


def _last_purchase_day(features: pa.Table, as_of: dt.date) -> dt.date | None:
    """Find the latest purchase on or before ``as_of`` in the features (no second read of the input)."""
    if "days_since_last_purchase" not in features.column_names:
        return None
    days = pc.min(features.column("days_since_last_purchase")).as_py()
    return None if days is None else as_of - dt.timedelta(days=int(days))


def score_warnings(*, as_of: dt.date, last_day: dt.date | None, freq: str, model_hash: str, input_hash: str,
                   model_uri: str) -> list[str]:
    """Warn about a scoring run (it still runs).

    Warns of an as-of more than one period (``freq``) past the last transaction on or before it (every
    user then looks inactive for the gap), and of input data other than the model's training data (by
    content hash; expected when scoring a newer export, a mistake when the wrong file or model was
    picked).
    """
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
    by_segment: dict[str, int] = field(default_factory=dict)


def _write_chunks(features: pa.Table, chunk_users: int, path: Path, *, model: LoadedModel, as_of: dt.date,
                  target_period: str, threads: int, done: Callable[[int], None]) -> _Written:
    """Predict and write ``chunk_users`` rows of ``features`` at a time (a slice: no copy until pandas).

    Each chunk is written on a thread while the next one is predicted (Parquet's encoding and zstd
    release the GIL); chunks are written one at a time, in order.
    """
    written = _Written()
    lineage = json.dumps(scores_lineage(model, as_of=as_of, target_period=target_period), sort_keys=True)
    writer = pq.ParquetWriter(path, SCORE_SCHEMA.with_metadata({LINEAGE_KEY: lineage}), compression="zstd")
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendlab-write") as pool:
            pending: Future[None] | None = None
            for start in range(0, features.num_rows, chunk_users):
                chunk = features.slice(start, chunk_users)
                pred = score_frame(model, chunk.to_pandas(), threads=threads, as_of=as_of)
                ids = pa.array(pred["user_id"].astype(str).to_numpy(), pa.string())
                if not ids.equals(chunk.column("user_id").cast(pa.string()).combine_chunks()):
                    raise SpendlabError("the model returned rows for other users than it was given")
                table = _score_table(pred, ids, as_of=as_of, target_period=target_period, model=model)
                if pending is not None:
                    pending.result()  # the previous chunk is written (or its error raised) first
                pending = submit(pool, writer.write_table, table)
                _count(written, pred)
                done(chunk.num_rows)
            if pending is not None:
                pending.result()
    finally:
        writer.close()
    return written


def _count(written: _Written, pred: pd.DataFrame) -> None:
    """Add one chunk's rows, total and counts by basis and segment to ``written``."""
    written.rows += len(pred)
    written.total += float(pred["prediction"].sum())
    for b, c in pred["basis"].value_counts().items():
        written.by_basis[str(b)] = written.by_basis.get(str(b), 0) + int(c)
    for b, c in pred["segment"].value_counts().items():
        written.by_segment[str(b)] = written.by_segment.get(str(b), 0) + int(c)


def _score_table(pred: pd.DataFrame, ids: pa.Array, *, as_of: dt.date, target_period: str,
                 model: LoadedModel) -> pa.Table:
    """One chunk's rows of the output (:data:`SCORE_SCHEMA`): the model's rows, keyed by ``ids`` (its ``user_id``)."""
    n = len(pred)

    def constant(value: Any, kind: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, kind), n)

    def floats(col: str) -> pa.Array:
        return pa.array(pred[col].to_numpy(np.float64))

    return pa.table(
        {
            "user_id": ids,
            "as_of": constant(as_of, pa.date32()),
            "target_period": constant(target_period, pa.string()),
            **{c: floats(c) for c in ("prediction", "p_spend", "median", "lower", "upper")},
            "segment": pa.array(pred["segment"].astype(str).to_numpy(), pa.string()),
            "basis": pa.array(pred["basis"].astype(str).to_numpy(), pa.string()),
            "model_uri": constant(model.uri, pa.string()),
            "model_version": constant(model.version, pa.string()),
        },
        schema=SCORE_SCHEMA,
    ).replace_schema_metadata(None)


def execute_score(plan: ScorePlan, *, tracking_uri: str | None = None, progress: bool = True) -> ScoreResult:
    """Run a scoring plan: load the model while the input is read, check the cutoff, score, write.

    Parameters
    ----------
    plan : ScorePlan
        From :func:`spendlab.jobs.plan.plan_score`; its input is the only data read.
    tracking_uri : str, optional
        The MLflow store the model URI is resolved in.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ScoreResult
        What was written, with warnings for a reviewer.

    Raises
    ------
    ConfigError
        The cutoff lies before the data, or far past it.
    """
    loading = load_model_async(plan.model_uri, tracking_uri=tracking_uri)  # loads while the input is read
    tx = with_users(load_transactions(plan.input, plan.format, config=plan.reader), plan.users)
    # an as-of outside the data is an error (check_cutoff); the job itself warns (result.warnings)
    return score(tx, out=plan.out, model=loading, as_of=plan.as_of, chunk_users=plan.chunk_users, progress=progress,
                 check_cutoff=bool(plan.as_of))
