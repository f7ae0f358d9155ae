"""Benchmark (issue 19): ``spendlab features`` against the bare DuckDB aggregate, alternately, in one run.

Data in the shape of the issue: int64 user ids, 24 months, rows in time order (``--users`` 100k, 1M or
3M; generated once with ``spendlab datasets synth`` and rewritten by DuckDB, cached under
``benchmarks/data/``). Per frequency, the reference and spendlab run alternately ``--repeats`` times,
each a fresh subprocess (start-up included); wall time from the parent, peak RSS from ``os.wait4``'s
rusage of that child. Reported: every run, the medians, their ratio, the largest peak RSS.

References (2 DuckDB threads, as the features command):

- month: ``SELECT CAST(user_id AS VARCHAR), date_trunc('month', ts), sum(amount) ... GROUP BY ALL``
  over the Parquet file (the bare per-(user, month) aggregate with string ids, as the reader used to
  give them); the int64-id aggregate is measured once beside it, for information.
- week: the same with ``date_trunc('week', ts)``.

spendlab runs either as the command (``--runner cli``: ``spendlab features ... --memory-limit 1GB``) or
through the Python API the way the command does it but with native int64 ids (``--runner api``:
``Transactions.register(con, native_ids=True)``; what the command does once it passes
``native_ids=True``).

Usage (idle machine; the 1M/3M runs are the acceptance figures)::

    nice -n 10 .venv/bin/python benchmarks/bench_features.py --users 1000000
    nice -n 10 .venv/bin/python benchmarks/bench_features.py --users 3000000 --freqs month
    .venv/bin/python benchmarks/bench_features.py --users 100000 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spendlab.settings import DEFAULT_MEMORY_LIMIT

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SPENDLAB = str(Path(PYTHON).with_name("spendlab"))
SIZES = {100_000: "100k", 1_000_000: "1m", 3_000_000: "3m"}
#: A Sunday at a month end: a complete month and a complete ISO week for both frequencies.
AS_OF = {"month": "2024-12-31", "week": "2024-12-29"}

BARE = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
user = "CAST(user_id AS VARCHAR)" if sys.argv[3] == "string" else "user_id"
sql = (f"SELECT count(*), sum(s) FROM (SELECT {user} AS u, date_trunc('{sys.argv[2]}', ts) AS p, "
       f"sum(amount) AS s FROM read_parquet('{sys.argv[1]}') GROUP BY ALL)")
print(con.execute(sql).fetchone())
"""

API = """
import datetime as dt, sys
from spendlab.features import build_features_arrow
from spendlab.jobs.features import load_feature_config
from spendlab.features.metadata import feature_metadata
from spendlab.jobs.features import write_features
from spendlab.io import load_transactions
from spendlab.io.load import connect
data, freq, as_of, out, limit = sys.argv[1:6]
as_of = dt.date.fromisoformat(as_of)
tx = load_transactions(data, "generic")
con = connect(threads=2, memory_limit=limit)
tx.register(con, native_ids=True)
config = load_feature_config(None)
table = build_features_arrow(con, freq=freq, as_of=as_of, config=config)
write_features(table, out, feature_metadata(config, freq=freq, as_of=as_of, input=data))
print(table.num_rows, "users", table.num_columns - 1, "features")
"""


def ensure_data(users: int) -> Path:
    """The int64-id, time-ordered, 24-month Parquet file of ``users`` users (generated when missing)."""
    data = ROOT / "benchmarks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    out = data / f"synth_{SIZES[users]}_int_24m.parquet"
    if out.exists():
        return out
    raw = data / f"synth_{SIZES[users]}_24m.parquet"
    if not raw.exists():
        subprocess.run([SPENDLAB, "datasets", "synth", "--users", str(users), "--months", "24",
                        "--start", "2023-01-01", "--out", str(raw)], check=True, cwd=ROOT)
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '3GB'")
    con.execute("SET preserve_insertion_order = false")
    tmp = out.with_suffix(".tmp.parquet")
    con.execute(f"COPY (SELECT CAST(substr(user_id, 2) AS BIGINT) AS user_id, ts, amount FROM '{raw}' ORDER BY ts) "
                f"TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)")
    tmp.replace(out)
    return out


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS in GB, last output line); wall is NaN on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    last = [line for line in out.strip().splitlines() if line.strip()]
    if code != 0:
        return float("nan"), usage.ru_maxrss / 1e6, f"FAILED ({code}): {last[-1] if last else ''}"
    return wall, usage.ru_maxrss / 1e6, " ".join(last[-2:])


def row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def spendlab_cmd(runner: str, data: Path, freq: str, out: Path, memory_limit: str) -> list[str]:
    if runner == "api":
        return [PYTHON, "-c", API, str(data), freq, AS_OF[freq], str(out), memory_limit]
    return [SPENDLAB, "features", str(data), "--format", "generic", "--freq", freq, "--as-of", AS_OF[freq],
            "--out", str(out), "--memory-limit", memory_limit]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, choices=sorted(SIZES), default=1_000_000)
    ap.add_argument("--data", type=Path, help="use this Parquet file instead of the generated one")
    ap.add_argument("--freqs", default="month,week")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runner", choices=("cli", "api"), default="cli")
    ap.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT,
                    help="DuckDB memory limit of the features run (default: the CLI's own)")
    args = ap.parse_args(argv)
    data = args.data or ensure_data(args.users)
    print(f"data: {data} ({data.stat().st_size / 1e6:.0f} MB); runner: {args.runner}; repeats: {args.repeats}\n")
    row("measurement", "runs (s)", "median s", "peak RSS GB", "output")
    row("---", "---", "---", "---", "---")
    with tempfile.TemporaryDirectory() as tmp:
        for freq in args.freqs.split(","):
            bare_int = measure([PYTHON, "-c", BARE, str(data), freq, "int"])
            row(f"bare {freq} aggregate, int64 ids (once)", f"{bare_int[0]:.2f}", f"{bare_int[0]:.2f}",
                f"{bare_int[1]:.2f}", bare_int[2][:60])
            ref, feat = [], []
            out = Path(tmp) / f"features_{freq}.parquet"
            for _ in range(args.repeats):  # alternate, so drifting load hits both alike
                ref.append(measure([PYTHON, "-c", BARE, str(data), freq, "string"]))
                feat.append(measure(spendlab_cmd(args.runner, data, freq, out, args.memory_limit)))
            for name, runs in ((f"bare {freq} aggregate, string ids", ref),
                               (f"`spendlab features --freq {freq}` ({args.runner})", feat)):
                walls = [r[0] for r in runs]
                row(name, ", ".join(f"{w:.2f}" for w in walls), f"{statistics.median(walls):.2f}",
                    f"{max(r[1] for r in runs):.2f}", runs[-1][2][:60])
            ratio = statistics.median(r[0] for r in feat) / statistics.median(r[0] for r in ref)
            row(f"ratio features / bare string-id {freq} aggregate", "", f"{ratio:.2f}x", "", "")


if __name__ == "__main__":
    main()
