"""The stage timer: records only inside a recorder, sums per stage, follows the job into its threads."""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from spendlab.timing import RECORD_COLUMNS, SUMMARY_COLUMNS, Timings, current, profiled, recording, timed


def test_timed_outside_a_recorder_records_nothing_and_runs_the_block() -> None:
    ran = []
    with timed("fit", "ridge"):
        ran.append(1)
    assert ran == [1] and current() is None


def test_timed_records_wall_seconds_of_the_block_with_its_labels() -> None:
    with recording() as rec:
        with timed("fit", "ridge", "1997-10-31"):
            time.sleep(0.05)
        with timed("load"):
            pass
    rows = rec.records()
    assert list(rows.columns) == RECORD_COLUMNS
    assert rows[["stage", "detail", "origin"]].values.tolist() == [["fit", "ridge", "1997-10-31"], ["load", "", ""]]
    assert rows["seconds"].iloc[0] >= 0.05
    assert rows["cpu_seconds"].iloc[0] < 0.05  # sleeping costs no CPU: wall and CPU time are apart
    assert current() is None  # the recorder is closed with its block


def test_a_stage_that_raises_is_still_recorded_and_the_error_passes() -> None:
    with recording() as rec, pytest.raises(ZeroDivisionError), timed("fit", "bad"):
        1 / 0  # noqa: B018
    assert rec.records()["detail"].tolist() == ["bad"]


def test_summary_sums_per_stage_and_detail_longest_first() -> None:
    rec = Timings()
    for stage, detail, s in [("fit", "a", 1.0), ("fit", "a", 2.0), ("fit", "b", 0.5), ("predict", "a", 4.0)]:
        rec.add(stage, detail, "", s, s / 2)
    summ = rec.summary()
    assert list(summ.columns) == SUMMARY_COLUMNS
    assert summ.values.tolist() == [["predict", "a", 1, 4.0, 2.0], ["fit", "a", 2, 3.0, 1.5], ["fit", "b", 1, 0.5, 0.25]]
    assert Timings().summary().empty


def test_threads_running_in_a_copy_of_the_context_record_into_the_job() -> None:
    def work(i: int) -> None:
        with timed("fit", f"m{i}"):
            pass

    with recording() as rec, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(6)]  # copied here
        plain = [pool.submit(work, 9)]  # a bare worker thread has its own, empty context
        for f in futures + plain:
            f.result()
    assert sorted(rec.records()["detail"]) == [f"m{i}" for i in range(6)]


def test_profiled_reuses_the_callers_recorder_and_opens_one_otherwise() -> None:
    @profiled
    def job() -> Timings | None:
        with timed("load"):
            pass
        return current()

    own = job()
    assert own is not None and own.records()["stage"].tolist() == ["load"]
    with recording() as outer:
        assert job() is outer
    assert outer.records()["stage"].tolist() == ["load"]
