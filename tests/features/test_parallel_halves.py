"""The array arithmetic in two halves of the users on two threads gives the one-thread values, and its errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import spendlab.features.halves as halves_mod
from spendlab.features import build_features_arrow
from tests.features.conftest import random_transactions, tx_con


def _build(monkeypatch: pytest.MonkeyPatch, *, min_users: int, freq: str) -> pa.Table:
    monkeypatch.setattr(halves_mod, "PARALLEL_MIN_USERS", min_users)
    monkeypatch.setattr(halves_mod, "usable_cores", lambda: 2)
    con = tx_con(random_transactions(11, users=37, rows=900))  # 37 users: halves of 18 and 19
    try:
        return build_features_arrow(con, freq=freq, as_of=dt.date(2022, 2, 15))
    finally:
        con.close()


@pytest.mark.parametrize("freq", ["month", "week"])
def test_two_halves_on_two_threads_give_the_one_thread_values_bit_for_bit(monkeypatch: pytest.MonkeyPatch,
                                                                         freq: str) -> None:
    assert len(halves_mod.row_parts(37)) == 1  # below the threshold: one part
    whole = _build(monkeypatch, min_users=10**9, freq=freq)
    monkeypatch.setattr(halves_mod, "PARALLEL_MIN_USERS", 2)
    assert halves_mod.row_parts(37) == [(0, 18), (18, 37)]
    halves = _build(monkeypatch, min_users=2, freq=freq)
    assert halves.column_names == whole.column_names and halves.num_rows == whole.num_rows == 37
    assert halves.column("spend_lag1").num_chunks == 2  # the halves are kept as chunks, not copied together
    for name in whole.column_names:
        a, b = whole.column(name), halves.column(name)
        if name == "user_id":
            assert a.equals(b)
        else:  # the same bits, not merely close
            assert a.to_numpy().tobytes() == b.to_numpy().tobytes(), name
    trend = [c for c in whole.column_names if c.startswith("trend_slope")]
    assert trend and all(halves.column(c).num_chunks == 1 for c in trend)  # over every row at once
    assert any(np.any(halves.column(c).to_numpy() != 0) for c in trend)


def test_an_error_in_the_second_half_is_raised_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    real = halves_mod.compute_features

    def second_half_fails(stats, windows, **kwargs):
        if len(stats["n_periods"]) == 19:  # the second half (users 18..36) only
            raise ValueError("feature arithmetic failed in the second half")
        return real(stats, windows, **kwargs)

    monkeypatch.setattr(halves_mod, "compute_features", second_half_fails)
    with pytest.raises(ValueError, match="^feature arithmetic failed in the second half$"):
        _build(monkeypatch, min_users=2, freq="month")
