"""``sub_cent: round``: amounts to whole cents, half to even, on the exact decimal the file holds.

Exports computed in floating point carry noise such as ``1.776357e-15`` where a zero was meant (27 of
The Complete Journey's 1.47M lines, one of them in a discount column, which rejected a real purchase line).
The oracle is Python's ``Decimal.quantize`` on the value as written (a double's ``repr``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendlab.config import ReaderConfig
from spendlab.io import Mode, load_transactions
from spendlab.io.parsing import FieldError, parse_amount

CENT = Decimal("0.01")


@given(st.decimals(min_value=-10**6, max_value=10**6, places=6, allow_nan=False, allow_infinity=False))
def test_a_written_decimal_rounds_half_to_even_to_whole_cents(value):
    assert parse_amount(str(value), sub_cent="round") == float(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


@given(st.integers(-10**9, 10**9), st.floats(-1e-9, 1e-9))
def test_float_noise_around_a_cent_value_is_that_value(cents, noise):
    x = cents / 100 + noise
    assert parse_amount(x, sub_cent="round") == float(Decimal(repr(x)).quantize(CENT, rounding=ROUND_HALF_EVEN))
    assert parse_amount(x, sub_cent="round") == cents / 100 or abs(cents) >= 10**7  # noise far below half a cent


def test_reject_and_keep_are_unchanged_and_the_range_still_applies():
    with pytest.raises(FieldError, match="SUB_CENT|more precision"):
        parse_amount("0.125")
    assert parse_amount("0.125", sub_cent="keep") == 0.125
    assert parse_amount("0.125", sub_cent="round") == 0.12 and parse_amount("0.135", sub_cent="round") == 0.14
    assert parse_amount("10000000.004", sub_cent="round") == 1e7  # the range applies to the value kept
    for policy in ("round", "reject", "keep"):
        with pytest.raises(FieldError) as info:
            parse_amount("10000000.006", sub_cent=policy)
        assert info.value.error_type == "OUT_OF_RANGE"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_noise_in_an_amount_and_in_an_attribute_keeps_the_lines(tmp_path, fmt):
    rows = {"hh": ["1", "2", "3"], "ts": ["2017-02-12 02:49:12", "2017-03-07 14:10:42", "2017-03-07 15:00:00"],
            "sales": [1.776357e-15, 0.3, 2.5900000000000003], "disc": [0.0, 1.38778e-16, 0.1]}
    path = tmp_path / f"lines.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(rows), path)
    else:
        path.write_text("hh,ts,sales,disc\n" + "".join(f"{h},{t},{s!r},{d!r}\n" for h, t, s, d in zip(*rows.values(),
                                                                                                     strict=True)))
    generic = {"user_col": "hh", "ts_col": "ts", "amount_col": "sales",
               "attributes": {"disc": {"column": "disc", "type": "amount"}}}
    rejected = load_transactions(str(path), "generic", config=ReaderConfig(generic=generic))
    assert sorted((r.line, r.error_type, r.column) for r in rejected.report.rejects) == (
        [(1, "SUB_CENT", "sales"), (2, "SUB_CENT", "disc"), (3, "SUB_CENT", "sales")] if fmt == "parquet"
        else [(2, "SUB_CENT", "sales"), (3, "SUB_CENT", "disc"), (4, "SUB_CENT", "sales")])
    rounded = load_transactions(str(path), "generic", mode=Mode.STRICT,
                                config=ReaderConfig(generic=generic, sub_cent="round"))
    frame = rounded.to_pandas().sort_values("user_id")
    assert rounded.report.accepted == 3 and not rounded.report.rejects
    assert frame["amount"].tolist() == [0.0, 0.3, 2.59] and frame["disc"].tolist() == [0.0, 0.0, 0.1]
