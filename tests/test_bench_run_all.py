"""benchmarks/run_all.py: RESULTS.md is rendered from the latest result JSON of each benchmark, a rerun
replaces only its own result, and a replaced section moves to HISTORY.md with its figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(module, "HISTORY", tmp_path / "HISTORY.md")
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path / "results")
    return module


def _result(name: str, output: str, **kw: object) -> dict:
    base = {"name": name, "command": f".venv/bin/python benchmarks/{name}.py", "started": "2026-12-01 10:00 UTC",
            "load_average": 0.25, "wall_s": 12, "exit": 0, "under_load": False, "machine": "x86_64, 2 cores",
            "output": output, "stderr_tail": ""}
    return {**base, **kw}


def _sections(module) -> dict[str, str]:
    text = module.RESULTS.read_text()
    return module._sections_of(text.split(module.BEGIN, 1)[1].split(module.END, 1)[0])


def test_a_tiny_result_set_renders_exactly(run_all) -> None:
    results = {"spark": _result("spark", "| a |\n| 1 |"),
               "features_1m": _result("features_1m", "", exit=1, stderr_tail="Traceback\nBoom", under_load=True)}
    text = run_all.render_results(results)
    expected_block = (
        f"{run_all.BEGIN}\n## Current figures (x86_64, 2 cores)\n\nEach section is the newest run of that benchmark.\n\n"
        "<!-- bench: features_1m -->\n### features_1m\n\n"
        "Command: `.venv/bin/python benchmarks/features_1m.py`  \n"
        "Started 2026-12-01 10:00 UTC; load average 0.25 at start; 12 s in all; exit 1.\n\n"
        "**Measured under load: not a result.** Remeasure on an idle machine.\n\n"
        "(no output)\n\n```\nTraceback\nBoom\n```\n"
        "\n<!-- bench: spark -->\n### spark\n\n"
        "Command: `.venv/bin/python benchmarks/spark.py`  \n"
        "Started 2026-12-01 10:00 UTC; load average 0.25 at start; 12 s in all; exit 0.\n\n"
        f"| a |\n| 1 |\n{run_all.END}\n"
    )
    assert text == run_all.PREFACE + "\n" + expected_block  # BENCHMARKS order, not insertion order
    assert run_all.render_results({}).endswith(f"(machine not recorded)\n\nEach section is the newest run of that "
                                                f"benchmark.\n\n{run_all.END}\n")


def test_results_md_is_a_function_of_the_result_files(run_all) -> None:
    run_all._store({"spark": _result("spark", "s1"), "synth": _result("synth", "y1")})
    rendered = run_all.RESULTS.read_text()
    assert rendered == run_all.render_results(run_all.latest_results(run_all.RESULTS_DIR))
    assert sorted(p.name for p in run_all.RESULTS_DIR.iterdir()) == ["spark.json", "synth.json"]
    assert json.loads((run_all.RESULTS_DIR / "spark.json").read_text())["output"] == "s1"
    run_all.RESULTS.write_text("edited by hand")
    assert run_all.main(["--render"]) == 0
    assert run_all.RESULTS.read_text() == rendered


def test_a_rerun_replaces_only_its_result_and_keeps_the_old_one_in_history(run_all) -> None:
    run_all.HISTORY.write_text("# Benchmark history\n\n## 2026-11-21: by hand\n\nkept\n")
    run_all._store({"features_1m": _result("features_1m", "old figures"), "spark": _result("spark", "s")})
    run_all._store({"features_1m": _result("features_1m", "new figures")})
    sections = _sections(run_all)
    assert set(sections) == {"features_1m", "spark"} and "new figures" in sections["features_1m"]
    history = run_all.HISTORY.read_text()
    assert history.startswith("# Benchmark history\n\n## 2026-11-21: by hand\n\nkept\n")
    moved = history.split("### features_1m (replaced ", 1)[1]
    assert "old figures" in moved and "new figures" not in history and "### spark" not in history
    run_all._store({"spark": _result("spark", "s")})  # the same figures again: nothing to keep
    assert run_all.HISTORY.read_text() == history
    run_all.record("features_1m", "### features_1m\n\nthird, written by the benchmark\n")
    history = run_all.HISTORY.read_text()
    assert history.count("### features_1m (replaced ") == 2 and history.index("old figures") < history.index("new figures")
    assert _sections(run_all)["features_1m"] == "### features_1m\n\nthird, written by the benchmark\n"


def test_headings_inside_a_benchmarks_output_stay_in_its_section(run_all) -> None:
    body = "intro\n\n### Profile `default`\n\na\n\n### features_1m\n\nnot a section"
    run_all._store({"accuracy_synth": _result("accuracy_synth", body), "spark": _result("spark", "s")})
    run_all._store({"spark": _result("spark", "t")})
    sections = _sections(run_all)
    assert set(sections) == {"accuracy_synth", "spark"} and sections["accuracy_synth"].endswith(body + "\n")


def test_a_results_md_from_before_the_json_results_migrates_section_for_section(run_all, tmp_path: Path) -> None:
    old = tmp_path / "OLD.md"
    old.write_text(f"# Benchmark results\n\nprose\n\n{run_all.BEGIN}\n## Current figures (x86_64, 2 cores)\n\nintro\n\n"
                   "<!-- bench: features_1m -->\n### features_1m\n\nf\n\n<!-- bench: spark -->\n### spark\n\ns\n"
                   f"{run_all.END}\n")
    run_all.migrate(old)
    assert run_all.main(["--render"]) == 0
    assert _sections(run_all) == {"features_1m": "### features_1m\n\nf\n", "spark": "### spark\n\ns\n"}
    assert "## Current figures (x86_64, 2 cores)" in run_all.RESULTS.read_text()


def test_make_bench_runs_a_benchmark_and_renders_its_result(run_all, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_all, "BENCHMARKS", {"tiny": ["-c", "print('| users | s |'); print('| 3 | 0.1 |')"]})
    monkeypatch.setattr(run_all, "PY", sys.executable)
    assert run_all.main(["--max-load", "1000", "--settle", "0"]) == 0
    result = json.loads((run_all.RESULTS_DIR / "tiny.json").read_text())
    assert result["exit"] == 0 and result["output"] == "| users | s |\n| 3 | 0.1 |" and not result["under_load"]
    section = _sections(run_all)["tiny"]
    assert section.startswith("### tiny\n\nCommand: `.venv/bin/python -c ") and section.endswith("| 3 | 0.1 |\n")


def test_the_committed_results_md_is_rendered_from_the_committed_results() -> None:
    spec = importlib.util.spec_from_file_location("run_all_real", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert committed == module.render_results(module.latest_results(module.RESULTS_DIR))
    assert set(module.latest_results(module.RESULTS_DIR)) == set(module.BENCHMARKS)


def test_an_accuracy_measured_under_load_stands_and_a_speed_figure_does_not(run_all) -> None:
    accuracy = run_all.render_section(_result("accuracy_covariates", "rmse 1.0", under_load=True))
    speed = run_all.render_section(_result("scoring_1m", "30 s", under_load=True))
    assert "the accuracy figures stand" in accuracy and "not a result" not in accuracy
    assert "**Measured under load: not a result.**" in speed
    assert "under load" not in run_all.render_section(_result("accuracy_covariates", "rmse 1.0"))


def test_a_scripts_own_run_is_recorded_with_its_command_time_and_load(run_all, monkeypatch) -> None:
    monkeypatch.setattr(run_all.os, "getloadavg", lambda: (3.25, 0.0, 0.0))
    monkeypatch.setattr(run_all.time, "gmtime", lambda: run_all.time.struct_time((2026, 12, 7, 21, 5, 0, 0, 341, 0)))
    run_all.record_measured("selection_suite", about="What it measures.", command="python x.py --a 1",
                            body="| m | 1 |")
    assert _sections(run_all)["selection_suite"] == (
        "### selection_suite\n\nWhat it measures.\n\nCommand: `python x.py --a 1`  \n"
        "Measured 2026-12-07 21:05 UTC, load average 3.25 at the end.\n\n| m | 1 |\n")
