"""``signed_log1p`` equals the textbook ``sign(a) * log1p(|a|)`` and leaves its input alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spendlab.models.learned import signed_log1p


@given(arrays(np.float64, st.tuples(st.integers(0, 7), st.integers(1, 5)),
              elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_signed_log1p_is_sign_times_log1p_of_the_magnitude(a: np.ndarray) -> None:
    before = a.copy()
    with np.errstate(invalid="ignore"):
        expected = np.sign(a) * np.log1p(np.abs(a))
    got = signed_log1p(a)
    np.testing.assert_array_equal(got, expected)  # NaN where NaN; -0.0 == 0.0
    np.testing.assert_array_equal(a, before)
    assert got is not a


def test_signed_log1p_takes_integers() -> None:
    np.testing.assert_allclose(signed_log1p(np.array([3, -1, 0])), [np.log(4), -np.log(2), 0.0])
