"""Accuracy against a measurable limit: the experiment, its peers and the oracle on synthetic data.

For each generator profile (``default`` retail, ``grocery``): ``spendlab datasets synth`` writes
``--users`` users over ``--months`` months with ``--oracle`` (each user's true expected spend per
month, from the generator's latent parameters). The protocol is CDNOW's
(experiments/cdnow_next_month.yaml): monthly cutoffs, target = gross spend of the next calendar
month, population = every user with a transaction by the cutoff, every earlier origin whose target
is known stacked for training (``--train-origins all``, CDNOW's rule); the
8 test cutoffs are the last 8 month ends whose target month is in the data, the 3 before them are
the validation cutoffs (champion choice). Metrics are means over the 8 test origins.

Rows, all in the same run:

- ``oracle``: the oracle's expected spend of the target month (the best any forecaster can do in
  expectation, knowing the latent parameters; its RMSE is the irreducible purchase noise);
- the spendlab champion (and every other spendlab model) from the experiment runner;
- peers, as in benchmarks/accuracy_cdnow.py (same functions): lifetimes BG/NBD + Gamma-Gamma,
  mlforecast + LightGBM on lags 1-6 and a rolling mean, the 3-month mean and last month.

``gap closed`` = (best peer RMSE - champion RMSE) / (best peer RMSE - oracle RMSE): the share of
the distance from the best peer to the limit that the champion covers (1 = at the oracle); the Bayes
limit's own share is reported beside it, and ``headroom closed`` = (best peer - champion) / (best
peer - Bayes limit), the share of the *achievable* improvement.
``champion bias`` = the mean over test origins of sum(pred - actual) / sum(actual).

Run: ``nice -n 10 .venv/bin/python benchmarks/accuracy_synth.py [--users 20000] [--write-results]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from accuracy_cdnow import monthly_actuals, peer_lifetimes, peer_mlforecast  # same peers as CDNOW

ROOT = Path(__file__).resolve().parents[1]
BAYES = "Bayes limit"
PEERS = ("lifetimes BG/NBD + Gamma-Gamma", "mlforecast + LightGBM (lags 1-6, rolling mean 3)", "3-month mean",
         "last month")


def spendlab_api() -> SimpleNamespace:
    """spendlab's public functions this benchmark calls, imported in one place (modules are moving)."""
    from spendlab.datasets.synth import SynthWorld
    from spendlab.datasets.synth_posterior import posterior_expected_spend
    from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
    from spendlab.forecast.metrics import origin_metrics
    from spendlab.forecast.protocol import DatasetSpec, ExperimentConfig, Origins
    from spendlab.io import load_transactions
    from spendlab.jobs.datasets import synth_transactions
    from spendlab.jobs.experiment import execute, feature_store
    from spendlab.jobs.plan import plan_experiment
    from spendlab.models.registry import BASELINES, COMBINERS

    return SimpleNamespace(origin_metrics=origin_metrics, DatasetSpec=DatasetSpec, ExperimentConfig=ExperimentConfig,
                           Origins=Origins, execute=execute, feature_store=feature_store,
                           plan_experiment=plan_experiment,
                           synth_transactions=synth_transactions, load_transactions=load_transactions,
                           SynthWorld=SynthWorld, posterior_expected_spend=posterior_expected_spend,
                           bootstrap_rmse=bootstrap_rmse, delta_interval=delta_interval, BASELINES=BASELINES,
                           COMBINERS=COMBINERS)


def month_end(start: dt.date, k: int) -> dt.date:
    """The last day of the ``k``-th month (0-based) from the month of ``start``."""
    first = (pd.Timestamp(start).to_period("M") + k).to_timestamp()
    return (first + pd.offsets.MonthEnd(0)).date()


