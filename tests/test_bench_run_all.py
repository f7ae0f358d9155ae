"""benchmarks/run_all.py keeps what it did not rerun: sections are replaced by name, never lost or split, and a
replaced section moves to HISTORY.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Written by hand\n\nkept as is\n")
    monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(module, "HISTORY", tmp_path / "HISTORY.md")
    return module


def _sections(module) -> dict[str, str]:
    text = module.RESULTS.read_text()
    return module._sections_of(text.split(module.BEGIN, 1)[1].split(module.END, 1)[0])


def test_only_replaces_the_sections_it_ran(run_all) -> None:
    first = {"features_1m": "### features_1m\n\nold figures\n", "describe_1m": "### describe_1m\n\nd\n"}
    run_all._rewrite(first)
    run_all._rewrite({"features_1m": "### features_1m\n\nnew figures\n"})
    assert _sections(run_all) == {"features_1m": "### features_1m\n\nnew figures\n", "describe_1m": first["describe_1m"]}
    assert "## Written by hand\n\nkept as is" in run_all.RESULTS.read_text()


def test_headings_inside_a_benchmarks_output_stay_in_its_section(run_all) -> None:
    body = "### accuracy_synth\n\nintro\n\n### Profile `default`\n\na\n\n### features_1m\n\nnot a section\n"
    run_all._rewrite({"accuracy_synth": body, "spark": "### spark\n\ns\n"})
    run_all._rewrite({"spark": "### spark\n\nt\n"})
    assert _sections(run_all) == {"spark": "### spark\n\nt\n", "accuracy_synth": body}


def test_a_block_written_before_the_markers_is_read_by_its_headings(run_all) -> None:
    run_all.RESULTS.write_text(f"x\n{run_all.BEGIN}\n## Latest\n\n### features_1m\n\nf\n\n### scoring_1m\n\ns\n"
                               f"{run_all.END}\n")
    run_all._rewrite({"scoring_1m": "### scoring_1m\n\nnew\n"})
    assert _sections(run_all) == {"features_1m": "### features_1m\n\nf\n", "scoring_1m": "### scoring_1m\n\nnew\n"}


def test_a_replaced_section_moves_to_the_history_with_its_figures(run_all) -> None:
    run_all._rewrite({"features_1m": "### features_1m\n\nCommand: `a`\n\nold figures\n",
                      "spark": "### spark\n\ns\n"})
    assert not run_all.HISTORY.exists()
    run_all._rewrite({"features_1m": "### features_1m\n\nCommand: `a`\n\nnew figures\n"})
    history = run_all.HISTORY.read_text()
    assert history.startswith("# Benchmark history\n") and run_all.REPLACED in history
    moved = history.split("### features_1m (replaced ", 1)[1]
    assert "Command: `a`\n\nold figures" in moved and "new figures" not in history and "### spark" not in history
    run_all._rewrite({"spark": "### spark\n\ns\n"})  # the same figures again: nothing to keep
    assert run_all.HISTORY.read_text() == history
    run_all.record("features_1m", "### features_1m\n\nthird\n")
    history = run_all.HISTORY.read_text()
    assert history.count("### features_1m (replaced ") == 2 and history.index("old figures") < history.index("new figures")
    assert _sections(run_all)["features_1m"] == "### features_1m\n\nthird\n"


def test_earlier_history_written_by_hand_is_kept(run_all) -> None:
    run_all.HISTORY.write_text("# Benchmark history\n\n## 2026-11-21: by hand\n\nkept\n")
    run_all._rewrite({"spark": "### spark\n\none\n"})
    run_all._rewrite({"spark": "### spark\n\ntwo\n"})
    history = run_all.HISTORY.read_text()
    assert history.startswith("# Benchmark history\n\n## 2026-11-21: by hand\n\nkept\n")
    assert history.rstrip().endswith("one")
