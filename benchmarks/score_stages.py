"""Benchmark: where the time of one `spendlab score` run goes, stage by stage (CPU s of every thread, and wall).

The stages of :func:`spendlab.jobs.score.score`, run one after the other in one process (the job
itself overlaps the model load with the read of the input): start-up and imports, the model load
(registry look-up, verification, unpickling), load + validation of the input, the input's content
hash, each SQL statement of the feature build, the Arrow to pandas conversion, ``predict`` of each
member of the champion, the whole pyfunc (schema check, members, segments, intervals, cold start),
the drift profile and the write. CPU time is the process's (every thread: DuckDB's and LightGBM's
too), so on a loaded machine it is the figure to compare; wall time shows the waits.

Usage::

    nice -n 10 .venv/bin/python benchmarks/score_stages.py benchmarks/data/synth_1m_int_24m.parquet \
        --as-of 2024-12-31 --workdir /tmp/mrun
"""

from __future__ import annotations

import time

_START = (time.process_time(), time.perf_counter())  # process_time counts from the process's start

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


class Clock:
    """Print the CPU and wall seconds since the last mark, one markdown row per stage."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        self.rows: list[tuple[str, float, float]] = []

    def mark(self, stage: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        self.rows.append((stage, cpu - self.cpu, wall - self.wall))
        print(f"| {stage} | {cpu - self.cpu:.2f} | {wall - self.wall:.2f} |", flush=True)
        self.cpu, self.wall = cpu, wall


class TimedConnection:
    """A DuckDB connection whose ``execute`` marks a stage per statement (the feature build's SQL)."""

    def __init__(self, con: Any, clock: Clock) -> None:
        self._con, self._clock = con, clock

    def execute(self, sql: str, *args: Any) -> Any:
        out = self._con.execute(sql, *args)
        words = " ".join(sql.split())
        if not words.startswith(("DROP", "CREATE OR REPLACE TEMP VIEW")):
            self._clock.mark("features: SQL " + words[:70].replace("|", "\\|"))
        return out

    def sql(self, query: str, *args: Any) -> Any:
        """A relation whose ``to_arrow_table`` marks a stage (the per-user stats and their sort by text id)."""
        return TimedRelation(self._con.sql(query, *args), self._clock, "features: SQL " + " ".join(query.split())[:70])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class TimedRelation:
    """A DuckDB relation whose ``to_arrow_table`` marks a stage (it runs the query)."""

    def __init__(self, rel: Any, clock: Clock, stage: str) -> None:
        self._rel, self._clock, self._stage = rel, clock, stage

    def to_arrow_table(self) -> Any:
        out = self._rel.to_arrow_table()
        self._clock.mark(self._stage.replace("|", "\\|"))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rel, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--workdir", default=".", help="directory holding mlruns/ with the champion")
    ap.add_argument("--model", default="models:/spendlab-next-month@champion")
    ap.add_argument("--chunk-users", type=int, default=250_000)
    args = ap.parse_args()
    data, as_of = str(Path(args.data).resolve()), dt.date.fromisoformat(args.as_of)
    os.chdir(args.workdir)
    print("| stage | CPU s | wall s |\n|---|---|---|")
    print(f"| start-up (interpreter) | {_START[0]:.2f} | |", flush=True)
    clock = Clock()
    import pyarrow.parquet as pq

    from spendlab.features import build_features_arrow
    from spendlab.io.load import connect, load_transactions
    from spendlab.jobs.score import _score_table, _Written, score_drift
    from spendlab.tracking.scorer import load_model, score_frame, scoring_columns
    clock.mark("imports (spendlab, DuckDB, pandas, pyarrow, MLflow)")
    model = load_model(args.model)
    clock.mark("model load (registry look-up, verification, unpickling)")
    if args.model.startswith("models:/"):
        from spendlab.tracking.scorer import _registered_version

        _registered_version(args.model)
        clock.mark("of which: the registry read of the version's tags (lineage), timed again alone")
    tx = load_transactions(data, "generic")
    clock.mark("load + validation (one pass: rows and rejects per file)")
    tx.content_hash()
    clock.mark("content hash of the input (the job runs it on a thread)")
    con = connect()
    tx.register(con, native_ids=True)
    features = build_features_arrow(TimedConnection(con, clock), freq=model.freq, as_of=as_of,
                                    config=model.feature_config, horizon=model.horizon,
                                    columns=scoring_columns(model))
    con.close()
    clock.mark(f"features: array arithmetic ({features.num_columns - 1} columns, {features.num_rows:,} users)")
    frames = [features.slice(s, args.chunk_users).to_pandas() for s in range(0, features.num_rows, args.chunk_users)]
    clock.mark("Arrow -> pandas (every chunk)")
    _members(model, frames, as_of, clock)
    preds = [score_frame(model, f, threads=os.cpu_count(), as_of=as_of) for f in frames]
    clock.mark("whole pyfunc predict (schema check, members, segments, intervals, cold start)")
    written = _Written(rows=features.num_rows)
    for p in preds:
        for seg, n in p["segment"].value_counts().items():
            written.by_segment[str(seg)] = written.by_segment.get(str(seg), 0) + int(n)
    score_drift(model.reference, features, written, model.feature_names)
    clock.mark("drift against the reference profile (PSI, segment shares)")
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as tmp:
        tables = [_score_table(p, pa.array(p["user_id"].astype(str).to_numpy(), pa.string()), as_of=as_of,
                               target_period="-", model=model) for p in preds]
        pq.write_table(pa.concat_tables(tables), Path(tmp) / "scores.parquet", compression="zstd")
    clock.mark("write the scores (Arrow table, zstd Parquet)")
    print(f"| **total** | {sum(r[1] for r in clock.rows) + _START[0]:.2f} | {sum(r[2] for r in clock.rows):.2f} |")


def _members(model: Any, frames: list[Any], as_of: dt.date, clock: Clock) -> None:
    """Time ``predict`` of each member of a combination champion (or of the single estimator)."""
    from spendlab.features.config import at_origin
    from spendlab.models.base import predict_threads

    inner = model.pyfunc.unwrap_python_model()
    members = getattr(inner.estimator_, "estimators_", None) or {"estimator": inner.estimator_}
    for name, est in dict(members).items():
        with predict_threads(os.cpu_count() or 1):
            for f in frames:
                est.predict(at_origin(f[inner.feature_names_].astype("float64"), as_of.isoformat()))
        clock.mark(f"predict of member {name} alone")


if __name__ == "__main__":
    main()
