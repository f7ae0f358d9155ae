"""Experiment speed on CDNOW: every registry model and ``--models lightgbm``, with same-run anchors.

Each spendlab run is the command a user types (``spendlab experiment run
experiments/cdnow_next_month.yaml [--models lightgbm] --profile``) in a fresh process with a fresh
MLflow store, timed from outside (wall time, and the CPU time of the process and its children). The
``--models lightgbm`` run is repeated with the feature cache filled by the first run (``cache warm``).
The stages that took longest come from the run's own ``--profile`` table (seconds summed over threads).

Anchors, measured in the same run on the same origins (the experiment's 8 test cutoffs):

- ``lifetimes BG/NBD + Gamma-Gamma``: fitted at every test cutoff on the transactions up to it
  (``benchmarks/accuracy_cdnow.py``'s peer);
- ``mlforecast LightGBM cross_validation``: one ``MLForecast.cross_validation`` over the monthly panel,
  ``n_windows`` = the test cutoffs, ``h=1``, refitted per window (lags 1-6, rolling mean 3).

``--users-every K`` keeps every K-th customer (a small run that proves the benchmark works; figures
from it are not the acceptance figures). Speed figures are only results on an idle machine.

Run: ``.venv/bin/python benchmarks/bench_experiment.py [--runs all,lightgbm] [--users-every K] [--skip-anchors]``
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "cdnow_next_month.yaml"
SPENDLAB = Path(sys.executable).parent / "spendlab"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cdnow_frame(every: int) -> pd.DataFrame:
    """CDNOW as ``user_id, ts, amount`` (every ``every``-th customer), read with pandas."""
    from spendlab.io.builtin import builtin_path

    df = pd.read_csv(builtin_path("cdnow"), sep=r"\s+", header=0, names=["user_id", "date", "n", "amount"],
                     dtype={"user_id": str, "date": str})
    df = df[df["user_id"].astype(int) % every == 0]
    return pd.DataFrame({"user_id": df["user_id"], "ts": pd.to_datetime(df["date"], format="%Y%m%d"),
                         "amount": df["amount"].astype(float)})


def experiment_file(work: Path, every: int) -> Path:
    """The experiment YAML, pointed at a subset file when ``every`` > 1."""
    if every == 1:
        return EXPERIMENT
    from spendlab.io.builtin import builtin_path

    lines = builtin_path("cdnow").read_text().splitlines(keepends=True)
    subset = work / "cdnow_subset.txt"
    keep = [ln for ln in lines[1:] if ln.split() and int(ln.split()[0]) % every == 0]
    subset.write_text(lines[0] + "".join(keep))  # the header line, then every K-th customer's rows
    spec = yaml.safe_load(EXPERIMENT.read_text())
    spec["dataset"] = {"input": str(subset), "format": "cdnow", "name": f"cdnow_every_{every}"}
    path = work / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_spendlab(work: Path, exp: Path, models: str | None, label: str) -> dict[str, object]:
    """One ``spendlab experiment run --profile`` in its own process; wall and CPU seconds, top stages.

    Runs in ``work`` (its feature cache is ``work/outputs/.feature_cache``: empty on a first run).
    """
    work.mkdir(parents=True, exist_ok=True)
    cmd = [str(SPENDLAB), "experiment", "run", str(exp), "--out", str(work / f"out_{label.replace(' ', '_')}"),
           "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--profile", *(["--models", models] if models else [])]
    cpu0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    board_txt, prof_txt = proc.stdout.split("# where the time went", 1)
    board = pd.read_csv(io.StringIO(board_txt.split("\n", 1)[1].split("champion:", 1)[0]))
    prof = pd.read_csv(io.StringIO(prof_txt.split("\n", 1)[1]))
    stages = prof.groupby("stage")["seconds"].sum().sort_values(ascending=False)
    return {"run": label, "wall": wall, "cpu": cpu, "board": board,
            "top": ", ".join(f"{k} {v:.1f}" for k, v in stages.head(5).items())}


def anchors(tx: pd.DataFrame, cutoffs: list) -> list[dict[str, object]]:
    """Both anchors on the test cutoffs: seconds and mean RMSE over the origins."""
    from accuracy_cdnow import monthly_actuals, monthly_panel, peer_lifetimes
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    out = []
    t0, c0, rmses = time.perf_counter(), time.process_time(), []
    for c in cutoffs:
        hist = tx[tx["ts"] < pd.Timestamp(c) + pd.Timedelta(days=1)]
        users = np.sort(hist["user_id"].unique())
        days = ((pd.Timestamp(c) + pd.offsets.MonthEnd(1)) - pd.Timestamp(c)).days
        p = peer_lifetimes(hist, c, users, days)
        rmses.append(float(np.sqrt(np.mean((monthly_actuals(tx, c, users) - p) ** 2))))
    out.append({"run": "anchor: lifetimes BG/NBD + Gamma-Gamma, each test origin", "wall": time.perf_counter() - t0,
                "cpu": time.process_time() - c0, "rmse": float(np.mean(rmses))})
    last = (pd.Timestamp(cutoffs[-1]) + pd.offsets.MonthEnd(1)).date()
    panel = monthly_panel(tx[tx["ts"] <= pd.Timestamp(last) + pd.Timedelta(days=1)], last)
    t0, c0 = time.perf_counter(), time.process_time()
    fc = MLForecast(models={"lgb": LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=31,
                                                 random_state=0, n_jobs=1, verbose=-1)},
                    freq="MS", lags=list(range(1, 7)), lag_transforms={1: [RollingMean(window_size=3)]})
    cv = fc.cross_validation(panel, n_windows=len(cutoffs), h=1, step_size=1, static_features=[], dropna=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cv["err2"] = (cv["y"] - cv["lgb"].clip(lower=0)) ** 2
    rmse = float(np.sqrt(cv.groupby("cutoff")["err2"].mean()).mean())
    out.append({"run": f"anchor: mlforecast LightGBM cross_validation ({cv['cutoff'].nunique()} windows)",
                "wall": wall, "cpu": cpu, "rmse": rmse})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="all,lightgbm", help="all (every registry model) and/or lightgbm")
    ap.add_argument("--users-every", type=int, default=1, help="keep every K-th customer (small runs)")
    ap.add_argument("--skip-anchors", action="store_true")
    args = ap.parse_args()
    from spendlab.jobs.plan import load_experiment

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench_experiment-") as tmp:
        work = Path(tmp)
        exp = experiment_file(work, args.users_every)
        for run in [r.strip() for r in args.runs.split(",") if r.strip()]:
            models = None if run == "all" else run
            rows.append(run_spendlab(work / run, exp, models, run))  # its own directory: the cache starts empty
            if run == "lightgbm":
                rows.append(run_spendlab(work / run, exp, models, "lightgbm, cache warm"))
        if not args.skip_anchors:
            cutoffs = load_experiment(EXPERIMENT).origins("test")
            rows += anchors(cdnow_frame(args.users_every), cutoffs)
    print(f"CDNOW{'' if args.users_every == 1 else f' (every {args.users_every}th customer)'}, "
          f"{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| run | wall s | CPU s | test RMSE | longest stages (s, summed over threads) |\n|---|---:|---:|---:|---|")
    for r in rows:
        board = r.get("board")
        rmse = r.get("rmse")
        if isinstance(board, pd.DataFrame):
            champ = board.loc[board["champion"], ["model", "rmse"]].iloc[0]
            rmse_txt = f"{champ['rmse']:.3f} ({champ['model']})"
        else:
            rmse_txt = f"{rmse:.3f}"
        print(f"| {r['run']} | {r['wall']:.1f} | {r['cpu']:.1f} | {rmse_txt} | {r.get('top', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
