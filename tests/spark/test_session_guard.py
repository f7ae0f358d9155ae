"""The Spark fixture's guard: a dead JVM fails each later Spark test with one line, not a py4j traceback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.spark.conftest import JVM_GONE, jvm_answers, live


def fake_session(answer: object) -> SimpleNamespace:
    """A stand-in whose one py4j round trip (``System.nanoTime``) calls ``answer``."""
    system = SimpleNamespace(nanoTime=answer)
    return SimpleNamespace(sparkContext=SimpleNamespace(_jvm=SimpleNamespace(java=SimpleNamespace(
        lang=SimpleNamespace(System=system)))))


def refused() -> int:
    raise ConnectionRefusedError(111, "Connection refused")


def test_a_session_whose_jvm_refuses_the_connection_fails_the_test_with_one_line() -> None:
    dead = fake_session(refused)
    assert not jvm_answers(dead)
    with pytest.raises(pytest.fail.Exception, match="JVM no longer answers") as info:
        live(dead)
    assert str(info.value) == JVM_GONE and "\n" not in JVM_GONE
    assert not info.value.pytrace


def test_a_session_whose_jvm_answers_is_handed_to_the_test() -> None:
    alive = fake_session(lambda: 42)
    assert jvm_answers(alive)
    assert live(alive) is alive


def test_the_real_session_answers(spark) -> None:
    assert jvm_answers(spark)
