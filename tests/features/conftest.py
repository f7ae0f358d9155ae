"""Helpers for the feature tests: a DuckDB connection over a tiny transaction table."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np
import pandas as pd

from spendlab.io.load import connect


def tx_frame(rows: Iterable[tuple[str, str, float]]) -> pd.DataFrame:
    """``(user_id, 'YYYY-MM-DD HH:MM:SS', amount)`` rows as a canonical frame (naive UTC ``ts``)."""
    frame = pd.DataFrame(list(rows), columns=["user_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    frame["amount"] = frame["amount"].astype("float64")
    return frame


def tx_con(frame: pd.DataFrame, view: str = "transactions") -> duckdb.DuckDBPyConnection:
    """A spendlab DuckDB connection with ``frame`` exposed as view ``view``."""
    con = connect(threads=2)
    con.register(f"{view}__df", frame)
    con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT user_id, ts, amount FROM "{view}__df"')
    return con


def random_transactions(seed: int, users: int = 40, rows: int = 600, start: str = "2020-11-01",
                        days: int = 500) -> pd.DataFrame:
    """A seeded random transaction set with bursts, gaps, same-day repeats and ~8% refunds."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, rows)
    # Each user is active in a sub-range, so first periods differ and gaps occur.
    first = rng.integers(0, days - 30, users)
    offset = first[user] + (rng.random(rows) * (days - first[user])).astype(int)
    seconds = rng.integers(0, 86_400, rows)
    ts = pd.Timestamp(start) + pd.to_timedelta(offset, unit="D") + pd.to_timedelta(seconds, unit="s")
    amount = np.round(rng.gamma(2.0, 20.0, rows), 2)
    refund = rng.random(rows) < 0.08
    amount[refund] = -np.round(amount[refund] / 3, 2)
    amount[rng.random(rows) < 0.02] = 0.0
    frame = pd.DataFrame({"user_id": [f"u{u:03d}" for u in user], "ts": ts.astype("datetime64[us]"),
                          "amount": amount})
    return frame.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
