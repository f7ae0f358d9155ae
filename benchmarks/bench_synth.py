"""Scale benchmark of the synthetic generator and of validating its output (issue 2).

Each step runs in its own subprocess, timed with wall clock and measured for peak RSS
(``os.wait4``'s ``ru_maxrss``):

1. ``spendlab datasets synth --users N --months M`` (the generator, chunked by users);
2. a reference in the same run: plain pyarrow writing the same number of rows, drawn with numpy
   in the same chunk sizes, to zstd Parquet (what writing that many rows costs on this machine);
3. ``spendlab validate OUT --format generic --json`` (the Parquet path: footer check, one DuckDB
   aggregate pass, users and spend).

The generator's figure is reported as a ratio to the reference, since the machine is shared.

    nice -n 10 .venv/bin/python benchmarks/bench_synth.py --users 1000000 --write-results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REFERENCE = textwrap.dedent(
    """
    import sys
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    rows, chunk, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(0)
    writer = None
    done = 0
    while done < rows:
        k = min(chunk, rows - done)
        ids = np.char.add("u", np.char.zfill(np.sort(rng.integers(1, 10**6, k)).astype(str), 7))
        table = pa.table({
            "user_id": pa.array(ids, pa.string()),
            "ts": pa.array(rng.integers(1.67e15, 1.72e15, k), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "amount": pa.array(np.round(rng.lognormal(3.3, 0.9, k), 2), pa.float64()),
        })
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=1_000_000)
        done += k
    writer.close()
    """
)


def measure(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; return wall seconds and peak RSS (MiB) of the process tree's largest member."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {stderr.strip()[-500:]}")
    return {"seconds": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 0), "stdout": stdout}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users to generate")
    parser.add_argument("--months", type=int, default=18, help="months of history")
    parser.add_argument("--chunk-users", type=int, default=50_000, help="users per generator chunk")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_synth.parquet",
                        help="where the generated Parquet goes (git-ignored)")
    parser.add_argument("--write-results", action="store_true", help="replace this section of RESULTS.md")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    spendlab = str(bin_dir / "spendlab")

    synth = measure([spendlab, "datasets", "synth", "--users", str(args.users), "--months", str(args.months),
                     "--chunk-users", str(args.chunk_users), "--out", str(args.out), "--seed", "0"])
    rows = __import__("pyarrow.parquet").parquet.read_metadata(args.out).num_rows
    ref_out = args.out.with_name("bench_reference.parquet")
    chunk_rows = max(1, rows * args.chunk_users // args.users)
    reference = measure([sys.executable, "-c", REFERENCE, str(rows), str(chunk_rows), str(ref_out)])
    validate = measure([spendlab, "validate", str(args.out), "--format", "generic", "--json"])
    summary = json.loads(validate["stdout"])
    ref_out.unlink(missing_ok=True)

    size_mib = args.out.stat().st_size / 2**20
    ratio = synth["seconds"] / reference["seconds"]
    lines = [
        f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_synth.py --users {args.users} "
        f"--months {args.months}{' --write-results' if args.write_results else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (shared machine: compare the ratios).",
        "",
        "| step | rows | wall s | peak RSS MiB |",
        "|---|---|---|---|",
        f"| `datasets synth` {args.users:,} users x {args.months} months, chunks of {args.chunk_users:,} users "
        f"| {rows:,} | {synth['seconds']} | {synth['peak_rss_mib']:.0f} |",
        f"| reference: numpy + pyarrow writing the same rows (same chunk size) | {rows:,} | "
        f"{reference['seconds']} | {reference['peak_rss_mib']:.0f} |",
        f"| `validate --format generic --json` on the output | {summary['files'][0]['rows_in']:,} | "
        f"{validate['seconds']} | {validate['peak_rss_mib']:.0f} |",
        "",
        f"- Generator / reference time ratio: **{ratio:.1f}x** (the generator also draws rates, churn, "
        f"seasonal days and hours, and sorts by user and time). Output {size_mib:,.0f} MiB zstd Parquet, "
        f"{rows / args.users:.1f} transactions per user.",
        f"- Validation: {summary['files'][0]['accepted']:,} accepted, {summary['files'][0]['rejected']:,} rejected, "
        f"{summary['users']:,} users, total spend {summary['total_spend']:,.2f}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        write_section(text)


def write_section(text: str) -> None:
    """Make this run the current ``synth`` section of RESULTS.md (the one it replaces goes to HISTORY.md)."""
    from run_all import record

    record("synth", "### synth\n\n" + text)


if __name__ == "__main__":
    main()
