"""The main job: validate -> describe -> tune -> experiment -> promote -> score, on one dataset.

Driven by ``configs/pipeline.yaml``. Each stage is a function of the resolved config and what
earlier stages returned; the job prints where everything is at the end.

Tuning runs before the experiment (it reads the validation origins only, so it needs nothing
from the experiment run), which makes the whole job idempotent: on a rerun the study is already
complete, the tuned parameters are the same, the experiment picks them up, the champion has the
same fingerprint, and no new model version is registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spendlab.config import StrictModel
from spendlab.io.atomic import atomic_write_text
from spendlab.io.load import validation_summary
from spendlab.jobs.describe import run_describe
from spendlab.jobs.experiment import execute, feature_store, load_dataset, load_experiment
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.score import score
from spendlab.jobs.tune import tune_experiment
from spendlab.models.base import usable_cores
from spendlab.tracking import runs as tracking
from spendlab.tracking.scorer import load_model

if TYPE_CHECKING:
    from rich.console import Console


class TuneStage(StrictModel):
    model: str = "lightgbm"
    trials: int = 4
    timeout: float | None = None  # a timeout would make reruns resume to more trials: not idempotent
    # Trials at once; None = the usable cores. A budget of at most 3 trials gives the same trials
    # as one job (see spendlab.jobs.tune.tune).
    jobs: int | None = None


class PipelineConfig(StrictModel):
    """``configs/pipeline.yaml``."""

    experiment: Path = Path("experiments/cdnow_next_month.yaml")
    models: list[str] | None = None  # None = the experiment's own list
    out_dir: Path = Path("outputs")
    tune: TuneStage | None = TuneStage()
    promote: bool = True
    score: bool = True
    tracking_uri: str | None = None
    country: str = "US"


Stage = Callable[[PipelineConfig, dict[str, Any]], dict[str, Any]]


def _load(cfg: PipelineConfig, state: dict[str, Any]) -> Any:

    if "experiment" not in state:
        state["experiment"] = load_experiment(cfg.experiment)
    if "tx" not in state:
        state["tx"] = load_dataset(state["experiment"])
    return state["tx"]


def _store(cfg: PipelineConfig, state: dict[str, Any]) -> Any:
    """One FeatureStore for tune, experiment and promote: each cutoff's features are built once."""

    if "store" not in state:
        state["store"] = feature_store(state["experiment"], _load(cfg, state))
    return state["store"]


def stage_validate(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    tx = _load(cfg, state)
    summary = validation_summary(tx)
    path = cfg.out_dir / "validation.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return {"path": path, "line": f"{summary['users']:,} users, {tx.report.accepted:,} rows accepted, "
                                  f"{tx.report.rejected:,} rejected, spend {summary['total_spend']:,.2f}"}


def stage_describe(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    out = cfg.out_dir / "describe"
    tx = _load(cfg, state)
    result = run_describe(tx, out, country=cfg.country, net_refunds=state["experiment"].reader.refunds == "net")
    return {"path": out / "report.html", "line": f"report {out / 'report.html'}", "result": result}


def stage_tune(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    assert cfg.tune is not None
    r = tune_experiment(cfg.experiment, model_key=cfg.tune.model, n_trials=cfg.tune.trials,
                        timeout=cfg.tune.timeout, tracking_uri=cfg.tracking_uri, jobs=cfg.tune.jobs or usable_cores(),
                        transactions=_load(cfg, state), store=_store(cfg, state))
    return {"path": r.params_path, "line": f"{r.study_name}: {r.n_complete} trials, best validation RMSE "
                                           f"{r.best_value:.3f} -> {r.params_path}"}


def stage_experiment(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    out = cfg.out_dir / "experiment"
    tx = _load(cfg, state)
    result = execute(state["experiment"], experiment_path=cfg.experiment, models=cfg.models, out_dir=out,
                     tracking_uri=cfg.tracking_uri, transactions=tx, store=_store(cfg, state))
    return {"path": out / "leaderboard.csv", "line": f"champion {result.champion}; leaderboard {out / 'leaderboard.csv'}"}


def stage_promote(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    _load(cfg, state)
    outcome = promote_experiment(state["experiment"].name, tracking_uri=cfg.tracking_uri, transactions=state["tx"],
                                 store=_store(cfg, state))
    path = cfg.out_dir / "promotion.json"
    atomic_write_text(path, json.dumps({"promoted": outcome.promoted, "version": outcome.version,
                                        "previous_champion": outcome.previous_champion,
                                        "new_version": outcome.new_version, "reason": outcome.reason},
                                       indent=2) + "\n")
    return {"path": path, "line": f"spendlab-next-month v{outcome.version}: {outcome.reason}"}


def stage_score(cfg: PipelineConfig, state: dict[str, Any]) -> dict[str, Any]:

    out = cfg.out_dir / "scores.parquet"
    model = load_model(tracking_uri=cfg.tracking_uri)
    r = score(_load(cfg, state), out=out, model=model, progress=False)
    return {"path": out, "line": f"{r.rows_out:,} users scored for {r.target_period} "
                                 f"(model v{r.model_version}; total {r.total_prediction:,.2f})"}


def stages(cfg: PipelineConfig) -> list[tuple[str, Stage]]:
    out: list[tuple[str, Stage]] = [("validate", stage_validate), ("describe", stage_describe)]
    if cfg.tune is not None:
        out.append(("tune", stage_tune))
    out.append(("experiment", stage_experiment))
    if cfg.promote:
        out.append(("promote", stage_promote))
    if cfg.score:
        out.append(("score", stage_score))
    return out


def run_pipeline(cfg: PipelineConfig, console: Console | None = None) -> dict[str, dict[str, Any]]:
    """Run every stage in order with a progress display; return what each stage wrote."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True)
    results: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {}
    plan = stages(cfg)
    start = time.perf_counter()

    # A previous job killed with -9 left its MLflow runs RUNNING: end them KILLED first.
    orphans = tracking.mark_orphaned_runs(tracking_uri=cfg.tracking_uri)
    if orphans:
        console.print(f"marked {len(orphans)} orphaned MLflow run(s) of a killed job KILLED", highlight=False)
    for i, (name, fn) in enumerate(plan, 1):
        t0 = time.perf_counter()
        with console.status(f"[{i}/{len(plan)}] {name} ..."):
            results[name] = fn(cfg, state)
        console.print(f"[green]done[/] [{i}/{len(plan)}] {name:<10} {time.perf_counter() - t0:6.1f}s  "
                      f"{escape(str(results[name]['line']))}", highlight=False)
    console.print(f"\nfinished in {time.perf_counter() - start:.0f}s. Where everything is:", highlight=False)
    for name in ("describe", "experiment", "score", "promote", "validate"):
        if name in results:
            console.print(f"  {name:<10} {escape(str(results[name]['path']))}", highlight=False)
    console.print("  runs       make ui  (MLflow at http://127.0.0.1:5000)", highlight=False)
    return results
