"""Benchmark: the `spendlab features` command against the bare DuckDB aggregate, in the same run.

Each measurement is a fresh subprocess (start-up included); wall time from the parent, peak RSS from
``os.wait4``'s rusage of that child. The reference is the bare per-user period aggregate
``SELECT user_id, date_trunc(F, ts), sum(amount) FROM read_parquet(...) GROUP BY ALL`` with the same
2 DuckDB threads, measured twice per frequency (with ``ts`` as stored, TIMESTAMPTZ, and cast to plain
TIMESTAMP); the faster of the two is the reference, so ratios are conservative.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_features.py \
        --data benchmarks/data/synth_1m.parquet --as-of 2024-06-30

The data comes from ``spendlab datasets synth --users 1000000 --months 18 --out ...`` (about 30M rows).
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

BARE = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
ts = "ts" if sys.argv[3] == "tz" else "CAST(ts AS TIMESTAMP)"
sql = (f"SELECT count(*), sum(s) FROM (SELECT user_id, date_trunc('{sys.argv[2]}', {ts}) AS p, sum(amount) AS s "
       f"FROM read_parquet('{sys.argv[1]}') GROUP BY ALL)")
print(con.execute(sql).fetchone())
"""

PANEL = """
import datetime as dt, sys
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.features import build_panel_table
tx = load_transactions(sys.argv[1], "generic")
con = connect(threads=2, memory_limit=sys.argv[4])
con.execute("SET enable_progress_bar = false")
tx.register(con)
name = build_panel_table(con, freq=sys.argv[2], as_of=dt.date.fromisoformat(sys.argv[3]), name="panel")
print(con.execute("SELECT count(*), sum(spend) FROM panel").fetchone())
"""


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


def row(name: str, wall: float, rss: float, note: str) -> None:
    """Print one Markdown table row at once (a long run keeps what it measured)."""
    rss_s = "" if rss != rss else f"{rss:.2f}"
    print(f"| {name} | {wall:.2f} | {rss_s} | {note[:90]} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="benchmarks/data/synth_1m.parquet")
    ap.add_argument("--as-of", default="2024-06-30", help="cutoff for both frequencies (a Sunday month end)")
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit of the features command")
    ap.add_argument("--panel-memory-limit", default="4GB", help="DuckDB memory limit of the dense panel run")
    ap.add_argument("--freqs", default="month,week")
    ap.add_argument("--skip-panel", action="store_true")
    args = ap.parse_args()
    print("| measurement | wall s (or ratio) | peak RSS GB | output |")
    print("|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for freq in args.freqs.split(","):
            walls = []
            for ts in ("tz", "plain"):
                bare = measure([PYTHON, "-c", BARE, args.data, freq, ts])
                walls.append(bare[0])
                row(f"bare aggregate ({freq}, ts {ts})", *bare)
            ref = min(walls)
            out = Path(tmp) / f"features_{freq}.parquet"
            feat = measure([SPENDLAB, "features", args.data, "--format", "generic", "--freq", freq,
                            "--as-of", args.as_of, "--out", str(out), "--memory-limit", args.memory_limit])
            row(f"`spendlab features --freq {freq}`", *feat)
            row(f"  ratio to the faster bare {freq} aggregate", feat[0] / ref, float("nan"), "")
            row(f"  ratio to the bare {freq} aggregate on ts as stored", feat[0] / walls[0], float("nan"), "")
            if not args.skip_panel:
                panel = measure([PYTHON, "-c", PANEL, args.data, freq, args.as_of, args.panel_memory_limit])
                row(f"dense panel table in DuckDB ({freq}, load included)", *panel)
                row(f"  ratio to the faster bare {freq} aggregate", panel[0] / ref, float("nan"), "")


if __name__ == "__main__":
    main()
