"""spendlab.io.recovery: owner tags and liveness, the inter-process file lock, retry with backoff."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spendlab.io.recovery import (
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    file_lock,
    is_sqlite_busy,
    owner_alive,
    process_tags,
    retry,
)


def test_the_current_process_is_its_own_live_owner() -> None:
    tags = process_tags()
    assert tags[HOST_TAG] == socket.gethostname()
    assert owner_alive(tags) is True


def test_an_exited_process_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    tags = {PID_TAG: str(proc.pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: "1.000"}
    assert owner_alive(tags) is False


def test_a_reused_pid_started_later_is_not_the_owner() -> None:
    tags = process_tags()
    tags[PROCESS_START_TAG] = f"{float(tags[PROCESS_START_TAG]) - 3600:.3f}"
    assert owner_alive(tags) is False


@pytest.mark.parametrize("tags", [
    {},
    {PID_TAG: "1", HOST_TAG: "some-other-host.invalid"},
    {PID_TAG: "not-a-pid", HOST_TAG: socket.gethostname()},
])
def test_liveness_is_unknown_without_tags_or_on_another_host(tags: dict[str, str]) -> None:
    assert owner_alive(tags) is None


def test_file_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    lock, log = tmp_path / "store.lock", tmp_path / "log.txt"
    holder = (
        "import sys, time\n"
        "from spendlab.io.recovery import file_lock\n"
        f"with file_lock({str(lock)!r}):\n"
        f"    open({str(log)!r}, 'a').write('held\\n')\n"
        "    time.sleep(1.5)\n"
        f"    open({str(log)!r}, 'a').write('released\\n')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder])
    try:
        deadline = time.time() + 60
        while not (log.exists() and "held" in log.read_text()):
            assert time.time() < deadline and proc.poll() is None, "the lock holder never started"
            time.sleep(0.05)
        with file_lock(lock):
            with open(log, "a") as fh:
                fh.write("main\n")
    finally:
        proc.wait(timeout=60)
    assert log.read_text().splitlines() == ["held", "released", "main"]


def test_retry_gets_past_a_locked_database_and_gives_up_on_other_errors() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert retry(flaky, base_delay=0.001, seed=0) == "ok" and len(calls) == 3

    other = []

    def broken() -> None:
        other.append(1)
        raise sqlite3.OperationalError("no such table: runs")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry(broken, base_delay=0.001)
    assert len(other) == 1


def test_retry_raises_the_last_lock_error_after_its_attempts() -> None:
    calls = []

    def always() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        retry(always, attempts=4, base_delay=0.001, seed=1)
    assert len(calls) == 4


def test_lock_errors_are_recognised_through_wrapping_exceptions() -> None:
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("(raised as a result of Query-invoked autoflush)") from inner
    except RuntimeError as outer:
        assert is_sqlite_busy(outer)
    assert not is_sqlite_busy(ValueError("locked out of the building"))
