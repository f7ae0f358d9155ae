"""benchmarks/bench_tests.py formats a pytest run: its summary line and the slowest tests, in order."""

from __future__ import annotations

from tests.benchmark_module import benchmark_module


def _module():
    return benchmark_module("bench_tests")


def test_summary_and_slowest_tests_come_from_the_log() -> None:
    log = ("...\n============================= slowest 3 durations =============================\n"
           "12.50s call     tests/a.py::test_x\n3.25s setup    tests/b.py::test_y[1]\n0.01s teardown tests/c.py::t\n"
           "=============== 5 passed, 2 warnings in 20.40s ================\n")
    text = _module().summarise(log, 21.0)
    assert text.splitlines()[0] == "- pytest: 5 passed, 2 warnings in 20 s (21 s wall)"
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert rows == ["| 12.5 | call | `tests/a.py::test_x` |", "| 3.2 | setup | `tests/b.py::test_y[1]` |",
                    "| 0.0 | teardown | `tests/c.py::t` |"]


def test_a_run_with_failures_names_them_and_one_without_a_summary_says_so() -> None:
    log = ("FAILED tests/a.py::test_x - AssertionError: 1 != 2\nFAILED tests/b.py::test_y[1] - boom\n"
           "========= 2 failed, 7 passed, 1 warning in 30.00s =========\n")
    lines = _module().summarise(log, None).splitlines()
    assert lines[:3] == ["- pytest: 2 failed, 7 passed, 1 warning in 30 s", "- failed: `tests/a.py::test_x`",
                         "- failed: `tests/b.py::test_y[1]`"]
    assert _module().summarise("Killed\n", None).splitlines()[0].startswith("- pytest: no summary line found")
