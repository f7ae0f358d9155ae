"""Benchmark: features and batch scoring on Spark local[2] beside DuckDB, same data, same run.

Spark on one 2-core machine is not expected to win (JVM, shuffles to local disk, Python UDF workers);
the point of the Spark engine is that the same results come out on a cluster. What this records:
wall time and users/s of each engine for the same work, the Spark/DuckDB ratio, and the largest
difference between their outputs (which the tests require to be within 1e-9 for features, 1e-6 for
scores).

Each engine does what its CLI does: DuckDB validates and loads through ``load_transactions`` then
writes one Parquet file; Spark validates through the transpiled reader expression then writes a
Parquet folder. Spark's session start-up (JVM) is timed apart. Scoring uses a ridge model on the
real features, registered as ``@champion`` in a temporary MLflow store (the test model
``tests/spark/spend_model.py``, logged from code), scored by :func:`spendlab.jobs.score.score` and by
:func:`spendlab.spark.spark_score`.

Usage::

    .venv/bin/spendlab datasets synth --users 200000 --months 18 --out benchmarks/data/synth_200k.parquet --seed 1
    nice -n 10 .venv/bin/python benchmarks/bench_spark.py --data benchmarks/data/synth_200k.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b))) if len(a) else 0.0


def duckdb_features(data: str, freq: str, as_of: dt.date, out: Path) -> tuple[float, int]:
    from spendlab.features import FeatureConfig, build_features_arrow
    from spendlab.features.metadata import feature_metadata
    from spendlab.io import load_transactions
    from spendlab.io.load import connect
    from spendlab.jobs.features import write_features

    t0 = time.perf_counter()
    tx = load_transactions(data, "generic")
    con = connect(threads=2)
    tx.register(con)
    table = build_features_arrow(con, freq=freq, as_of=as_of, config=FeatureConfig())
    write_features(table, out, feature_metadata(FeatureConfig(), freq=freq, as_of=as_of))
    return time.perf_counter() - t0, table.num_rows


def spark_features_job(spark, data: str, freq: str, as_of: dt.date, out: Path) -> tuple[float, int]:
    from spendlab.config import ReaderConfig
    from spendlab.features import FeatureConfig
    from spendlab.spark.jobs import features_job

    t0 = time.perf_counter()
    job = features_job(spark, data, out, freq=freq, as_of=as_of, config=FeatureConfig(), reader=ReaderConfig())
    return time.perf_counter() - t0, job.rows_out


def register_model(data: str, train_as_of: dt.date, root: Path) -> tuple[str, str]:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.spark.spend_model import register_ridge

    uri = f"sqlite:///{root}/mlflow.db"
    model = register_ridge(data, train_as_of=train_as_of, calibrate_as_of=train_as_of, tracking_uri=uri,
                           name="bench-spark")
    return uri, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="benchmarks/data/synth_200k.parquet")
    ap.add_argument("--as-of", default="2024-06-30", help="feature and scoring cutoff")
    ap.add_argument("--train-as-of", default="2023-12-31", help="cutoff of the benchmark model's training set")
    ap.add_argument("--freqs", default="month,week")
    ap.add_argument("--skip-score", action="store_true")
    args = ap.parse_args()
    as_of = dt.date.fromisoformat(args.as_of)
    rows: list[tuple[str, str, float, int]] = []
    notes: list[str] = []
    from spendlab.spark import SparkConfig, session

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        spark = session("spendlab-bench", config=SparkConfig(master="local[2]", shuffle_partitions=4))
        spark.sparkContext.setLogLevel("ERROR")
        rows.append(("Spark session start (JVM)", "spark", time.perf_counter() - t0, 0))
        for freq in args.freqs.split(","):
            d_wall, d_users = duckdb_features(args.data, freq, as_of, tmp / f"duck_{freq}.parquet")
            s_wall, s_users = spark_features_job(spark, args.data, freq, as_of, tmp / f"spark_{freq}")
            print(f"features {freq}: duckdb {d_wall:.1f} s, spark {s_wall:.1f} s", file=sys.stderr, flush=True)
            rows += [(f"features --freq {freq}", "duckdb (2 threads)", d_wall, d_users),
                     (f"features --freq {freq}", "spark local[2]", s_wall, s_users)]
            a = pq.read_table(tmp / f"duck_{freq}.parquet").to_pandas()
            b = pq.read_table(tmp / f"spark_{freq}").to_pandas()
            assert a["user_id"].tolist() == b["user_id"].tolist()
            diff = _max_diff(a.iloc[:, 1:].to_numpy(np.float64), b.iloc[:, 1:].to_numpy(np.float64))
            notes.append(f"features {freq}: Spark/DuckDB wall ratio {s_wall / d_wall:.1f}x; "
                         f"{d_users:,} users each; max |difference| over {a.shape[1] - 1} columns {diff:.3g}")
        if not args.skip_score:
            from spendlab.io import load_transactions
            from spendlab.jobs.score import score
            from spendlab.spark import spark_score
            from spendlab.tracking.scorer import load_model

            tracking, uri = register_model(args.data, dt.date.fromisoformat(args.train_as_of), tmp)
            t0 = time.perf_counter()
            res = score(load_transactions(args.data, "generic"), out=tmp / "local_scores.parquet",
                        model=load_model(uri, tracking_uri=tracking), as_of=as_of, progress=False)
            d_wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = spark_score(spark, args.data, model_uri=uri, out=tmp / "spark_scores", as_of=as_of,
                              tracking_uri=tracking)
            s_wall = time.perf_counter() - t0
            rows += [("score (month model)", "duckdb + pyfunc", d_wall, res.rows_out),
                     ("score (month model)", "spark local[2] + spark_udf", s_wall, got.count())]
            a = pq.read_table(tmp / "local_scores.parquet").to_pandas().sort_values("user_id")
            b = pq.read_table(tmp / "spark_scores").to_pandas()
            assert a["user_id"].tolist() == b["user_id"].tolist()
            cols = ["prediction", "lower", "upper"]
            diff = _max_diff(a[cols].to_numpy(), b[cols].to_numpy())
            notes.append(f"score: Spark/DuckDB wall ratio {s_wall / d_wall:.1f}x; max |difference| {diff:.3g}")
        spark.stop()
    import os

    print(f"data: {args.data}; as of {as_of}; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}; "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print("| step | engine | wall s | users | users/s |")
    print("|---|---|---|---|---|")
    for step, engine, wall, users in rows:
        rate = f"{users / wall:,.0f}" if users else ""
        print(f"| {step} | {engine} | {wall:.1f} | {users:,} | {rate} |")
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
