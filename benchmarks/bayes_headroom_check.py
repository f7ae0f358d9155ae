"""Where the achievable headroom on the synthetic sets lies: BG/NBD against the Bayes limit and the oracle.

For each generator profile and each of accuracy_synth.py's 8 test cutoffs (the last 8 month ends whose
target month is in the data), RMSE of:

- ``oracle``: the generator's expected spend given the latent parameters;
- ``bayes``: the posterior mean given the purchases up to the cutoff, under the generator's own model and
  priors (``spendlab.datasets.synth_posterior``): the floor for any forecaster of the data;
- ``peer``: lifetimes BG/NBD + Gamma-Gamma fitted at the cutoff (accuracy_cdnow.py's peer);
- ``peer_levelled``: the peer scaled at each origin so its total equals the oracle's (a perfect level:
  what any seasonal or level correction of BG/NBD could reach at most);
- ``peer_seasonal``: the peer scaled by last year's actual/fitted ratio for the same calendar month
  over the pooled ratio of the 12 months before the target (a seasonal level from data before the cutoff).

Means over the cutoffs, then the share of the peer-to-oracle gap each closes.

Run: ``nice -n 10 .venv/bin/python benchmarks/bayes_headroom_check.py [--users 20000] [--profiles default,grocery]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy_cdnow import monthly_actuals, peer_lifetimes
from accuracy_synth import month_end, world_arguments


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def peer(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, days: int) -> np.ndarray:
    from lifetimes.utils import ConvergenceError

    for penalizer in (0.0, 1e-3, 1e-2, 1e-1):
        try:
            return peer_lifetimes(hist, cutoff, users, days, penalizer=penalizer)
        except ConvergenceError:
            continue
    raise RuntimeError(f"lifetimes did not converge at {cutoff}")


def run(profile: str, args: argparse.Namespace, work: Path) -> pd.DataFrame:
    from spendlab.datasets.synth import SynthWorld
    from spendlab.datasets.synth_posterior import posterior_expected_spend
    from spendlab.io import load_transactions
    from spendlab.jobs.datasets import synth_transactions

    data = work / profile / "tx.parquet"
    synth_transactions(data, users=args.users, months=args.months, start=args.start, seed=args.seed,
                       profile=profile, oracle=True, freq="month")
    oracle = pd.read_parquet(data.parent / "oracle.parquet").pivot(index="user_id", columns="period_start",
                                                                   values="expected_spend")
    world = SynthWorld(users=args.users, months=args.months, start=args.start, seed=args.seed, profile=profile)
    tx = load_transactions(str(data), "generic").to_pandas()
    tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    first = tx.groupby("user_id")["ts"].min()
    start = dt.date.fromisoformat(args.start)
    fits: dict[int, tuple[float, float]] = {}  # month index of the cutoff -> (sum actual, sum peer)
    rows = []
    for k in range(args.months - 1):
        cutoff = month_end(start, k)
        target = cutoff + dt.timedelta(days=1)
        users = first[first < pd.Timestamp(target)].index.to_numpy()
        hist = tx[tx["ts"] < pd.Timestamp(target)]
        days = (pd.Timestamp(target) + pd.offsets.MonthEnd(0)).day
        p, y = peer(hist, cutoff, users, days), monthly_actuals(tx, cutoff, users)
        fits[k] = (float(y.sum()), float(p.sum()))
        if k < args.months - 9 or k - 12 not in fits:
            continue
        o = oracle.loc[users, target].to_numpy()
        b = posterior_expected_spend(world, hist, cutoff).reindex(users).to_numpy()
        pooled = sum(fits[j][0] for j in range(k - 12, k)) / sum(fits[j][1] for j in range(k - 12, k))
        season = (fits[k - 12][0] / fits[k - 12][1]) / pooled
        rows.append({"cutoff": cutoff, "oracle": rmse(y, o), "bayes": rmse(y, b), "peer": rmse(y, p),
                     "peer_levelled": rmse(y, p * o.sum() / p.sum()), "peer_seasonal": rmse(y, p * season),
                     "peer_bias": p.sum() / y.sum() - 1, "peer_seasonal_bias": p.sum() * season / y.sum() - 1})
        print(f"{profile}: {cutoff} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    world_arguments(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="spendlab-headroom-") as tmp:
        for profile in args.profiles.split(","):
            table = run(profile, args, Path(tmp))
            means = table.drop(columns=["cutoff"]).mean()
            gap = means["peer"] - means["oracle"]
            print(f"\n### `{profile}` ({args.users:,} users, {len(table)} test cutoffs)\n", file=sys.__stdout__)
            cols = list(table.columns)
            print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), file=sys.__stdout__)
            for _, r in table.iterrows():
                print("| " + " | ".join(str(r[c]) if c == "cutoff" else f"{r[c]:.3f}" for c in cols) + " |",
                      file=sys.__stdout__)
            print("\n| mean | oracle | bayes | peer | peer_levelled | peer_seasonal |\n|---|---|---|---|---|---|\n"
                  f"| RMSE | {means['oracle']:.3f} | {means['bayes']:.3f} | {means['peer']:.3f} | "
                  f"{means['peer_levelled']:.3f} | {means['peer_seasonal']:.3f} |\n"
                  "| share of the peer-to-oracle gap closed | 100% | "
                  + " | ".join(f"{(means['peer'] - means[c]) / gap:.1%}" for c in ("bayes", "peer", "peer_levelled",
                                                                                  "peer_seasonal")) + " |",
                  file=sys.__stdout__, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
