"""bgnbd_gg's level on CDNOW's validation origins: which rows it is fitted on, which rescale (issue 18).

For each validation cutoff of experiments/cdnow_next_month.yaml (1997-07-31 .. 1997-09-30) and the
experiment's training window, prints the per-origin and mean RMSE, bias, normalized Gini and top-10%
capture of:

- ``all+rescale``: fitted on every stacked origin, x sum(y)/sum(fitted) over them (the old default);
- ``all``: fitted on every stacked origin, no rescale;
- ``latest+rescale``: fitted on the latest origin, x sum(y)/sum(fitted) over every stacked origin;
- ``latest+last-rescale``: fitted on the latest origin, x sum(y)/sum(fitted) over that origin only;
- ``latest``: fitted on the latest origin, no rescale (the default since issue 18);
- ``lifetimes at the cutoff``: benchmarks/accuracy_cdnow.py's peer (fitted on the data up to the cutoff).

It also prints sum(y)/sum(fitted) of the ``latest`` model on each training origin, and each variant's
mean-RMSE difference to ``latest`` with the 95% interval of spendlab's paired bootstrap over users
stratified by origin (1,000 replicates, seed 0). Validation only: choices are made here; test figures
come from benchmarks/accuracy_cdnow.py.

Run: ``nice -n 10 .venv/bin/python benchmarks/bgnbd_level_check.py``
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    from accuracy_cdnow import peer_lifetimes

    from spendlab.features.store import FeatureStore
    from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
    from spendlab.forecast.metrics import origin_metrics
    from spendlab.forecast.split import training_set
    from spendlab.io import load_transactions
    from spendlab.jobs.experiment import load_experiment
    from spendlab.models.customer_base import BgNbdGammaGamma, latest_origin_rows

    cfg = load_experiment(ROOT / "experiments" / "cdnow_next_month.yaml")
    tx_obj = load_transactions(cfg.dataset.input, cfg.dataset.format, config=cfg.reader)
    tx = tx_obj.to_pandas()
    tx["ts"] = tx["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    store = FeatureStore.from_source(tx_obj, freq=cfg.freq, horizon=cfg.horizon)
    rows, preds_all = [], []
    for cutoff in cfg.origins("validation"):
        X, y = training_set(store, cutoff, cfg.train_origins)
        X, X_c = X.drop(columns=["user_id"]), store.features(cutoff)
        users, X_c = X_c["user_id"].to_numpy(), X_c.drop(columns=["user_id"])
        y_c = store.target(cutoff)  # read only to score
        latest = BgNbdGammaGamma().fit(X, y)
        last = X.index.get_level_values("origin") == X.index.get_level_values("origin").max()
        last_scale = y[last].sum() / latest.predict(latest_origin_rows(X)).sum()
        hist = tx[tx["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1))]
        days = ((pd.Timestamp(cutoff) + pd.offsets.MonthEnd(1)) - pd.Timestamp(cutoff)).days
        preds = {
            "all+rescale": BgNbdGammaGamma(calibrate=True, fit_origin="all").fit(X, y).predict(X_c),
            "all": BgNbdGammaGamma(fit_origin="all").fit(X, y).predict(X_c),
            "latest+rescale": BgNbdGammaGamma(calibrate=True).fit(X, y).predict(X_c),
            "latest+last-rescale": latest.predict(X_c) * last_scale,
            "latest": latest.predict(X_c),
            "lifetimes at the cutoff": peer_lifetimes(hist, cutoff, users, days),
        }
        for name, p in preds.items():
            preds_all.append(pd.DataFrame({"model": name, "split": "validation", "cutoff": cutoff, "user_id": users,
                                           "y_true": y_c, "y_pred": p}))
            m = origin_metrics(y_c, p)
            rows.append({"variant": name, "cutoff": cutoff,
                         **{k: m[k] for k in ("rmse", "bias", "gini_norm", "top10_capture")}})
        origin = X.index.get_level_values("origin")
        ratios = {str(o.date()): round(float(y[origin == o].sum() / latest.predict(X[origin == o]).sum()), 3)
                  for o in origin.unique()}
        print(f"{cutoff}: sum(y)/sum(fitted) of `latest` per training origin {ratios}", flush=True)
    table = pd.DataFrame(rows)
    order = list(dict.fromkeys(table["variant"]))
    print(table.pivot(index="variant", columns="cutoff", values=["rmse", "bias"]).loc[order].round(4).to_string())
    means = table.groupby("variant", sort=False)[["rmse", "bias", "gini_norm", "top10_capture"]].mean()
    allp = pd.concat(preds_all, ignore_index=True)
    boot = bootstrap_rmse({m: g.reset_index(drop=True) for m, g in allp.groupby("model", sort=False)},
                          split="validation", n_boot=1000, seed=0)
    means["rmse - latest [95% CI]"] = [
        f"{means.loc[v, 'rmse'] - means.loc['latest', 'rmse']:+.4f} "
        "[{:+.4f}, {:+.4f}]".format(*delta_interval(boot, v, "latest")) for v in means.index]
    print(means.round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
