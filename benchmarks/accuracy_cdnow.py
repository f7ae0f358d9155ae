"""Accuracy on CDNOW: spendlab's experiment vs the peers a user would pick instead, in one run.

Protocol (experiments/cdnow_next_month.yaml): 8 test cutoffs at the month ends 1997-10-31 ..
1998-05-31; target = gross spend in the following calendar month; population = every customer
acquired by the cutoff (23,570). Metrics are means over the 8 origins.

Peers, each fitted at every cutoff on the transactions up to that cutoff only:

- ``lifetimes BG/NBD + Gamma-Gamma``: ``summary_data_from_transaction_data`` (daily), BG/NBD
  expected purchases over the days of the target month x Gamma-Gamma expected spend;
- ``per-user linear``: spendlab's reference row (a line through the last 6 monthly totals);
- ``last month`` and ``3-month mean``;
- ``mlforecast + LightGBM``: one global LightGBM on each user's zero-filled monthly series with
  lags 1-6 and a 3-month rolling mean of lag 1 (mlforecast's recursive setup, h=1).

Every metric is spendlab's ``origin_metrics`` (RMSE, bias, normalized Gini, Spearman, decile MAPE,
top-10% capture), averaged over the test origins. The champion's lead over the best peer gets a 95%
paired bootstrap interval over users, stratified by origin (``spendlab.forecast.bootstrap``).

Run: ``nice -n 10 .venv/bin/python benchmarks/accuracy_cdnow.py [--write-results] [--models a,b,...]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "cdnow_next_month.yaml"


def monthly_actuals(tx: pd.DataFrame, cutoff: dt.date, users: np.ndarray) -> np.ndarray:
    """Gross spend of each user in the calendar month after ``cutoff`` (independent pandas oracle)."""
    start = pd.Timestamp(cutoff + dt.timedelta(days=1))
    end = start + pd.offsets.MonthBegin(1)
    win = tx[(tx["ts"] >= start) & (tx["ts"] < end) & (tx["amount"] > 0)]
    return win.groupby("user_id")["amount"].sum().reindex(users, fill_value=0.0).to_numpy()


def peer_lifetimes(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, days: int,
                   penalizer: float = 0.0) -> np.ndarray:
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    daily = hist[hist["amount"] > 0]
    s = summary_data_from_transaction_data(daily, "user_id", "ts", monetary_value_col="amount",
                                           observation_period_end=pd.Timestamp(cutoff), freq="D")
    s = s.reindex(users)
    # Users whose only rows are zero-dollar purchases: treat as one-time buyers seen on day 0.
    first = hist.groupby("user_id")["ts"].min().reindex(users)
    s["T"] = s["T"].fillna((pd.Timestamp(cutoff) - first).dt.days.astype(float))
    s = s.fillna({"frequency": 0.0, "recency": 0.0, "monetary_value": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = BetaGeoFitter(penalizer_coef=penalizer).fit(s["frequency"], s["recency"], s["T"])
        rep = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
        gg = GammaGammaFitter(penalizer_coef=penalizer).fit(rep["frequency"], rep["monetary_value"])
    n = bg.conditional_expected_number_of_purchases_up_to_time(days, s["frequency"], s["recency"], s["T"])
    m = gg.conditional_expected_average_profit(s["frequency"], s["monetary_value"])
    return np.clip(np.nan_to_num((n * m).to_numpy()), 0, None)


def monthly_panel(hist: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """Zero-filled monthly spend per user from their first month to the cutoff's month."""
    h = hist.assign(ds=hist["ts"].dt.to_period("M").dt.to_timestamp(), y=hist["amount"].clip(lower=0))
    m = h.groupby(["user_id", "ds"], as_index=False)["y"].sum()
    months = pd.date_range(m["ds"].min(), pd.Timestamp(cutoff).to_period("M").to_timestamp(), freq="MS")
    first = m.groupby("user_id")["ds"].min()
    full = pd.MultiIndex.from_product([first.index, months], names=["user_id", "ds"]).to_frame(index=False)
    full = full[full["ds"] >= full["user_id"].map(first)]
    out = full.merge(m, on=["user_id", "ds"], how="left").fillna({"y": 0.0})
    return out.rename(columns={"user_id": "unique_id"})


