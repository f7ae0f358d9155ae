"""The one-line warning when an installed dependency is outside the tested ranges."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError

import pytest

import spendlab.dependencies as deps
from spendlab.cli import main
from spendlab.dependencies import Untested, untested_dependencies, untested_dependencies_line

REQS = ["pandas<4,>=2.2", "duckdb<3,>=1.1", "lifetimes==0.11.3", 'pytest>=8; extra == "test"',
        'pyspark<5,>=3.5; extra == "spark"']


def fake_versions(**have: str):
    def installed(name: str) -> str:
        key = name.replace("-", "_")
        if key not in have:
            raise PackageNotFoundError(name)
        return have[key]

    return installed


def test_versions_inside_every_range_give_nothing() -> None:
    installed = fake_versions(pandas="3.1.1", duckdb="2.0.1", lifetimes="0.11.3")
    assert untested_dependencies(REQS, installed) == []
    assert untested_dependencies_line(REQS, installed) is None


def test_boundaries_are_the_specifiers_own() -> None:
    # <4 excludes 4.0.0; >=2.2 includes 2.2.0 and excludes 2.1.4
    installed = fake_versions(pandas="4.0.0", duckdb="1.1.0", lifetimes="0.11.3")
    assert untested_dependencies(REQS, installed) == [Untested("pandas", "4.0.0", "<4,>=2.2")]
    installed = fake_versions(pandas="2.1.4", duckdb="1.1.0", lifetimes="0.11.3")
    assert [u.name for u in untested_dependencies(REQS, installed)] == ["pandas"]


def test_a_pre_release_inside_a_range_counts_as_inside() -> None:
    installed = fake_versions(pandas="3.2.0rc1", duckdb="2.1.0.dev3", lifetimes="0.11.3")
    assert untested_dependencies(REQS, installed) == []


def test_optional_extras_are_not_checked_even_when_absent_or_outside() -> None:
    installed = fake_versions(pandas="3.1.1", duckdb="2.0.1", lifetimes="0.11.3", pytest="7.0")
    assert untested_dependencies(REQS, installed) == []


def test_every_mismatch_and_a_missing_package_share_one_line() -> None:
    installed = fake_versions(pandas="4.0.0", duckdb="0.9.2")
    line = untested_dependencies_line(REQS, installed)
    assert line is not None and "\n" not in line
    assert "pandas 4.0.0 (tested <4,>=2.2)" in line
    assert "duckdb 0.9.2 (tested <3,>=1.1)" in line
    assert "lifetimes missing (tested ==0.11.3)" in line


def test_an_unparseable_version_is_reported_not_raised() -> None:
    installed = fake_versions(pandas="not-a-version", duckdb="2.0.1", lifetimes="0.11.3")
    assert [u.installed for u in untested_dependencies(REQS, installed)] == ["not-a-version"]


def test_a_check_that_cannot_run_stays_silent() -> None:
    def broken(name: str) -> str:
        raise RuntimeError("metadata unreadable")

    assert untested_dependencies_line(REQS, broken) is None
    assert untested_dependencies_line(["not a requirement !!"], fake_versions()) is None


def test_this_test_environment_is_inside_the_tested_ranges() -> None:
    # make test installs from pyproject.toml; if the resolver ever leaves the ranges, this says so
    assert untested_dependencies() == []


def run_version() -> int:
    """``spendlab --version`` in-process; its exit code (``main`` returns normally on success)."""
    try:
        main(["--version"])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_prints_nothing_extra_when_everything_is_inside(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_version() == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("spendlab ")
    assert captured.err == ""


def test_cli_warns_in_one_stderr_line_and_still_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = deps.version

    def newer_pandas(name: str) -> str:
        return "9.0.0" if name == "pandas" else real(name)

    monkeypatch.setattr(deps, "version", newer_pandas)
    assert run_version() == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("spendlab ")
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("warning: ") and "pandas 9.0.0 (tested " in lines[0]
    assert "Traceback" not in captured.err
