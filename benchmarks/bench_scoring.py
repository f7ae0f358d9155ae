"""Benchmark: `spendlab score` on 1M users against the bare reference, in the same run.

Reference cost = the bare DuckDB monthly aggregate over the raw Parquet
(``SELECT user_id, date_trunc('month', ts), sum(amount) ... GROUP BY ALL``) + the bare ``predict`` of
the champion's estimator on the same feature matrix (features prepared beforehand, not timed), with
the threads ``spendlab score`` gives ``predict``. Each measurement is a fresh subprocess; peak RSS
from ``os.wait4``. ``spendlab score`` runs ``--repeat`` times and the median wall time is reported
(the machine is shared). The model is the registered champion of the store under ``--workdir``
(``make run`` leaves one: the CDNOW champion, whose monthly feature set the synthetic data shares).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_scoring.py \
        --data benchmarks/data/synth_1m.parquet --workdir . --as-of 2024-06-30
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SPENDLAB = str(Path(PYTHON).with_name("spendlab"))

BARE_AGG = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2"); con.execute("SET TimeZone = 'UTC'"); con.execute("SET enable_progress_bar = false")
sql = (f"SELECT count(*), sum(s) FROM (SELECT user_id, date_trunc('month', ts) AS p, sum(amount) AS s "
       f"FROM read_parquet('{sys.argv[1]}') GROUP BY ALL)")
print(con.execute(sql).fetchone())
"""

BARE_PREDICT = """
import sys, time
import mlflow, pandas as pd
from spendlab.models.base import predict_threads
from spendlab.settings import usable_cores
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[2]}/mlruns/mlflow.db")
model = mlflow.pyfunc.load_model("models:/spendlab-next-month@champion")
inner = model.unwrap_python_model()
X = pd.read_parquet(sys.argv[1])[inner.feature_names_].astype("float64")
t0 = time.perf_counter()
with predict_threads(usable_cores()):  # the threads `spendlab score` gives predict
    pred = inner.estimator_.predict(X)
print(f"predict_seconds={time.perf_counter() - t0:.3f} rows={len(pred)}")
"""


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    last = [line for line in out.strip().splitlines() if line.strip()]
    if os.waitstatus_to_exitcode(status) != 0:
        return float("nan"), usage.ru_maxrss / 1e6, "FAILED: " + (last[-1] if last else "")
    return wall, usage.ru_maxrss / 1e6, last[-1] if last else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "benchmarks/data/synth_1m.parquet"))
    ap.add_argument("--workdir", default=str(ROOT), help="directory holding mlruns/ with the champion")
    ap.add_argument("--as-of", default="2024-06-30")
    ap.add_argument("--chunk-users", type=int, default=250_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of `spendlab score` (the median is reported)")
    args = ap.parse_args()
    data, work = str(Path(args.data).resolve()), Path(args.workdir).resolve()
    print("| measurement | wall s | peak RSS GB | output |\n|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        feats = Path(tmp) / "features.parquet"
        prep = measure([SPENDLAB, "features", data, "--format", "generic", "--freq", "month", "--as-of", args.as_of,
                        "--out", str(feats)], work)
        print(f"| (features for the bare predict, not in the reference) | {prep[0]:.1f} | {prep[1]:.2f} | |", flush=True)
        agg = measure([PYTHON, "-c", BARE_AGG, data], work)
        print(f"| bare DuckDB monthly aggregate | {agg[0]:.1f} | {agg[1]:.2f} | {agg[2][:60]} |", flush=True)
        pred = measure([PYTHON, "-c", BARE_PREDICT, str(feats), str(work)], work)
        predict_s = float(pred[2].split("predict_seconds=")[1].split()[0]) if "predict_seconds=" in pred[2] else float("nan")
        print(f"| bare predict of the champion's estimator (timed inside) | {predict_s:.1f} | {pred[1]:.2f} | {pred[2][:60]} |",
              flush=True)
        ref = agg[0] + predict_s
        out = Path(tmp) / "scores.parquet"
        runs = []
        for i in range(args.repeat):
            runs.append(measure([SPENDLAB, "score", data, "--format", "generic", "--as-of", args.as_of, "--out",
                                 str(out), "--chunk-users", str(args.chunk_users)], work))
            print(f"| `spendlab score` run {i + 1} (start-up, load, validation, features, predict, intervals, "
                  f"write) | {runs[-1][0]:.1f} | {runs[-1][1]:.2f} | {runs[-1][2][:80]} |", flush=True)
        import statistics

        import pyarrow.parquet as pq

        wall = statistics.median(r[0] for r in runs)
        users = pq.read_metadata(out).num_rows if out.exists() else float("nan")
        print(f"| `spendlab score`, median of {len(runs)} runs | {wall:.1f} | {max(r[1] for r in runs):.2f} (max) | |")
        print(f"| users per second (median run) | {users / wall:,.0f} | | |")
        print(f"| ratio to the reference (aggregate + predict = {ref:.1f} s) | {wall / ref:.2f} | | |")


if __name__ == "__main__":
    main()
