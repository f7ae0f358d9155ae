"""Fixtures for the reliability tests (reuses the job tests' temporary working directory)."""

from tests.jobs.conftest import workdir  # noqa: F401 - re-exported fixture
