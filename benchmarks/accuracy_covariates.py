"""Accuracy on the covariates world: the champion with vs without covariates, the peers, and the oracle.

Protocol (experiments/covariates_synth.yaml): the ``covariates`` world (household attributes, department
mix and discount sensitivity drive purchase rate and basket with known effects; 24 months from
2022-01), 8 test origins 2023-04-30 .. 2023-11-30, next calendar month's spend of every household seen
by the cutoff. One ``spendlab experiment covariates`` run: the experiment with its covariates and the
same experiment without them (each its own MLflow run), the champions' difference with a 95% paired
bootstrap interval over users (stratified by origin), the with-covariates champion's lead over the best
peer (its leaderboard's interval), and the share of the gap between the best peer and the oracle (each
household's true expected spend) that the champion closes. RMSEs are means over the test origins.

Acceptance (issue): at 20,000 users, the champion with covariates beats the one without by more than
the interval, beats every peer by more than the interval, and closes at least half the peer-oracle gap.
Two limits on the same rows put that last line in context: ``bayes_gap_closed``, the share the Bayes
limit closes (the posterior mean given the export, the best any forecaster can do), and
``informed_gap_closed``, the share a forecaster told every latent but the churn state closes.

Run: ``nice -n 10 .venv/bin/python benchmarks/accuracy_covariates.py --users 20000 [--models a,b,...]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "covariates_synth.yaml"
FEATURES = ROOT / "configs" / "covariates.yaml"
PEERS = ("moving_average", "bgnbd_gg", "last_period", "per_user_linear", "seasonal_naive", "zero")


def oracle_rmse(predictions: pd.DataFrame, oracle: pd.DataFrame) -> float:
    """Mean over test origins of the RMSE of the oracle's expected spend against the realized spend."""
    rows = predictions.drop_duplicates(["cutoff", "user_id"])[["cutoff", "user_id", "y_true"]].copy()
    rows["period_start"] = pd.to_datetime(rows["cutoff"]) + pd.Timedelta(days=1)
    o = oracle.assign(period_start=pd.to_datetime(oracle["period_start"]))
    m = rows.merge(o, on=["user_id", "period_start"], how="left").fillna({"expected_spend": 0.0})
    per = m.groupby("cutoff").apply(lambda d: float(np.sqrt(((d["expected_spend"] - d["y_true"]) ** 2).mean())),
                                    include_groups=False)
    return float(per.mean())


def limit_rmse(predictions: pd.DataFrame, data: Path, *, users: int, seed: int) -> dict[str, float]:
    """Mean over test origins of the RMSE of the two limits against the realized spend, on the same rows.

    ``informed``: every latent known but whether the household is still a customer
    (:mod:`spendlab.datasets.covariates_bound`); ``bayes``: the posterior mean given the line items and
    the household table up to the cutoff (:mod:`spendlab.datasets.covariates_posterior`), the best any
    forecaster of the export can do.
    """
    from spendlab.datasets.covariates_bound import informed_expected_spend, order_counts
    from spendlab.datasets.covariates_posterior import posterior_expected_spend
    from spendlab.datasets.worlds.covariates import monthly_means

    lines = pd.read_parquet(data / "lines.parquet")
    households = pd.read_csv(data / "households.csv", dtype={"valid_from": str}, keep_default_na=False)
    means, counts = monthly_means(users=users, months=24, seed=seed), order_counts(lines)
    rows = predictions.drop_duplicates(["cutoff", "user_id"])[["cutoff", "user_id", "y_true"]]
    out: dict[str, list[float]] = {"informed": [], "bayes": []}
    for cutoff, d in rows.groupby("cutoff"):
        c = (pd.Timestamp(cutoff).year - 2022) * 12 + pd.Timestamp(cutoff).month - 1
        for key, frame in (("informed", informed_expected_spend(means, counts, c)),
                           ("bayes", posterior_expected_spend(lines, households, c, draws=500, seed=seed))):
            p = d.merge(frame, on="user_id", how="left")["expected_spend"].fillna(0.0)
            out[key].append(float(np.sqrt(((p.to_numpy() - d["y_true"].to_numpy()) ** 2).mean())))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="moving_average,bgnbd_gg,tweedie_glm,lightgbm,ensemble")
    ap.add_argument("--out", type=Path, default=None, help="Keep the outputs here (default: a temp dir).")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from spendlab.jobs.covariate_experiment import run_covariates
    from spendlab.jobs.covariates import synth_covariates

    work = args.out or Path(tempfile.mkdtemp(prefix="spendlab-cov-"))
    data = work / "data"
    t0 = time.perf_counter()
    synth_covariates(data, users=args.users, months=24, seed=args.seed)
    exp = yaml.safe_load(EXPERIMENT.read_text())
    exp["dataset"]["input"] = str(data / "lines.parquet")
    exp["dataset"]["users"]["input"] = str(data / "households.csv")
    exp["features"] = str(FEATURES)
    (work / "experiment.yaml").write_text(yaml.safe_dump(exp))
    result = run_covariates(work / "experiment.yaml", out_dir=work / "run", models=args.models.split(","),
                            tracking_uri=f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    board = result.with_covariates.leaderboard
    preds = pd.read_parquet(result.with_covariates.paths["predictions"])
    oracle = oracle_rmse(preds, pd.read_parquet(data / "oracle.parquet"))
    peers = board[board["model"].isin(PEERS)]
    best_peer = peers.sort_values("validation_rmse").iloc[0]
    s = result.summary
    gap = float(best_peer["rmse"]) - oracle
    limits = limit_rmse(preds, data, users=args.users, seed=args.seed)

    def closed(rmse: float) -> float | None:
        return (float(best_peer["rmse"]) - rmse) / gap if gap > 0 else None
    out = {**s, "users": args.users, "best_peer": best_peer["model"], "best_peer_rmse": float(best_peer["rmse"]),
           "oracle_rmse": oracle, "gap_closed": closed(s["rmse_with"]),
           "informed_rmse": limits["informed"], "informed_gap_closed": closed(limits["informed"]),
           "bayes_rmse": limits["bayes"], "bayes_gap_closed": closed(limits["bayes"]),
           "beats_without": s["ci_high"] < 0, "beats_best_peer": s["peer_ci_high"] < 0,
           "seconds": round(time.perf_counter() - t0, 1),
           "leaderboard": board[["model", "rmse", "validation_rmse", "champion"]].to_dict("records")}
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
