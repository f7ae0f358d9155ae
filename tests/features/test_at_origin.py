"""``at_origin`` indexes a feature frame by (origin, row) exactly as ``MultiIndex.from_arrays`` would."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.features.config import ORIGIN_LEVEL, at_origin


@pytest.mark.parametrize("n", [0, 1, 7])
@pytest.mark.parametrize("cutoff", ["2024-12-31", dt.date(1998, 6, 30)], ids=str)
def test_origin_index_equals_the_one_from_arrays_builds(n: int, cutoff: str | dt.date) -> None:
    X = pd.DataFrame({"spend_lag1": np.arange(n, dtype=np.float64)})
    got = at_origin(X, cutoff)
    want = pd.MultiIndex.from_arrays([np.repeat(pd.Timestamp(cutoff), n), np.arange(n)], names=[ORIGIN_LEVEL, "row"])
    assert got.index.equals(want) and list(got.index.names) == [ORIGIN_LEVEL, "row"]
    for a, b in zip(got.index.levels, want.levels, strict=True):
        assert a.dtype == b.dtype and a.equals(b)
    assert got.index.get_level_values(ORIGIN_LEVEL).equals(want.get_level_values(ORIGIN_LEVEL))
    assert X.index.equals(pd.RangeIndex(n))  # the input is not changed
    pd.testing.assert_frame_equal(got.reset_index(drop=True), X)