def peer_mlforecast(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray) -> np.ndarray:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    panel = monthly_panel(hist, cutoff)
    fc = MLForecast(models={"lgb": LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=31,
                                                 random_state=0, n_jobs=1, verbose=-1)},
                    freq="MS", lags=list(range(1, 7)), lag_transforms={1: [RollingMean(window_size=3)]})
    fc.fit(panel, id_col="unique_id", time_col="ds", target_col="y", static_features=[], dropna=False)
    pred = fc.predict(h=1).set_index("unique_id")["lgb"]
    return np.clip(pred.reindex(users).fillna(0.0).to_numpy(), 0, None)


def score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from spendlab.forecast.metrics import origin_metrics

    return origin_metrics(y, p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--models", default=None, help="spendlab models to run (default: the experiment's)")
    ap.add_argument("--train-origins", default=None, help="override the experiment's train_origins (N or all)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the lead's interval")
    args = ap.parse_args()

    from spendlab.features.store import FeatureStore
    from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
    from spendlab.io import load_transactions
    from spendlab.jobs.experiment import execute
    from spendlab.jobs.plan import load_experiment, plan_experiment
    from spendlab.models.registry import make_model

    cfg = load_experiment(EXPERIMENT)
    if args.train_origins:
        value = (args.train_origins if args.train_origins == "all" or "-" in args.train_origins
                 else int(args.train_origins))
        cfg = cfg.model_validate({**cfg.model_dump(), "train_origins": value})
    tx_obj = load_transactions(cfg.dataset.input, cfg.dataset.format, config=cfg.reader)
    tx = tx_obj.to_pandas()
    tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    cutoffs = cfg.origins("test")
    store = FeatureStore.from_source(tx_obj, freq="month", horizon=1)

    rows: list[dict[str, object]] = []
    timings: dict[str, float] = {}
    peer_preds: list[pd.DataFrame] = []

    def add(name: str, cutoff: dt.date, y: np.ndarray, p: np.ndarray) -> None:
        rows.append({"model": name, "cutoff": cutoff, **score(y, p)})
        peer_preds.append(pd.DataFrame({"model": name, "split": "test", "cutoff": cutoff, "user_id": users,
                                        "y_true": y, "y_pred": np.asarray(p, dtype=np.float64)}))

    for cutoff in cutoffs:
        X = store.features(cutoff)
        users = X["user_id"].to_numpy()
        y = monthly_actuals(tx, cutoff, users)
        np.testing.assert_allclose(y, store.target(cutoff), rtol=1e-9)  # spendlab's target = the oracle
        hist = tx[tx["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
        days = ((pd.Timestamp(cutoff) + pd.offsets.MonthEnd(1)) - pd.Timestamp(cutoff)).days
        t = time.perf_counter()
        add("lifetimes BG/NBD + Gamma-Gamma", cutoff, y, peer_lifetimes(hist, cutoff, users, days))
        timings["lifetimes BG/NBD + Gamma-Gamma"] = timings.get("lifetimes BG/NBD + Gamma-Gamma", 0) + time.perf_counter() - t
        Xf = X.drop(columns=["user_id"])
        add("per-user linear (reference)", cutoff, y, make_model("per_user_linear").fit(Xf).predict(Xf))
        add("last month", cutoff, y, Xf["spend_lag1"].to_numpy())
        add("3-month mean", cutoff, y, Xf[["spend_lag1", "spend_lag2", "spend_lag3"]].to_numpy().mean(axis=1))
        t = time.perf_counter()
        add("mlforecast + LightGBM (lags 1-6, rolling mean 3)", cutoff, y, peer_mlforecast(hist, cutoff, users))
        timings["mlforecast + LightGBM (lags 1-6, rolling mean 3)"] = (
            timings.get("mlforecast + LightGBM (lags 1-6, rolling mean 3)", 0) + time.perf_counter() - t)
        print(f"peers done for {cutoff}", file=sys.stderr, flush=True)

    cols = ["rmse", "mae", "bias", "wape", "top10_capture", "gini_norm", "spearman", "decile_mape"]
    peers = pd.DataFrame(rows).groupby("model", sort=False)[cols].mean()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # the benchmark's MLflow runs go to a throwaway store
        try:
            t = time.perf_counter()
            models = args.models.split(",") if args.models else None
            plan = plan_experiment(cfg, experiment_path=EXPERIMENT, models=models)
            res = execute(plan, out_dir=Path(tmp) / "out", transactions=tx_obj, progress=lambda m: print(m, file=sys.stderr, flush=True))
            spend_s = time.perf_counter() - t
            spend_preds = pd.read_parquet(res.paths["predictions"])
        finally:
            os.chdir(cwd)
    board = res.leaderboard.set_index("model")
    best_peer = peers["rmse"].idxmin()  # the toughest peer on test: reported against, never chosen by
    champ = res.champion
    # Paired bootstrap: every model's per-user test predictions on the same rows (cutoff, user).
    allp = pd.concat([pd.concat(peer_preds, ignore_index=True),
                      spend_preds.assign(split="test")[["model", "split", "cutoff", "user_id", "y_true", "y_pred"]]],
                     ignore_index=True)
    allp["cutoff"] = pd.to_datetime(allp["cutoff"]).dt.date
    allp = allp.sort_values(["model", "cutoff", "user_id"], kind="stable", ignore_index=True)
    by_model = {m: g.reset_index(drop=True) for m, g in allp.groupby("model", sort=False)}
    boot = bootstrap_rmse(by_model, split="test", n_boot=args.n_boot, seed=cfg.seed)
    lo, hi = delta_interval(boot, champ, best_peer)
    lines = [
        "| model | kind | mean test RMSE | MAE | bias | WAPE | top-10% capture | normalized Gini | Spearman "
        "| decile MAPE | validation RMSE | RMSE - best peer [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def delta(name: str, rmse: float) -> str:
        a, b = delta_interval(boot, name, best_peer)
        return f"{rmse - peers.loc[best_peer, 'rmse']:+.3f} [{a:+.3f}, {b:+.3f}]"

    for name, r in peers.sort_values("rmse").iterrows():
        lines.append(f"| {name} | peer | {r.rmse:.3f} | {r.mae:.3f} | {r.bias:+.3f} | {r.wape:.3f} | "
                     f"{r.top10_capture:.3f} | {r.gini_norm:.3f} | {r.spearman:.3f} | {r.decile_mape:.3f} | - | "
                     f"{delta(name, r.rmse)} |")
    for name, r in board.sort_values("rmse").iterrows():
        tag = "spendlab champion" if name == champ else "spendlab"
        lines.append(f"| {name} | {tag} | {r.rmse:.3f} | {r.mae:.3f} | {r.bias:+.3f} | {r.wape:.3f} | "
                     f"{r.top10_capture:.3f} | {r.gini_norm:.3f} | {r.spearman:.3f} | {r.decile_mape:.3f} | "
                     f"{r.validation_rmse:.3f} | {delta(name, r.rmse)} |")
    ratio = board.loc[champ, "rmse"] / peers.loc[best_peer, "rmse"]
    summary = (f"Champion `{champ}` (chosen on the validation origins; train_origins={cfg.train_origins}): mean test "
               f"RMSE {board.loc[champ, 'rmse']:.3f} vs best peer {best_peer} {peers.loc[best_peer, 'rmse']:.3f} "
               f"(ratio **{ratio:.3f}**, {100 * (1 - ratio):+.1f}% better; paired bootstrap over users stratified by "
               f"origin, {args.n_boot} replicates: RMSE difference 95% CI [{lo:+.3f}, {hi:+.3f}]), mean per-origin "
               f"bias {board.loc[champ, 'bias']:+.2%}, normalized Gini {board.loc[champ, 'gini_norm']:.3f} "
               f"(peer {peers.loc[best_peer, 'gini_norm']:.3f}), top-10% capture "
               f"{board.loc[champ, 'top10_capture']:.3f} (peer {peers.loc[best_peer, 'top10_capture']:.3f}).")
    timing = (f"Wall time on this run: spendlab experiment ({len(board)} models, validation + test origins, "
              f"MLflow logging) {spend_s:.0f} s; peers: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    table = "\n".join(lines)
    print(table)
    print(summary)
    print(timing)
    if args.write_results:
        write_results(table, summary, timing)
    return 0


def write_results(table: str, summary: str, timing: str) -> None:
    """Make this run the current ``accuracy_cdnow`` section of RESULTS.md (the one it replaces goes to HISTORY.md)."""
    from run_all import record

    record("accuracy_cdnow", "\n".join([
        "### accuracy_cdnow", "",
        "Command: `nice -n 10 .venv/bin/python benchmarks/accuracy_cdnow.py --write-results`  ",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; protocol: experiments/cdnow_next_month.yaml "
        "(8 test cutoffs 1997-10-31 .. 1998-05-31, next calendar month, all 23,570 customers; "
        "validation cutoffs 1997-07-31 .. 1997-09-30). Peers are fitted at each cutoff on data up to it.", "",
        table, "", summary, "", timing, ""]))


if __name__ == "__main__":
    raise SystemExit(main())
