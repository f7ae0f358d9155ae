"""Which worker runs which test file under ``pytest -n auto --dist loadfile`` (``make test``).

pytest-xdist's ``loadfile`` hands out whole files (a module-scoped fixture is built once) in order of
their number of tests, most first: the files that hold one or two long end-to-end tests (crash safety,
the CDNOW monitor, Spark parity) went last, and one worker ran them while the other sat idle. Here
``loadfile`` hands out the file with the longest recorded time first (longest processing time first,
the classic list-scheduling rule), so both workers finish together, and the Spark files go to one
worker as one unit, so the suite starts one Spark session and one JVM instead of one per worker.

The recorded times are ``tests/durations.json`` (seconds per file, from a whole run's JUnit XML:
``python -m tests.scheduling JUNIT.xml``). A file missing from it weighs
:data:`UNKNOWN_SECONDS_PER_TEST` per test. Which tests run, and on what, is unchanged: only the order
files are handed out in and which worker gets them.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = Path(__file__).with_name("durations.json")
#: Files under these folders run on one worker, one after another (they share a session fixture).
SHARED_WORKER = ("tests/spark/",)
UNKNOWN_SECONDS_PER_TEST = 0.5


def scope_of(nodeid: str) -> str:
    """Return the unit of work ``nodeid`` belongs to: its file, or its folder for :data:`SHARED_WORKER`."""
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in SHARED_WORKER if path.startswith(folder)), path)


def recorded_seconds(path: Path = DURATIONS) -> dict[str, float]:
    """Return the recorded seconds per test file (empty when the record is missing or unreadable)."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def unit_weight(nodeids: list[str], recorded: dict[str, float]) -> float:
    """Return the expected seconds of one unit of work (the tests ``nodeids``)."""
    per_file: dict[str, int] = defaultdict(int)
    for nodeid in nodeids:
        per_file[nodeid.split("::", 1)[0]] += 1
    return sum(recorded.get(f, UNKNOWN_SECONDS_PER_TEST * n) for f, n in per_file.items())


def heaviest_first_scheduler(config: pytest.Config, log: object, recorded: dict[str, float] | None = None) -> object:
    """Return a ``loadfile`` scheduler that hands out the unit with the most seconds first.

    ``recorded`` defaults to :func:`recorded_seconds` (``tests/durations.json``).
    """
    from xdist.scheduler import LoadFileScheduling

    recorded = recorded_seconds() if recorded is None else recorded

    class HeaviestFileFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        def _assign_work_unit(self, node: object) -> None:
            weights = {scope: unit_weight(list(tests), recorded) for scope, tests in self.workqueue.items()}
            heaviest = max(weights, key=weights.__getitem__)  # ties keep collection order
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return HeaviestFileFirst(config, log)


def file_of(classname: str) -> str | None:
    """Return the test file of a JUnit ``classname`` (``tests.io.test_x`` or ``tests.io.test_x.TestY``)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (ROOT / path).is_file():
            return path
    return None


def durations_from_junit(xml_path: Path) -> dict[str, float]:
    """Return the seconds per test file of a JUnit XML report (set-up, call and teardown summed)."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        path = file_of(case.get("classname", ""))
        if path is not None:
            seconds[path] += float(case.get("time", 0.0))
    return {path: round(s, 1) for path, s in sorted(seconds.items())}


def main(argv: list[str]) -> int:
    """Write ``tests/durations.json`` from the JUnit XML report ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m tests.scheduling JUNIT.xml", file=sys.stderr)
        return 2
    table = durations_from_junit(Path(argv[0]))
    DURATIONS.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{DURATIONS}: {len(table)} files, {sum(table.values()):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
