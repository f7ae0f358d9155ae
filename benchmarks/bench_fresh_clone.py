"""The README's two commands on a fresh clone: ``make run`` and ``make test``, wall time, install included.

Clones this checkout's ``HEAD`` (``git clone``, so only committed files: what CI and a newcomer get) into
a new directory and times ``make TARGET`` there with the uv cache as it is (warm after any earlier
install on this machine). Prints a Markdown table: the total, and for ``make run`` each pipeline stage's
own time as the pipeline reports it; for ``make test`` pytest's summary line.

Run: ``.venv/bin/python benchmarks/bench_fresh_clone.py --target run [--keep DIR]`` (``--keep``: clone into
DIR and leave it, e.g. as ``bench_scoring.py --workdir`` for the champion ``make run`` registered).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"run": 120.0, "test": 600.0}


def stages(log: str) -> list[tuple[str, float]]:
    """``(stage, seconds)`` of each ``done [i/n] stage  12.3s`` line of the pipeline's output."""
    return [(name, float(s)) for name, s in re.findall(r"done \[\d+/\d+\]\s+(\S+)\s+([\d.]+)s", log)]


def measure(target: str, where: Path) -> tuple[float, int, str]:
    """Clone into ``where`` and time ``make target`` there; return wall seconds, exit code and output."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    t0 = time.monotonic()
    proc = subprocess.run(["make", target], cwd=where, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    return wall, proc.returncode, f"commit {rev}\n" + proc.stdout + proc.stderr


def report(target: str, wall: float, code: int, log: str) -> str:
    """Return the Markdown of one measurement."""
    lines = [f"`make {target}` in a fresh clone of {log.splitlines()[0]}, uv cache warm: **{wall:.1f} s** wall "
             f"(goal {GOALS[target]:.0f} s), exit {code}.", "", "| step | seconds |", "|---|---:|"]
    if target == "run":
        steps = stages(log)
        lines += [f"| {name} | {s:.1f} |" for name, s in steps]
        lines.append(f"| install, start-up and the rest | {wall - sum(s for _, s in steps):.1f} |")
    else:
        found = re.findall(r"=+ (\d+ passed.*?) in ([\d.]+)s", log)
        if found:
            lines.append(f"| pytest ({found[-1][0]}) | {float(found[-1][1]):.1f} |")
            lines.append(f"| install, ruff, mkdocs, browser set-up | {wall - float(found[-1][1]):.1f} |")
    if code:
        lines += ["", "```", *log.splitlines()[-15:], "```"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=sorted(GOALS), default="run")
    ap.add_argument("--keep", type=Path, default=None, help="clone into this (new) directory and keep it")
    args = ap.parse_args()
    if args.keep is not None and args.keep.exists():
        print(f"--keep {args.keep}: already exists; give a new directory", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="spendlab-fresh-"))
    where = args.keep or tmp / "clone"
    try:
        wall, code, log = measure(args.target, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(args.target, wall, code, log))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
