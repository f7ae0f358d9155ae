"""How busy each pytest-xdist worker was: a plugin that logs every test phase and a summary of the log.

``SPENDLAB_WORKER_LOG=w.tsv pytest -n auto --dist loadfile -p tests.worker_log`` appends one line per
set-up, call and teardown: the worker, the controller's clock when the report arrived, the phase's
seconds and the test. ``python -m tests.worker_log w.tsv`` prints each worker's busy seconds, when it
finished and the file it finished with; the gap between the workers' finishes is the time one worker
sat idle at the end of the run.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ENV = "SPENDLAB_WORKER_LOG"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Append one line per phase report the controller receives from a worker."""
    path = os.environ.get(ENV)
    node = getattr(report, "node", None)  # set by xdist on the controller
    if not path or node is None:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{node.gateway.id}\t{time.time():.3f}\t{report.duration:.3f}\t{report.when}\t{report.nodeid}\n")


def summary(lines: list[str]) -> str:
    """Return per-worker busy seconds, finish time (from the first report) and last file, one line each."""
    rows = [line.rstrip("\n").split("\t") for line in lines if line.strip()]
    start = min(float(r[1]) - float(r[2]) for r in rows)
    busy: dict[str, float] = defaultdict(float)
    last: dict[str, tuple[float, str]] = {}
    for worker, at, seconds, _when, nodeid in rows:
        busy[worker] += float(seconds)
        last[worker] = max(last.get(worker, (0.0, "")), (float(at), nodeid.split("::")[0]))
    end = max(at for at, _ in last.values())
    out = [f"{w}: busy {busy[w]:.0f} s, finished at {last[w][0] - start:.0f} s "
           f"({end - last[w][0]:.0f} s before the end), last file {last[w][1]}" for w in sorted(busy)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]).read_text(encoding="utf-8").splitlines()))
