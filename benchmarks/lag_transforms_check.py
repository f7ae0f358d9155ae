"""Each optional lag transform measured on validation origins only: LightGBM with and without it.

For CDNOW (experiments/cdnow_next_month.yaml's validation origins) and the synthetic worlds
(``--users`` x ``--months``, 3 validation origins before the last 8 month ends), ``lightgbm`` is
backtested on the **validation** origins with the default feature set, then with each addition alone
(the expanding mean; exponentially weighted means at alpha 0.3 and 0.7 over 12 months) and with all
of them. The table gives the mean validation RMSE and its difference to the default, with the 95%
paired bootstrap interval. Test origins are never read.

Run: ``nice -n 10 .venv/bin/python benchmarks/lag_transforms_check.py [--users 2000] [--worlds cdnow,habit,mixed]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

import yaml
from accuracy_synth import month_end

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"default": {}, "expanding mean": {"expanding_mean": True},
            "ewm 0.3, 0.7": {"ewm_alphas": (0.3, 0.7)},
            "all": {"expanding_mean": True, "ewm_alphas": (0.3, 0.7)}}


def measure(world: str, args: argparse.Namespace, work: Path) -> list[str]:
    from spendlab.features import FeatureConfig
    from spendlab.forecast.backtest import run_backtest
    from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
    from spendlab.forecast.protocol import ExperimentConfig
    from spendlab.io import load_transactions
    from spendlab.jobs.datasets import synth_transactions

    if world == "cdnow":
        spec = yaml.safe_load((ROOT / "experiments" / "cdnow_next_month.yaml").read_text())
    else:
        data = work / world / "tx.parquet"
        synth_transactions(data, users=args.users, months=args.months, seed=0, profile=world)
        start = dt.date(2023, 1, 1)
        spec = {"name": world, "dataset": {"input": str(data), "format": "generic"}, "train_origins": 6,
                "validation": {"start": month_end(start, args.months - 12).isoformat(),
                               "end": month_end(start, args.months - 10).isoformat()},
                "test": {"dates": [month_end(start, args.months - 2).isoformat()]}}
    cfg = ExperimentConfig.model_validate(spec)
    tx = load_transactions(cfg.dataset.input, cfg.dataset.format)
    preds, means = {}, {}
    for name, extra in VARIANTS.items():
        fc = FeatureConfig(month=FeatureConfig().month.model_copy(update=extra))
        res = run_backtest(tx, experiment=cfg, model_key="lightgbm", origins="validation", feature_config=fc)
        preds[name], means[name] = res.predictions, res.means["validation_rmse"]
        print(f"{world}: {name} {means[name]:.4f}", file=sys.stderr, flush=True)
    boot = bootstrap_rmse(preds, split="validation", n_boot=1000, seed=0)
    rows = []
    for name in VARIANTS:
        lo, hi = delta_interval(boot, name, "default") if name != "default" else (0.0, 0.0)
        rows.append(f"| {world} | {name} | {means[name]:.4f} | {means[name] - means['default']:+.4f} "
                    f"[{lo:+.4f}, {hi:+.4f}] |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--worlds", default="cdnow,habit,mixed")
    args = ap.parse_args()
    lines = ["| data | features | validation RMSE | - default [95% CI] |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="spendlab-lag-transforms-") as tmp:
        for world in args.worlds.split(","):
            lines += measure(world, args, Path(tmp))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
