"""Run every benchmark, one at a time, and rewrite its section of benchmarks/RESULTS.md.

``make bench`` calls this. RESULTS.md holds the current figure of each benchmark: one section per
benchmark between ``<!-- run_all:begin -->`` and ``<!-- run_all:end -->``, each its standard output
(a markdown table or summary) under the exact command that produced it, the time and the machine's
load average when it started. A new run of a benchmark replaces its section, and the section it
replaces is appended to benchmarks/HISTORY.md, so no earlier figure is lost. Speed figures taken
under load are not results (benchmarks compare against a reference measured in the same run, and a
loaded machine slows the two differently): when the 1-minute load average is above ``--max-load``
the run stops before measuring anything, unless ``--allow-load`` is given, and then every section
says so.

Benchmarks that can write their own results (``--write-results``) go through :func:`record`, so
they land in the same section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HISTORY = ROOT / "benchmarks" / "HISTORY.md"
REPLACED = "## Runs replaced by later ones"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
SECTION = ("<!-- bench:", "-->")  # opens each benchmark's section inside the block
PY = sys.executable

#: name -> the command's arguments (after ``python``), run from the project root.
BENCHMARKS: dict[str, list[str]] = {
    # issue 19: 1M users / ~30M rows, int64 ids, 24 months, time-ordered; 100k and 3M show the growth
    "features_100k": ["benchmarks/bench_features.py", "--users", "100000", "--repeats", "3"],
    "features_1m": ["benchmarks/bench_features.py", "--users", "1000000", "--repeats", "3"],
    "features_3m": ["benchmarks/bench_features.py", "--users", "3000000", "--repeats", "3"],
    # the champion of the store under --workdir (default: this checkout, after `make run`)
    "scoring_1m": ["benchmarks/bench_scoring.py", "--data", "benchmarks/data/synth_1m_int_24m.parquet",
                   "--as-of", "2024-12-31", "--repeat", "3"],
    # describe's own default memory limit, as a user runs it
    "describe_1m": ["benchmarks/bench_describe.py", "--users", "1000000", "--repeats", "3"],
    "reconcile": ["benchmarks/bench_reconcile.py"],
    "synth": ["benchmarks/bench_synth.py"],
    "accuracy_cdnow": ["benchmarks/accuracy_cdnow.py"],
    # issue 28: every registry model and --models lightgbm (cold and cache-warm), with the lifetimes and
    # mlforecast anchors on the same test origins
    "experiment_cdnow": ["benchmarks/bench_experiment.py"],
    "accuracy_synth": ["benchmarks/accuracy_synth.py"],
    "spark": ["benchmarks/bench_spark.py"],
}


def _section(name: str, argv: list[str], load: float, allowed_load: bool) -> str:
    cmd = " ".join(shlex.quote(a) for a in [".venv/bin/python", *argv])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    proc = subprocess.run([PY, *argv], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    head = (f"### {name}\n\nCommand: `{cmd}`  \nStarted {started}; load average {load:.2f} at start; "
            f"{wall:.0f} s in all; exit {proc.returncode}.\n")
    if allowed_load:
        head += "\n**Measured under load: not a result.** Remeasure on an idle machine.\n"
    body = proc.stdout.strip() or "(no output)"
    if proc.returncode != 0:
        body += "\n\n```\n" + "\n".join(proc.stderr.strip().splitlines()[-15:]) + "\n```"
    return head + "\n" + body + "\n"


def _sections_of(block: str) -> dict[str, str]:
    """The sections of a generated block, by benchmark name, in order.

    A section starts at its ``<!-- bench: name -->`` marker (or, in a block written before the markers,
    at a ``### name`` line naming a benchmark); a benchmark's own output may hold ``###`` headings.
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    legacy = SECTION[0] not in block
    for line in block.splitlines():
        marker = line.startswith(SECTION[0]) and line.endswith(SECTION[1])
        name = line[len(SECTION[0]):-len(SECTION[1])].strip() if marker else line[4:].strip()
        if marker or (legacy and line.startswith("### ") and name in BENCHMARKS and name not in sections):
            current = sections.setdefault(name, [])
            if marker:
                continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip("\n") + "\n" for name, lines in sections.items()}


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _keep_history(replaced: dict[str, str]) -> None:
    """Append sections that a new run replaced to HISTORY.md, newest last, each marked with the date."""
    if not replaced:
        return
    text = HISTORY.read_text() if HISTORY.exists() else "# Benchmark history\n"
    if REPLACED not in text:
        text = text.rstrip("\n") + f"\n\n{REPLACED}\n\nWritten by `benchmarks/run_all.py`: each section as it stood before a newer run replaced it.\n"
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name, section in replaced.items():
        body = section.split("\n", 1)[1] if section.startswith(f"### {name}\n") else section
        text = text.rstrip("\n") + f"\n\n### {name} (replaced {when})\n{body.rstrip()}\n"
    _write(HISTORY, text)


