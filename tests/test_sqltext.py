"""spendlab.sqltext: any text round-trips through DuckDB as an identifier and as a string literal."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.sqltext import literal, quote

# DuckDB's parser stops at NUL; every other code point is fair game in a name or a value.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=20)


def test_hand_made_cases() -> None:
    assert quote('a"b') == '"a""b"' and quote("plain") == '"plain"'
    assert literal("it's") == "'it''s'" and literal(None) == "NULL"


@settings(max_examples=200, deadline=None)
@given(name=TEXT, value=TEXT)
def test_any_text_round_trips_as_a_column_name_and_a_value(name: str, value: str) -> None:
    con = duckdb.connect()
    rel = con.execute(f"SELECT {literal(value)} AS {quote(name)}")
    assert [d[0] for d in rel.description] == [name]
    assert rel.fetchall() == [(value,)]


def test_null_is_sql_null() -> None:
    assert duckdb.connect().execute(f"SELECT {literal(None)} IS NULL").fetchall() == [(True,)]