def experiment_config(api: SimpleNamespace, data: Path, profile: str, start: dt.date, months: int,
                      train_origins: int | str = "all") -> object:
    """CDNOW's protocol on ``months`` months of synthetic data: 3 validation, then 8 test cutoffs."""
    last_test = month_end(start, months - 2)  # its target is the data's last month
    return api.ExperimentConfig(
        name=f"synth_{profile}_next_month",
        description=f"synthetic {profile} profile, monthly; next calendar month's spend (issue 18)",
        dataset=api.DatasetSpec(input=str(data), format="generic", name=f"synth-{profile}"),
        freq="month", horizon=1, train_origins=train_origins,
        validation=api.Origins(start=month_end(start, months - 12), end=month_end(start, months - 10)),
        test=api.Origins(start=month_end(start, months - 9), end=last_test),
        seed=0,
    )


def run_profile(api: SimpleNamespace, profile: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    start = dt.date.fromisoformat(args.start)
    data = work / profile / "tx.parquet"
    t = time.perf_counter()
    api.synth_transactions(data, users=args.users, months=args.months, start=args.start, seed=args.seed,
                           profile=profile, oracle=True, freq="month")
    oracle = pd.read_parquet(data.parent / "oracle.parquet")
    oracle = oracle.pivot(index="user_id", columns="period_start", values="expected_spend")
    synth_s = time.perf_counter() - t
    cfg = experiment_config(api, data, profile, start, args.months, train_origins=args.train_origins)
    world = api.SynthWorld(users=args.users, months=args.months, start=args.start, seed=args.seed, profile=profile)
    tx_obj = api.load_transactions(str(data), "generic")
    tx = tx_obj.to_pandas()
    tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    store = api.feature_store(api.plan_experiment(cfg, models=["zero"]), tx_obj)

    rows: list[dict[str, object]] = []
    timings: dict[str, float] = {}
    penalized: list[tuple[dt.date, float]] = []

    def add(name: str, cutoff: dt.date, y: np.ndarray, predict) -> None:  # predict() is called at once
        t0 = time.perf_counter()
        p = predict()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        rows.append({"model": name, "cutoff": cutoff, **api.origin_metrics(y, p)})

    for cutoff in cfg.origins("test"):
        X = store.features(cutoff)
        users = X["user_id"].to_numpy()
        y = store.target(cutoff)
        np.testing.assert_allclose(y, monthly_actuals(tx, cutoff, users), rtol=1e-9)  # independent pandas target
        target_month = cutoff + dt.timedelta(days=1)
        hist = tx[tx["ts"] < pd.Timestamp(target_month)]
        days = (pd.Timestamp(target_month) + pd.offsets.MonthEnd(0)).day
        Xf = X.drop(columns=["user_id"])
        add("oracle", cutoff, y, lambda: oracle.loc[users, target_month].to_numpy())  # noqa: B023 - called at once
        add(BAYES, cutoff, y, lambda: api.posterior_expected_spend(world, hist, cutoff).reindex(users).to_numpy())  # noqa: B023 - called at once
        add(PEERS[0], cutoff, y, lambda: lifetimes_peer(hist, cutoff, users, days, penalized))  # noqa: B023 - called at once
        add(PEERS[1], cutoff, y, lambda: peer_mlforecast(hist, cutoff, users))  # noqa: B023 - called at once
        add(PEERS[2], cutoff, y, lambda: Xf[["spend_lag1", "spend_lag2", "spend_lag3"]].to_numpy().mean(axis=1))  # noqa: B023 - called at once
        add(PEERS[3], cutoff, y, lambda: Xf["spend_lag1"].to_numpy())  # noqa: B023 - called at once
        print(f"{profile}: oracle and peers done for {cutoff}", file=sys.stderr, flush=True)
    per_origin = pd.DataFrame(rows)
    means = per_origin.groupby("model", sort=False)[["rmse", "mae", "bias", "wape", "top10_capture"]].mean()

    cwd = os.getcwd()
    os.chdir(work)  # the experiment's MLflow runs and tuned-params lookups stay in the throwaway directory
    try:
        t = time.perf_counter()
        models = args.models.split(",") if args.models else None
        res = api.execute(api.plan_experiment(cfg, models=models), out_dir=work / profile / "out",
                          transactions=tx_obj, store=store,
                          progress=lambda m: print(f"{profile}: {m}", file=sys.stderr, flush=True))
        spend_s = time.perf_counter() - t
    finally:
        os.chdir(cwd)
    board = res.leaderboard.set_index("model")
    champ = res.champion
    preds = pd.read_parquet(res.paths["predictions"])
    champ_bias = [api.origin_metrics(g["y_true"].to_numpy(), g["y_pred"].to_numpy())["bias"]
                  for _, g in preds[preds["model"] == champ].groupby("cutoff")]
    best_single, single_ci = champion_vs_best_single(api, preds, board, champ, seed=cfg.seed)
    best_peer = means.loc[list(PEERS), "rmse"].idxmin()
    peer_rmse, champ_rmse = means.loc[best_peer, "rmse"], board.loc[champ, "rmse"]
    oracle_rmse, bayes_rmse = means.loc["oracle", "rmse"], means.loc[BAYES, "rmse"]
    return {
        "profile": profile, "means": means, "board": board, "champion": champ, "best_peer": best_peer,
        "gap_closed": (peer_rmse - champ_rmse) / (peer_rmse - oracle_rmse),
        "bayes_gap_closed": (peer_rmse - bayes_rmse) / (peer_rmse - oracle_rmse),
        "headroom_closed": (peer_rmse - champ_rmse) / (peer_rmse - bayes_rmse),
        "champion_bias": float(np.mean(champ_bias)), "champion_bias_by_origin": champ_bias,
        "best_single": best_single, "single_ci": single_ci,
        "timing": f"synth {synth_s:.0f} s; spendlab experiment ({len(board)} models) {spend_s:.0f} s; "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
        "n_users": int(store.features(cfg.origins("test")[-1]).shape[0]),
        "penalized": penalized,
    }


def champion_vs_best_single(api: SimpleNamespace, preds: pd.DataFrame, board: pd.DataFrame, champ: str, *,
                            seed: int) -> tuple[str, tuple[float, float, float]]:
    """The best single registry model on test (not a combination, not a baseline) and the champion's
    test RMSE minus its, with the 95% paired bootstrap interval over users stratified by origin."""
    singles = [m for m in board.index if m not in api.COMBINERS and m not in api.BASELINES]
    best = str(board.loc[singles, "rmse"].idxmin())
    if best == champ:
        return best, (0.0, 0.0, 0.0)
    rows = preds[preds["model"].isin([champ, best])].assign(split="test")
    rows = rows.sort_values(["model", "cutoff", "user_id"], kind="stable", ignore_index=True)
    by_model = {m: g.reset_index(drop=True) for m, g in rows.groupby("model", sort=False)}
    boot = api.bootstrap_rmse(by_model, split="test", n_boot=1000, seed=seed)
    lo, hi = api.delta_interval(boot, champ, best)
    return best, (float(board.loc[champ, "rmse"] - board.loc[best, "rmse"]), lo, hi)


def lifetimes_peer(hist: pd.DataFrame, cutoff: dt.date, users: np.ndarray, days: int,
                   penalized: list[tuple[dt.date, float]]) -> np.ndarray:
    """BG/NBD + Gamma-Gamma as on CDNOW; where the unpenalized fit does not converge (low churn
    drives BG/NBD's a, b to infinity), refit with the growing L2 penalties spendlab's own
    ``bgnbd_gg`` tries (what lifetimes' error message suggests), recording the cutoff."""
    from lifetimes.utils import ConvergenceError

    for penalizer in (0.0, 1e-3, 1e-2, 1e-1):
        try:
            pred = peer_lifetimes(hist, cutoff, users, days, penalizer=penalizer)
        except ConvergenceError:
            continue
        if penalizer:
            penalized.append((cutoff, penalizer))
        return pred
    raise RuntimeError(f"lifetimes BG/NBD + Gamma-Gamma did not converge at {cutoff} even with an L2 penalty of 0.1")


def report(r: dict[str, object]) -> str:
    means, board, champ = r["means"], r["board"], r["champion"]
    lines = [f"### Profile `{r['profile']}`", "",
             "| model | kind | mean test RMSE | MAE | bias | WAPE | top-10% capture |", "|---|---|---|---|---|---|---|"]
    kinds = {"oracle": "limit (knows the latent parameters)", BAYES: "limit (knows the generator, sees the data)"}
    table = [(name, kinds.get(name, "peer"), m) for name, m in means.iterrows()]
    table += [(name, "spendlab champion" if name == champ else "spendlab", m) for name, m in board.iterrows()]
    for name, kind, m in sorted(table, key=lambda x: x[2]["rmse"]):
        lines.append(f"| {name} | {kind} | {m['rmse']:.3f} | {m['mae']:.3f} | {m['bias']:+.3f} | {m['wape']:.3f} | "
                     f"{m['top10_capture']:.3f} |")
    peer, oracle, bayes = means.loc[r["best_peer"], "rmse"], means.loc["oracle", "rmse"], means.loc[BAYES, "rmse"]
    by_origin = ", ".join(f"{b:+.1%}" for b in r["champion_bias_by_origin"])
    lines += ["", f"Champion `{champ}` (chosen on the validation origins): RMSE {board.loc[champ, 'rmse']:.3f}; "
              f"best peer {r['best_peer']} {peer:.3f}; oracle {oracle:.3f}; Bayes limit {bayes:.3f}. **Gap closed "
              f"{r['gap_closed']:.1%}** (the Bayes limit closes {r['bayes_gap_closed']:.1%}: no forecaster of "
              f"the data can expect more); of the headroom to the Bayes limit the champion closes "
              f"**{r['headroom_closed']:.1%}**; champion mean per-origin bias **{r['champion_bias']:+.2%}** "
              f"(by origin: {by_origin}). Against the best single registry model on test, `{r['best_single']}`: "
              f"{r['single_ci'][0]:+.3f} [{r['single_ci'][1]:+.3f}, {r['single_ci'][2]:+.3f}] (champion - it, 95% "
              f"paired bootstrap). Users at the last test cutoff: {r['n_users']:,}."
              + (" The lifetimes peer needed an L2 penalty to converge at: "
                 + ", ".join(f"{c} ({pen:g})" for c, pen in r["penalized"]) + "." if r["penalized"] else ""), "",
              f"Wall time: {r['timing']}.", ""]
    return "\n".join(lines)


def world_arguments(ap: argparse.ArgumentParser) -> None:
    """The synthetic worlds' options (shared with bayes_headroom_check.py)."""
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profiles", default="default,grocery")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    world_arguments(ap)
    ap.add_argument("--train-origins", default="all", type=lambda v: v if v == "all" else int(v),
                    help="training origins per fit: 'all' (CDNOW's rule: every earlier origin with a known "
                         "target) or the latest N")
    ap.add_argument("--models", default=None, help="spendlab models to run (default: every registry key)")
    ap.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.months < 13:
        ap.error("--months must be at least 13 (6 training, 3 validation and 8 test origins with overlap)")
    api = spendlab_api()
    sections = []
    with tempfile.TemporaryDirectory(prefix="spendlab-accuracy-synth-") as tmp:
        for profile in args.profiles.split(","):
            sections.append(report(run_profile(api, profile, args, Path(tmp))))
            # sys.__stdout__, not print's default: lifetimes fits on parallel backtest threads wrap
            # themselves in contextlib.redirect_stdout, which is process-global, and overlapping
            # exits can leave sys.stdout pointing at a discarded buffer.
            print(sections[-1], file=sys.__stdout__, flush=True)
    if args.write_results:
        write_results(args, "\n".join(sections))
    return 0


def write_results(args: argparse.Namespace, body: str) -> None:
    """Make this run the current ``accuracy_synth`` section of RESULTS.md (the one it replaces goes to HISTORY.md)."""
    from run_all import record

    record("accuracy_synth", "\n".join([
        "### accuracy_synth", "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/accuracy_synth.py --users {args.users} --months "
        f"{args.months} --seed {args.seed} --train-origins {args.train_origins} --write-results`  ",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; protocol as CDNOW's (next calendar month, "
        f"training origins: {args.train_origins}, 3 validation then 8 test month-end cutoffs, the last target = the data's last "
        "month). The oracle is `datasets synth --oracle` (docs/synthetic-data.md); gap closed = (best peer - champion) / "
        "(best peer - oracle), on mean test RMSE.", "", body]))


if __name__ == "__main__":
    raise SystemExit(main())
