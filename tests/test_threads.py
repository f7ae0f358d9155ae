"""spendlab.threads: every task a job puts on a thread runs in a copy of the submitting thread's context."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from spendlab.threads import map_in_context, on_a_thread, submit
from spendlab.timing import recording, timed

WHO = contextvars.ContextVar("WHO", default="nobody")


def _seen(tag: str) -> tuple[str, str]:
    with timed("on a thread", tag):
        return WHO.get(), threading.current_thread().name


def test_a_stage_timed_on_any_of_the_threads_lands_in_the_jobs_profile():
    token = WHO.set("the job")
    try:
        with recording() as rec, ThreadPoolExecutor(max_workers=2) as pool:
            one = on_a_thread("spendlab-test", _seen, "on_a_thread").result()
            two = submit(pool, _seen, "submit").result()
            many = map_in_context(pool, _seen, ["map 1", "map 2", "map 3"])
    finally:
        WHO.reset(token)
    assert one[0] == two[0] == "the job" and {m[0] for m in many} == {"the job"}
    assert one[1].startswith("spendlab-test") and two[1] != threading.current_thread().name
    assert sorted(rec.records()["detail"]) == ["map 1", "map 2", "map 3", "on_a_thread", "submit"]


def test_a_setting_made_on_a_thread_stays_there():
    def set_and_read() -> str:
        WHO.set("the thread")
        return WHO.get()

    assert on_a_thread("spendlab-test", set_and_read).result() == "the thread"
    assert WHO.get() == "nobody"


def test_errors_are_raised_where_the_result_is_read():
    def boom(n: int) -> int:
        if n == 2:
            raise ValueError(f"part {n}")
        return n

    future = on_a_thread("spendlab-test", boom, 2)
    with pytest.raises(ValueError, match="part 2"):
        future.result()
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(ValueError, match="part 2"):
        map_in_context(pool, boom, [1, 2, 3])
