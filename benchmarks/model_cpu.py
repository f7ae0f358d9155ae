"""CPU seconds and mean RMSEs of one model's CDNOW backtest (every origin, one at a time), for A/B of a fit.

Prints one JSON line: the process CPU seconds (user + system) of ``run_backtest(..., origins="all")``
with BLAS on one thread and the features built beforehand (not timed), and the mean test and
validation RMSE (and each origin's RMSE). Compare two parameter sets in the same conditions (docs/performance.md).

Run: ``.venv/bin/python benchmarks/model_cpu.py KEY ['{"n_estimators": 75}'] [--cache DIR] [--zero-fraction F]
[--train-origins N]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from spendlab.forecast.backtest import run_backtest
from spendlab.jobs.auto_origins import resolve_plan
from spendlab.jobs.experiment import load_dataset
from spendlab.jobs.feature_cache import cached_store
from spendlab.jobs.plan import load_experiment, plan_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "cdnow_next_month.yaml"


def main() -> None:
    """Backtest one model with the given parameters and print its CPU seconds and RMSEs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("key")
    ap.add_argument("params", nargs="?", default="{}", help="JSON hyperparameters (default: the model's defaults)")
    ap.add_argument("--cache", type=Path, default=None, help="feature cache directory (default: none)")
    ap.add_argument("--zero-fraction", type=float, default=None,
                    help="train_zero_fraction (default: the experiment's)")
    ap.add_argument("--train-origins", type=int, default=None,
                    help="train_origins as a count of the latest training origins (default: the experiment's)")
    args = ap.parse_args()
    params = json.loads(args.params)
    plan = plan_experiment(load_experiment(EXPERIMENT))
    tx = load_dataset(plan.experiment)
    store = cached_store(plan, tx, args.cache)
    cfg = resolve_plan(plan, store.first_cutoff).experiment
    if args.zero_fraction is not None:
        cfg = cfg.model_copy(update={"train_zero_fraction": args.zero_fraction})
    if args.train_origins is not None:
        cfg = cfg.model_copy(update={"train_origins": args.train_origins})
    for c in cfg.origins("all"):
        store.features(c), store.target(c)
    t0, w0 = time.process_time(), time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        res = run_backtest(store, experiment=cfg, model_key=args.key, params=params, origins="all")
    print(json.dumps({"key": args.key, "params": params, "train_zero_fraction": cfg.train_zero_fraction,
                      "train_origins": str(cfg.train_origins), "cpu": round(time.process_time() - t0, 2),
                      "wall": round(time.perf_counter() - w0, 1), "test_rmse": res.means.get("test_rmse"),
                      "validation_rmse": res.means.get("validation_rmse"),
                      "rmse_by_origin": {str(r.cutoff): r.rmse for r in res.per_origin.itertuples()}}))


if __name__ == "__main__":
    main()
