"""Covariate features against an independent pandas computation, with several text categories at once.

The SQL reads the window's lines once and rolls the per-user-and-category sums up; the oracle below
computes every feature from the lines directly, as the definitions in :mod:`spendlab.features.covariates`
state them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spendlab.config import ReaderConfig
from spendlab.features import FeatureConfig, build_features
from spendlab.features.config import CovariateConfig
from spendlab.io import load_transactions
from spendlab.io.load import connect

ATTRS = {"dept": {"column": "dept"}, "store": {"column": "store"}, "disc": {"column": "disc", "type": "amount"},
         "coupon": {"column": "coupon", "type": "amount"}}
COV = CovariateConfig(window=2, category_share={"dept": 3, "store": 2}, amount_share=("disc",), use_rate=("coupon",),
                      distinct=("dept", "store"))
AS_OF = dt.date(2024, 3, 31)


def lines(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 60
    days = rng.integers(0, 120, n)  # 2024-01-01 .. 2024-04-29: some lines after the cutoff
    return pd.DataFrame({
        "cust": rng.choice(["u1", "u2", "u3", "u4", "u5"], n),
        "ts": [f"{dt.date(2024, 1, 1) + dt.timedelta(days=int(d))} 10:00:00" for d in days],
        "amount": [f"{v / 100:.2f}" for v in rng.integers(-500, 3000, n)],  # refunds too
        "dept": rng.choice(["A", "B", "C", "D", ""], n),
        "store": rng.choice(["s1", "s2", "s3", ""], n),
        "disc": [f"{v / 100:.2f}" if v > -150 else "" for v in rng.integers(-200, 1, n)],
        "coupon": rng.choice(["0", "0.50", "", "1"], n),
    })


def oracle(df: pd.DataFrame) -> pd.DataFrame:
    """Every covariate from the lines, in integer cents (exact), then one division per feature."""
    df = df.assign(ts=pd.to_datetime(df["ts"]), cents=(df["amount"].astype(float) * 100).round().astype(int))
    seen = df[df["ts"] < pd.Timestamp(AS_OF + dt.timedelta(days=1))]
    w = seen[(seen["ts"] >= pd.Timestamp("2024-02-01")) & (seen["cents"] > 0)]
    out = pd.DataFrame(index=sorted(seen["cust"].unique()))
    spend = w.groupby("cust")["cents"].sum().reindex(out.index, fill_value=0)
    n = w.groupby("cust").size().reindex(out.index, fill_value=0)

    def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
        return pd.Series(np.where(den > 0, num / den.where(den > 0, 1), 0.0), index=out.index)

    for attr, k in COV.category_share.items():
        tagged = w[w[attr] != ""]
        totals = tagged.groupby(attr)["cents"].sum().reset_index().sort_values(["cents", attr], ascending=[False, True])
        for r, cat in enumerate(totals[attr].head(k), start=1):
            mine = tagged[tagged[attr] == cat].groupby("cust")["cents"].sum().reindex(out.index, fill_value=0)
            out[f"cov_{attr}_share_top{r}_window2"] = ratio(mine, spend)
        for r in range(len(totals) + 1, k + 1):
            out[f"cov_{attr}_share_top{r}_window2"] = 0.0
    disc = (w["disc"].replace("", np.nan).astype(float).abs() * 100).round().groupby(w["cust"]).sum()
    out["cov_disc_amount_share_window2"] = ratio(disc.reindex(out.index, fill_value=0), spend)
    used = w[w["coupon"].replace("", "0").astype(float) != 0].groupby("cust").size()
    out["cov_coupon_use_rate_window2"] = ratio(used.reindex(out.index, fill_value=0), n)
    for attr in COV.distinct:
        out[f"cov_{attr}_distinct_window2"] = w[w[attr] != ""].groupby("cust")[attr].nunique() \
            .reindex(out.index, fill_value=0).astype(float)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_covariates_with_two_text_categories_match_a_pandas_oracle(tmp_path, seed):
    df = lines(seed)
    df.to_csv(tmp_path / "l.csv", index=False)
    tx = load_transactions(str(tmp_path / "l.csv"), "generic",
                           config=ReaderConfig(generic={"user_col": "cust", "attributes": ATTRS}))
    con = connect()
    tx.register(con)
    got = build_features(con, freq="month", as_of=AS_OF, config=FeatureConfig(covariates=COV)).set_index("user_id")
    want = oracle(df)
    assert list(got.index) == list(want.index)
    for col in want.columns:
        np.testing.assert_allclose(got[col].to_numpy(np.float64), want[col].to_numpy(np.float64), rtol=1e-12,
                                   atol=0, err_msg=f"{col} (seed {seed})")
