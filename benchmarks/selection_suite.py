"""Selection suite: every champion-selection rule scored on the same backtests, per world and on CDNOW.

For each world (``default``, ``grocery``, ``habit``, ``mixed``: ``spendlab datasets synth``,
``--users`` x ``--months``), CDNOW (experiments/cdnow_next_month.yaml) and ``millions_weekly``
(experiments/millions_weekly.yaml: weekly, horizon 4, on the millions card data its comment makes;
``--weekly-users`` overrides its size), the experiment runs once with ``validation: auto`` (every
origin the data allow before the first test cutoff) and every rule of ``spendlab.forecast.selection``
picks from the same validation errors (the parent run's ``selection_pick.<rule>`` tags). A rule's
**test regret** is its pick's mean test RMSE over the best mean test RMSE of any model of the run
(1 = it picked the best).

Peers, computed in the same run at every test cutoff on the data up to it: lifetimes BG/NBD +
Gamma-Gamma, mlforecast + LightGBM on lags and a rolling mean, the mean of the last 3 periods and
the last period (monthly: the functions of benchmarks/accuracy_cdnow.py; other frequencies and
horizons: benchmarks/peers.py, with periods of ``horizon`` weeks). ``champion - best peer`` is the
champion's mean test RMSE minus the best peer's, with the 95% paired bootstrap interval over users
stratified by origin (``spendlab.forecast.bootstrap``). Only the tables reach stdout: third-party
prints while models and peers fit go to stderr.

Run: ``nice -n 10 .venv/bin/python benchmarks/selection_suite.py [--users 20000] [--months 24]
[--test-origins 8] [--worlds default,grocery,habit,mixed,cdnow,millions_weekly] [--weekly-users N]
[--models a,b] [--write-results] [--merge-json PATH]``

``--merge-json PATH`` keeps each measured world in PATH: a run of one world (say ``--worlds
millions_weekly``) then prints and records its tables with the other worlds saved there.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import peers as peers_mod
import yaml
from accuracy_cdnow import monthly_actuals, peer_mlforecast
from accuracy_synth import lifetimes_peer, month_end

ROOT = Path(__file__).resolve().parents[1]
WEEKLY = ROOT / "experiments" / "millions_weekly.yaml"
PEERS = ("lifetimes BG/NBD + Gamma-Gamma", "mlforecast + LightGBM (lags 1-6, rolling mean 3)", "3-month mean",
         "last month")


def weekly_spec(data: Path, args: argparse.Namespace) -> dict[str, object]:
    """experiments/millions_weekly.yaml on its own data, made as the YAML's comment says (``--weekly-users``)."""
    from spendlab.jobs.datasets import synth_transactions

    text = WEEKLY.read_text()
    size = {k: re.search(rf"--{k} (\S+)", text).group(1) for k in ("users", "months", "start")}
    users = args.weekly_users or int(size["users"])
    synth_transactions(data, users=users, months=int(size["months"]), fmt="millions", start=size["start"],
                       seed=args.seed)
    spec = yaml.safe_load(text)
    spec["dataset"] = {**spec["dataset"], "input": str(data)}
    return spec


def experiment(world: str, data: Path, args: argparse.Namespace) -> object:
    """The experiment of one world: CDNOW's or the weekly millions YAML, or CDNOW's protocol on synthetic data."""
    from spendlab.forecast.protocol import ExperimentConfig
    from spendlab.jobs.datasets import synth_transactions

    if world == "cdnow":
        spec = yaml.safe_load((ROOT / "experiments" / "cdnow_next_month.yaml").read_text())
    elif world == "millions_weekly":
        spec = weekly_spec(data, args)
    else:
        synth_transactions(data, users=args.users, months=args.months, start=args.start, seed=args.seed, profile=world)
        start = dt.date.fromisoformat(args.start)
        spec = {"name": f"suite_{world}", "dataset": {"input": str(data), "format": "generic", "name": world},
                "freq": "month", "horizon": 1, "train_origins": args.train_origins,
                "test": {"start": month_end(start, args.months - 1 - args.test_origins).isoformat(),
                         "end": month_end(start, args.months - 2).isoformat()}}
    spec.update(validation="auto", models=args.models.split(",") if args.models else [])
    return ExperimentConfig.model_validate(spec)


def monthly_peers(tx: pd.DataFrame, X: pd.DataFrame, cutoff: dt.date, y: np.ndarray) -> dict[str, np.ndarray]:
    """The monthly peers (horizon 1) of accuracy_cdnow.py / accuracy_synth.py at one cutoff."""
    users = X["user_id"].to_numpy()
    np.testing.assert_allclose(y, monthly_actuals(tx, cutoff, users), rtol=1e-9)  # independent pandas target
    target = cutoff + dt.timedelta(days=1)
    hist = tx[tx["ts"] < pd.Timestamp(target)]
    days = (pd.Timestamp(target) + pd.offsets.MonthEnd(0)).day
    lags = X[["spend_lag1", "spend_lag2", "spend_lag3"]].to_numpy()
    return {PEERS[0]: lifetimes_peer(hist, cutoff, users, days, []), PEERS[1]: peer_mlforecast(hist, cutoff, users),
            PEERS[2]: lags.mean(axis=1), PEERS[3]: lags[:, 0]}


