"""The test suite's wall time on this machine and its 20 slowest tests.

Runs the README's test command's pytest step (``pytest -n auto --dist loadfile``) with
``--durations=20`` and prints the result as a RESULTS.md section, with each worker's busy seconds and
when it finished (``tests.worker_log``). ``--record`` also rewrites ``tests/durations.json``, the
per-file seconds ``make test`` schedules the longest files first by (``tests/scheduling.py``).
``--from-log FILE`` formats the output of such a run that was saved earlier instead of running the
suite again.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-n", "auto", "--dist", "loadfile", "--durations=20", "-rfE", "-p", "no:cacheprovider"]


def summarise(log: str, wall_s: float | None) -> str:
    """Return the markdown of one run: its summary line, the wall time and the slowest tests."""
    summary = re.findall(r"=+ ((?:\d+ failed, )?\d+ passed.*?) in ([\d.]+)s", log)
    failed = re.findall(r"^FAILED (\S+)", log, flags=re.M)
    slow = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", log, flags=re.M)
    lines = []
    if summary:
        counts, seconds = summary[-1]
        lines.append(f"- pytest: {counts} in {float(seconds):.0f} s" + (f" ({wall_s:.0f} s wall)" if wall_s else ""))
    if not summary:
        lines.append("- pytest: no summary line found (interrupted or crashed); see its output")
    lines += [f"- failed: `{test}`" for test in failed]
    lines += ["", "| seconds | phase | test |", "|---:|---|---|"]
    lines += [f"| {float(s):.1f} | {phase} | `{test}` |" for s, phase, test in slow[:20]]
    return "\n".join(lines)


def main() -> int:
    """Run the suite (or read a saved run) and print its section."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-log", type=Path, help="format a saved pytest output instead of running the suite")
    ap.add_argument("--record", action="store_true", help="rewrite tests/durations.json from this run")
    args = ap.parse_args()
    if args.from_log is not None:
        print(summarise(args.from_log.read_text(encoding="utf-8", errors="replace"), None))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests import scheduling, worker_log

    with tempfile.TemporaryDirectory() as tmp:
        workers, junit = Path(tmp) / "workers.tsv", Path(tmp) / "junit.xml"
        t0 = time.monotonic()
        proc = subprocess.run([*PYTEST, "-p", "tests.worker_log", f"--junitxml={junit}"], cwd=ROOT,
                              capture_output=True, text=True, env={**os.environ, worker_log.ENV: str(workers)})
        print(summarise(proc.stdout, time.monotonic() - t0))
        if workers.exists():
            print("\nPer worker (busy = the sum of its tests' set-up, call and teardown seconds):\n")
            print("\n".join(f"- {line}" for line in worker_log.summary(workers.read_text().splitlines()).splitlines()))
        if args.record and junit.exists():
            scheduling.main([str(junit)])
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