def record(name: str, section: str) -> None:
    """Make ``section`` (``### name``, the command, then the figures) the current one of benchmark ``name``.

    For benchmarks run outside ``run_all`` that write their own results; the section replaced goes to
    HISTORY.md like any other.
    """
    _rewrite({name: section.strip("\n") + "\n"})


def _rewrite(sections: dict[str, str]) -> None:
    """Replace the named sections of the generated block (others, from earlier runs, are kept)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    old: dict[str, str] = {}
    if BEGIN in text and END in text:
        old = _sections_of(text.split(BEGIN, 1)[1].split(END, 1)[0])
    _keep_history({n: old[n] for n in sections if n in old and old[n].strip() != sections[n].strip()})
    merged = {**old, **sections}
    ordered = [n for n in BENCHMARKS if n in merged] + [n for n in merged if n not in BENCHMARKS]
    block = (f"{BEGIN}\n## Current figures ({platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()})\n\nEach section is the newest run of that benchmark; "
             "`run_all.py --only NAME` replaces just the sections it runs and moves the replaced ones "
             "to HISTORY.md.\n\n"
             + "\n".join(f"{SECTION[0]} {n} {SECTION[1]}\n{merged[n]}" for n in ordered) + f"{END}")
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        text = pre + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    _write(RESULTS, text)


def _settled_load(max_load: float, settle: float) -> float:
    """The 1-minute load average, after waiting up to ``settle`` seconds for it to fall to ``max_load``.

    The previous benchmark's own work is still in the average when it ends (a 2-core run leaves ~2);
    it decays with a one-minute time constant, so a short wait tells that apart from other jobs.
    """
    deadline = time.monotonic() + settle
    load = os.getloadavg()[0]
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated benchmark names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and their commands")
    ap.add_argument("--max-load", type=float, default=1.0, help="refuse to start above this load average")
    ap.add_argument("--allow-load", action="store_true", help="measure anyway, marking every figure as loaded")
    ap.add_argument("--settle", type=float, default=240.0,
                    help="seconds to wait for the load average to fall below --max-load before each benchmark")
    ap.add_argument("--workdir", default=None,
                    help="scoring_1m: directory whose mlruns/ holds the champion (default: this checkout)")
    args = ap.parse_args(argv)
    if args.list:
        for name, cmd in BENCHMARKS.items():
            print(f"{name}: python {' '.join(cmd)}")
        return 0
    names = list(BENCHMARKS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"run_all: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    sections: dict[str, str] = {}
    for name in names:
        load = _settled_load(args.max_load, args.settle)
        if load > args.max_load and not args.allow_load:
            print(f"run_all: load average {load:.2f} > {args.max_load} after {args.settle:.0f} s: stop other "
                  "jobs first (or --allow-load to measure anyway, marked as not a result)", file=sys.stderr)
            return 3
        print(f"run_all: {name} ...", file=sys.stderr, flush=True)
        argv_ = BENCHMARKS[name] + (["--workdir", args.workdir] if name == "scoring_1m" and args.workdir else [])
        sections[name] = _section(name, argv_, load, load > args.max_load)
        _rewrite(sections)  # after each benchmark, so a later stop loses nothing measured
    print(f"run_all: wrote {len(sections)} section(s) to {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