def horizon_peers(tx: pd.DataFrame, users: np.ndarray, cutoff: dt.date, y: np.ndarray, freq: str,
                  horizon: int) -> dict[str, np.ndarray]:
    """The frequency-generic peers of benchmarks/peers.py at one cutoff (any ``freq`` and ``horizon``)."""
    np.testing.assert_allclose(y, peers_mod.actuals(tx, cutoff, users, freq, horizon), rtol=1e-9)
    hist = tx[tx["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
    unit = f"{horizon} {freq}s"
    return {PEERS[0]: peers_mod.peer_lifetimes(hist, cutoff, users, freq, horizon, []),
            f"mlforecast + LightGBM (lags 1-8, rolling mean 4; h={horizon}, summed)":
                peers_mod.peer_mlforecast(hist, cutoff, users, freq, horizon),
            f"mean of the last 3 x {unit}": peers_mod.last_periods(hist, cutoff, users, freq, horizon, k=3),
            f"last {unit}": peers_mod.last_periods(hist, cutoff, users, freq, horizon, k=1)}


def peers(tx: pd.DataFrame, store: object, cfg: object) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per-origin RMSE of every peer and its test predictions (``cutoff, user_id, y_true, y_pred``).

    Third-party prints while the peers fit (scipy's optimizer messages through lifetimes) go to stderr:
    stdout carries only the tables.
    """
    from spendlab.forecast.metrics import origin_metrics

    rows, preds = [], {}
    for cutoff in cfg.origins("test"):
        X = store.features(cutoff)
        users = X["user_id"].to_numpy()
        y = store.target(cutoff)
        with stdout_to_stderr():
            got = (monthly_peers(tx, X, cutoff, y) if (cfg.freq, cfg.horizon) == ("month", 1)
                   else horizon_peers(tx, users, cutoff, y, cfg.freq, cfg.horizon))
        for name, p in got.items():
            rows.append({"model": name, "cutoff": cutoff, "rmse": origin_metrics(y, p)["rmse"]})
            preds.setdefault(name, []).append(pd.DataFrame({"cutoff": cutoff, "user_id": users, "y_true": y,
                                                            "y_pred": p}))
    return pd.DataFrame(rows), {k: pd.concat(v, ignore_index=True) for k, v in preds.items()}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python's ``print`` and C-level writes to fd 1) to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def champion_vs_peer(champ: pd.DataFrame, peer: pd.DataFrame, seed: int) -> tuple[float, float]:
    """95% paired bootstrap interval of RMSE(champion) - RMSE(peer) over the same users and origins."""
    from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval

    key = ["cutoff", "user_id"]
    c = champ.assign(cutoff=pd.to_datetime(champ["cutoff"]).dt.date).sort_values(key, ignore_index=True)
    p = peer.sort_values(key, ignore_index=True)
    assert c["user_id"].tolist() == p["user_id"].tolist(), "champion and peer scored other users"
    boot = bootstrap_rmse({"champion": c.assign(split="test"), "peer": p.assign(split="test", cutoff=c["cutoff"])},
                          split="test", n_boot=1000, seed=seed)
    return delta_interval(boot, "champion", "peer")


def run_world(world: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    from mlflow import MlflowClient

    from spendlab.io import load_transactions
    from spendlab.jobs.experiment import execute, feature_store
    from spendlab.jobs.plan import plan_experiment

    data = work / world / ("millions_demo.csv" if world == "millions_weekly" else "tx.parquet")
    cfg = experiment(world, data, args)
    tx_obj = load_transactions(cfg.dataset.input, cfg.dataset.format)
    tx = tx_obj.to_pandas()
    if tx["ts"].dt.tz is not None:
        tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    plan = plan_experiment(cfg)
    store = feature_store(plan, tx_obj)
    t0 = time.perf_counter()
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    cwd = os.getcwd()
    os.chdir(work)  # tuned-params lookups and MLflow artifacts stay in the throwaway directory
    try:
        with stdout_to_stderr():
            res = execute(plan, out_dir=work / world / "out", tracking_uri=uri, transactions=tx_obj, store=store,
                          progress=lambda m: print(f"{world}: {m}", file=sys.stderr, flush=True))
    finally:
        os.chdir(cwd)
    seconds = time.perf_counter() - t0
    tags = MlflowClient(tracking_uri=uri).get_run(res.parent_run_id).data.tags
    board = res.leaderboard.set_index("model")
    peer_rmse, peer_preds = peers(tx, store, cfg)
    peer_means = peer_rmse.groupby("model")["rmse"].mean()
    print(f"{world}: peers' mean test RMSE\n{peer_means.round(3).to_string()}", file=sys.stderr, flush=True)
    best_peer = str(peer_means.idxmin())
    test_preds = pd.read_parquet(res.paths["predictions"])
    lo, hi = champion_vs_peer(test_preds[test_preds["model"] == res.champion], peer_preds[best_peer], cfg.seed)
    best_test = float(board["rmse"].min())
    picks = {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("selection_pick.")}
    return {"world": world, "champion": res.champion, "champion_rmse": float(board.loc[res.champion, "rmse"]),
            "best_model": str(board["rmse"].idxmin()), "best_test": best_test, "picks": picks,
            "regret": {r: float(board.loc[m, "rmse"]) / best_test for r, m in picks.items()},
            "n_val": int(tags["selection_origins"]), "peer_means": peer_means, "best_peer": best_peer,
            "delta": float(board.loc[res.champion, "rmse"] - peer_means[best_peer]), "ci": (lo, hi),
            "seconds": seconds, "users": int(store.features(cfg.origins("test")[-1]).shape[0])}


def tables(results: list[dict[str, object]]) -> str:
    """The regret table (rules x worlds, and the mean) and the champion-vs-peers table, as Markdown."""
    worlds = [r["world"] for r in results]
    rules = list(results[0]["regret"])
    lines = ["| rule | " + " | ".join(worlds) + " | mean regret |", "|---|" + "---|" * (len(worlds) + 1)]
    means = {rule: float(np.mean([r["regret"][rule] for r in results])) for rule in rules}
    for rule in sorted(rules, key=lambda k: (means[k], k)):
        cells = [f"{r['regret'][rule]:.4f} ({r['picks'][rule]})" for r in results]
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | **{means[rule]:.4f}** |")
    lines += ["", "| world | users | validation origins | champion | test RMSE | best model (test) | best peer | "
              "peer RMSE | champion - best peer [95% CI] | wall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lo, hi = r["ci"]
        lines.append(f"| {r['world']} | {r['users']:,} | {r['n_val']} | {r['champion']} | {r['champion_rmse']:.3f} | "
                     f"{r['best_model']} ({r['best_test']:.3f}) | {r['best_peer']} | "
                     f"{r['peer_means'][r['best_peer']]:.3f} | {r['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                     f"{r['seconds']:.0f} s |")
    low = min(means.values())
    tied = sorted(k for k in means if abs(means[k] - low) < 5e-5)
    lines += ["", f"Lowest mean test regret ({low:.4f}): **{', '.join(tied)}**."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--test-origins", type=int, default=8)
    ap.add_argument("--train-origins", default=6, type=lambda v: v if v == "all" else int(v))
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worlds", default="default,grocery,habit,mixed,cdnow,millions_weekly")
    ap.add_argument("--weekly-users", type=int, default=None,
                    help="users of the millions_weekly world (default: the size in the YAML's comment)")
    ap.add_argument("--models", default=None, help="spendlab models to run (default: every registry key)")
    ap.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--merge-json", type=Path, default=None,
                    help="JSON of measured worlds: its worlds this run does not measure join the tables, and "
                         "the merged worlds are written back after every world")
    args = ap.parse_args()
    worlds = args.worlds.split(",")
    prior = [r for r in load_json(args.merge_json) if r["world"] not in worlds]
    results = prior
    with tempfile.TemporaryDirectory(prefix="spendlab-selection-suite-") as tmp:
        for world in worlds:
            results = [*results, run_world(world, args, Path(tmp))]
            if args.merge_json:
                save_json(results, args.merge_json)
            print(tables(results), file=sys.stderr, flush=True)  # progress: the tables so far
            if args.write_results:  # after every world: a long run that stops early keeps what it measured
                write_results(tables(results))
    print(tables(results), flush=True)  # the result, once (run_all.py records what is printed)
    return 0


def load_json(path: Path | None) -> list[dict[str, object]]:
    """The worlds saved by :func:`save_json` (none when ``path`` is None or does not exist yet)."""
    if path is None or not path.exists():
        return []
    return [{**r, "ci": tuple(r["ci"])} for r in json.loads(path.read_text())]


def save_json(results: list[dict[str, object]], path: Path) -> None:
    """Write the measured worlds to ``path`` atomically (a temporary file beside it, then a rename)."""
    rows = [{**r, "peer_means": {k: float(v) for k, v in dict(r["peer_means"]).items()},
             "ci": [float(x) for x in r["ci"]]} for r in results]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=1, default=float))
    os.replace(tmp, path)


def write_results(body: str) -> None:
    """Make this run the current ``selection_suite`` section of RESULTS.md."""
    from run_all import record_measured

    record_measured("selection_suite", about="Selection suite: test regret of every champion-selection rule on the same "
                    "backtests (validation: auto), and the champion against the peers computed in the same run.",
                    command=f"nice -n 10 .venv/bin/python benchmarks/selection_suite.py {' '.join(sys.argv[1:])}",
                    body=body)


if __name__ == "__main__":
    raise SystemExit(main())
