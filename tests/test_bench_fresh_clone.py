"""benchmarks/bench_fresh_clone.py reads the pipeline's stage lines and pytest's summary from real output."""

from __future__ import annotations

from tests.benchmark_module import benchmark_module


def _module():
    return benchmark_module("bench_fresh_clone")


RUN_LOG = """commit abc1234
done [1/6] validate      1.1s  23,570 users, 69,659 rows accepted, 0 rejected,
spend 2,500,315.63
done [3/6] tune         40.9s  cdnow_next_month-lightgbm: 2 trials, best
done [4/6] experiment  281.5s  champion ensemble; leaderboard
finished in 349s. Where everything is:
"""


def test_the_stages_and_the_rest_add_up_to_the_wall_time() -> None:
    m = _module()
    assert m.stages(RUN_LOG) == [("validate", 1.1), ("tune", 40.9), ("experiment", 281.5)]
    text = m.report("run", 400.0, 0, RUN_LOG)
    assert "fresh clone of commit abc1234" in text and "**400.0 s** wall (goal 120 s), exit 0" in text
    assert "| install, start-up and the rest | 76.5 |" in text


def test_a_test_run_reports_pytests_summary_and_a_failure_its_tail() -> None:
    m = _module()
    log = "commit abc1234\n...\n====== 2550 passed, 3 warnings in 512.40s (0:08:32) ======\n"
    text = m.report("test", 590.0, 0, log)
    assert "| pytest (2550 passed, 3 warnings) | 512.4 |" in text and "| install, ruff, mkdocs, browser set-up | 77.6 |" in text
    assert "```" in m.report("test", 30.0, 2, "commit abc1234\nmake: *** [test] Error 2\n")
