"""Top and bottom spenders are picked as a top-n, then ranked: the same rows and ranks as ranking everyone.

Oracle: pandas over the raw rows (gross spend per user, users without positive spend left out,
ties in spend broken by the user id as text), with ``rank`` = position among all users with spend.
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from spendlab.describe import insights as ins
from spendlab.describe import tables as qt
from spendlab.io import load_transactions
from spendlab.io.load import connect

# ids whose text order differs from their numeric order, tied spends, a refund-only and a zero-only user
ROWS = [("10", 5.0), ("9", 5.0), ("100", 5.0), ("2", 7.5), ("2", -1.0), ("b", 3.0), ("a", 3.0), ("z", 12.0),
        ("refund_only", -4.0), ("zero_only", 0.0), ("c", 0.01), ("d", 0.01), ("z", 1.0), ("e", 9.99), ("f", 20.0)]


@pytest.fixture(scope="module")
def con_and_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("spenders") / "tx.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "ts", "amount"])
        for i, (uid, amount) in enumerate(ROWS):
            w.writerow([uid, f"2022-03-{1 + i:02d}T10:00:00Z", f"{amount:.2f}"])
    tx = load_transactions(str(path), "generic")
    con = connect(threads=2)
    tx.register(con)
    qt.prepare(con)
    return con, pd.DataFrame(ROWS, columns=["user_id", "amount"])


def _oracle(rows: pd.DataFrame, n: int, top: bool) -> pd.DataFrame:
    pos = rows[rows["amount"] > 0].groupby("user_id")["amount"].agg(["sum", "count"])
    total = pos["sum"].sum()
    pos = pos.reset_index().rename(columns={"sum": "total_spend", "count": "n_spend_transactions"})
    pos["neg_spend"] = -pos["total_spend"]
    pos = pos.sort_values(["neg_spend" if top else "total_spend", "user_id"], kind="stable").reset_index(drop=True)
    pos["rank"] = range(1, len(pos) + 1)
    pos["share_of_spend"] = pos["total_spend"] / total
    return pos.head(n)


@pytest.mark.parametrize("top", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 50])
def test_spenders_match_ranking_everyone(con_and_rows, n, top):
    con, rows = con_and_rows
    got = ins.spenders_table(con, n, top=top)
    want = _oracle(rows, n, top)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    assert got["rank"].tolist() == want["rank"].tolist()
    assert got["n_spend_transactions"].tolist() == want["n_spend_transactions"].tolist()
    assert got["total_spend"].astype(float).round(6).tolist() == want["total_spend"].round(6).tolist()
    assert got["share_of_spend"].astype(float).round(9).tolist() == want["share_of_spend"].round(9).tolist()
    assert "refund_only" not in set(got["user_id"]) and "zero_only" not in set(got["user_id"])
