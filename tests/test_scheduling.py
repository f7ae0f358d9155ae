"""tests/scheduling.py: ``--dist loadfile`` hands out the file with the most recorded seconds first, keeps a
file's tests together and the Spark files on one worker, and reads its record from a JUnit report."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

from tests.scheduling import durations_from_junit, file_of, heaviest_first_scheduler, scope_of, unit_weight


class _Node:
    """A stand-in for xdist's WorkerController: records the indices it is sent."""

    def __init__(self, name: str) -> None:
        self.name, self.sent, self.shutting_down = name, [], False
        self.gateway = SimpleNamespace(id=name)

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(list(indices))

    def shutdown(self) -> None:
        self.shutting_down = True


def _scheduler(collection: list[str], recorded: dict[str, float]) -> tuple[object, list[_Node]]:
    config = SimpleNamespace(getvalue={"tx": ["2*popen"]}.__getitem__,
                             option=SimpleNamespace(loadscopereorder=True))
    sched = heaviest_first_scheduler(config, None, recorded)  # type: ignore[arg-type]
    nodes = [_Node("gw0"), _Node("gw1")]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, collection)
    sched.schedule()
    return sched, nodes


def _files(collection: list[str], indices: list[int]) -> set[str]:
    return {collection[i].split("::")[0] for i in indices}


COLLECTION = ([f"tests/a/test_many.py::test_{i}" for i in range(30)] + ["tests/b/test_long.py::test_e2e"]
              + [f"tests/spark/test_s{k}.py::test_{i}" for k in (1, 2) for i in range(2)]
              + ["tests/test_mid.py::test_x", "tests/test_mid.py::test_y"])
RECORDED = {"tests/a/test_many.py": 3.0, "tests/b/test_long.py": 80.0, "tests/spark/test_s1.py": 20.0,
            "tests/spark/test_s2.py": 25.0, "tests/test_mid.py": 10.0}


def test_units_are_files_except_the_spark_folder_which_is_one() -> None:
    assert scope_of("tests/io/test_x.py::test_y[a::b]") == "tests/io/test_x.py"
    assert scope_of("tests/spark/test_score_spark.py::test_z") == scope_of("tests/spark/test_cli_spark.py::t")
    assert scope_of("tests/sparkle/test_x.py::t") == "tests/sparkle/test_x.py"


def test_a_units_weight_is_its_files_record_or_half_a_second_per_test_when_unrecorded() -> None:
    ids = ["tests/x.py::a", "tests/x.py::b", "tests/y.py::c", "tests/y.py::d", "tests/y.py::e"]
    assert unit_weight(ids, {"tests/x.py": 7.0}) == 7.0 + 3 * 0.5
    assert unit_weight(ids, {}) == 5 * 0.5


def test_the_longest_units_go_first_not_the_ones_with_most_tests() -> None:
    _, (gw0, gw1) = _scheduler(COLLECTION, RECORDED)
    assert _files(COLLECTION, gw0.sent[0]) == {"tests/b/test_long.py"}  # 80 s, one test
    assert _files(COLLECTION, gw1.sent[0]) == {"tests/spark/test_s1.py", "tests/spark/test_s2.py"}  # 45 s together


def test_every_test_is_sent_exactly_once_and_each_file_to_one_worker() -> None:
    rng = random.Random(0)
    sched, nodes = _scheduler(COLLECTION, RECORDED)
    while any(not n.shutting_down for n in nodes):  # complete tests in a random interleaving
        node = rng.choice([n for n in nodes if not n.shutting_down])
        pending = [i for batch in node.sent for i in batch if not sched.assigned_work[node][
            scope_of(COLLECTION[i])][COLLECTION[i]]]
        if not pending:
            sched._reschedule(node)  # what xdist calls when a worker asks for more
            continue
        sched.mark_test_complete(node, pending[0])
    sent = [i for n in nodes for batch in n.sent for i in batch]
    assert sorted(sent) == list(range(len(COLLECTION)))
    owner = {COLLECTION[i].split("::")[0]: n.name for n in nodes for batch in n.sent for i in batch}
    for n in nodes:
        assert {f for f, name in owner.items() if name == n.name} == _files(
            COLLECTION, [i for batch in n.sent for i in batch])


def test_the_record_is_read_from_junit_classnames_with_set_up_call_and_teardown_summed(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite name="pytest">'
                   '<testcase classname="tests.test_layout" name="a" time="1.25"/>'
                   '<testcase classname="tests.test_layout" name="b" time="0.5"/>'
                   '<testcase classname="tests.io.test_reader_parity.TestX" name="c" time="2"/>'
                   '<testcase classname="tests.gone" name="d" time="9"/></testsuite></testsuites>')
    assert file_of("tests.io.test_reader_parity.TestX") == "tests/io/test_reader_parity.py"
    assert durations_from_junit(xml) == {"tests/io/test_reader_parity.py": 2.0, "tests/test_layout.py": 1.8}


def test_the_worker_log_summary_gives_busy_seconds_and_the_idle_gap_at_the_end() -> None:
    from tests.worker_log import summary

    lines = ["gw0\t110.0\t10.0\tcall\ttests/a.py::t1", "gw1\t104.0\t4.0\tcall\ttests/b.py::t2",
             "gw1\t105.0\t0.5\tteardown\ttests/b.py::t2", "gw0\t112.0\t2.0\tcall\ttests/c.py::t3"]
    assert summary(lines).splitlines() == [
        "gw0: busy 12 s, finished at 12 s (0 s before the end), last file tests/c.py",
        "gw1: busy 4 s, finished at 5 s (7 s before the end), last file tests/b.py"]
