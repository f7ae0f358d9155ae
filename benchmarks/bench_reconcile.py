"""Scale benchmark for ``spendlab reconcile``: 2M users x 5 delta files (10M delta rows).

Usage (from the repo root)::

    nice -n 10 .venv/bin/python benchmarks/bench_reconcile.py [--users 2000000] [--files 5] [--memory-limit 3GB]

Generates (once, seeded, under ``benchmarks/data/``) a ``missing_file`` scenario in which every user
appears in every file, so the platform's skipped last file leaves *every* user differing: the
heaviest output case (user_diffs.csv gets 4 rows per user). Then, each in its own subprocess so peak
RSS is the job's own:

* the reference: DuckDB reading the same CSVs and keeping the largest batch per user (``arg_max``),
  the floor any rebuild must pay;
* the job: ``run_reconcile`` (validation with reject records, rebuild, comparison, missing-file
  search, all outputs).

Prints wall time and peak RSS of both, the ratio job/reference, and whether the diagnosis equals the
answer key. The machine is shared and noisy: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REFERENCE = r"""
import sys, time
from spendlab.io.load import connect
con = connect(threads={threads}, memory_limit={memory_limit!r})
t = time.perf_counter()
con.execute("CREATE TABLE r AS SELECT user_id, arg_max({{'s': total_spend, 'c': count_saved_items, "
            "'l': loyalty_credits, 'b': batch_id}}, batch_id) AS v FROM read_csv({glob!r}, all_varchar=false, "
            "types={{'user_id': 'VARCHAR'}}) GROUP BY user_id")
print(con.execute("SELECT count(*) FROM r").fetchone()[0], time.perf_counter() - t)
"""
JOB = r"""
import json, time
from pathlib import Path
from spendlab.jobs.reconcile import run_reconcile
t = time.perf_counter()
s = run_reconcile({glob!r}, Path({platform!r}), Path({source!r}), Path({out!r}), memory_limit={memory_limit!r},
                  threads={threads})
print(json.dumps({{"seconds": time.perf_counter() - t, "causes": s["causes"], "unexplained": s["unexplained"],
                  "gap": s["gap"], "differing": s["users"]["differing"]}}))
"""


def child(code: str) -> tuple[str, float, float]:
    """Run ``code`` in a fresh interpreter; return stdout, wall seconds and the child's peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("note: peak RSS not above an earlier child's; reported value is a lower bound", file=sys.stderr)
    return done.stdout.strip(), wall, peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = ROOT / "data" / f"reconcile_{args.users}_{args.files}_{args.seed}"
    key_path = data / "answer_key.json"
    if not key_path.exists():
        from spendlab.jobs.datasets import generate_deltas

        t = time.perf_counter()
        generate_deltas(data, scenario="missing_file", users=args.users, files=args.files, seed=args.seed,
                        update_share=1.0, base_share=1.0)
        print(f"generated {data} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    key = json.loads(key_path.read_text())
    inputs = data / "inputs"
    glob = str(inputs / "deltas" / "*.csv")
    rows = sum(sum(1 for _ in open(p, "rb")) - 1 for p in sorted((inputs / "deltas").glob("*.csv")))

    ref_out, ref_wall, ref_rss = child(REFERENCE.format(glob=glob, memory_limit=args.memory_limit,
                                                        threads=args.threads))
    out_dir = ROOT / "out" / "reconcile"
    job_out, job_wall, job_rss = child(JOB.format(glob=glob, platform=str(inputs / "platform_summary.csv"),
                                                  source=str(inputs / "client_summary.csv"), out=str(out_dir),
                                                  memory_limit=args.memory_limit, threads=args.threads))
    job = json.loads(job_out.splitlines()[-1])
    expected = {(f["cause"], f["side"], f["file"], len(f["users"]), f["amount"]) for f in key["faults"]}
    got = {(c["cause"], c["side"], c["file"], c["users"], c["amount"]) for c in job["causes"]}
    diffs_rows = sum(1 for _ in open(out_dir / "user_diffs.csv", "rb")) - 1
    print("| users | delta rows | differing users | user_diffs rows | reference (DuckDB arg_max rebuild) | "
          "reconcile job | ratio | diagnosis = key |")
    print("|---:|---:|---:|---:|---|---|---:|---|")
    print(f"| {args.users:,} | {rows:,} | {job['differing']:,} | {diffs_rows:,} | {ref_wall:.1f} s, peak RSS "
          f"{ref_rss:,.0f} MiB | {job_wall:.1f} s, peak RSS {job_rss:,.0f} MiB | {job_wall / ref_wall:.1f}x | "
          f"{'yes' if got == expected and job['unexplained'] == 0 else 'NO'} |")
    print(f"memory_limit={args.memory_limit} threads={args.threads}; reference printed: {ref_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
