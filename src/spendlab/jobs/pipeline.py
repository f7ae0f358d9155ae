"""The main job: validate -> describe -> tune -> experiment -> promote -> score, on one dataset.

Driven by ``configs/pipeline.yaml``, read into a :class:`PipelinePlan` before any stage runs. Each
stage is a function of the plan and what earlier stages returned; the job prints where everything is at the end.

Tuning runs before the experiment (it reads the validation origins only, so it needs nothing
from the experiment run), which makes the whole job idempotent: on a rerun the study is already
complete, the tuned parameters are the same, the experiment picks them up, the champion has the
same fingerprint, and no new model version is registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from spendlab.config import StrictModel
from spendlab.io.atomic import atomic_write_text
from spendlab.io.load import validation_summary
from spendlab.jobs.describe import run_describe
from spendlab.jobs.experiment import execute, load_dataset
from spendlab.jobs.feature_cache import cached_store
from spendlab.jobs.plan import ExperimentPlan, TunePlan, load_experiment, plan_experiment, plan_model, plan_tune
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.score import score
from spendlab.jobs.tune import execute_tune
from spendlab.settings import DEFAULT_HEARTBEAT, usable_cores
from spendlab.tracking.orphans import mark_orphaned_runs
from spendlab.tracking.scorer import load_model

if TYPE_CHECKING:
    from rich.console import Console


class TuneStage(StrictModel):
    """The pipeline's tune stage: the model to tune, its trial budget and its parallelism."""

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


@dataclass(frozen=True)
class PipelinePlan:
    """What the main job does, resolved from its YAML before any stage runs.

    Attributes
    ----------
    config : PipelineConfig
        The validated pipeline config.
    experiment : ExperimentPlan
        The experiment's plan as far as it is known before tuning: the tuned model's parameters are
        the tune stage's output, planned again when the experiment stage starts.
    tune : TunePlan or None
        The tuning study, if the job tunes.
    heartbeat : tuple of int
        The study's trial heartbeat interval and grace period, seconds (as ``spendlab tune`` runs it).
    """

    config: PipelineConfig
    experiment: ExperimentPlan
    tune: TunePlan | None
    heartbeat: tuple[int, int] = DEFAULT_HEARTBEAT

    def experiment_plan(self) -> ExperimentPlan:
        """Return the experiment's plan, with the tuned model's parameters as the tune stage left them."""
        key = self.tune.model_key if self.tune is not None else None
        if key is None or key not in self.experiment.models:
            return self.experiment
        tuned = plan_model(self.experiment.experiment, key, self.tune.tuned_dir)  # type: ignore[union-attr]
        return replace(self.experiment, models=MappingProxyType({**self.experiment.models, key: tuned}))


def plan_pipeline(cfg: PipelineConfig, *, heartbeat: tuple[int, int] = DEFAULT_HEARTBEAT) -> PipelinePlan:
    """Read the pipeline's experiment YAML (once) and plan its tuning and experiment.

    Parameters
    ----------
    cfg : PipelineConfig
        The validated ``configs/pipeline.yaml``.
    heartbeat : tuple of int
        The tuning study's trial heartbeat interval and grace period, seconds.

    Returns
    -------
    PipelinePlan
        The frozen plan :func:`run_pipeline` runs.

    Raises
    ------
    ConfigError
        The experiment, its feature set or a tuned-params file is invalid.
    """
    exp = load_experiment(cfg.experiment)
    tune = None
    if cfg.tune is not None:
        tune = plan_tune(exp, model_key=cfg.tune.model, n_trials=cfg.tune.trials, timeout=cfg.tune.timeout,
                         jobs=cfg.tune.jobs or usable_cores())
    return PipelinePlan(cfg, plan_experiment(exp, experiment_path=cfg.experiment, models=cfg.models), tune,
                        heartbeat)


Stage = Callable[[PipelinePlan, dict[str, Any]], dict[str, Any]]


def _load(plan: PipelinePlan, state: dict[str, Any]) -> Any:
    """Load the experiment's transactions, once for every stage."""
    if "tx" not in state:
        state["tx"] = load_dataset(plan.experiment.experiment)
    return state["tx"]


def _store(plan: PipelinePlan, state: dict[str, Any]) -> Any:
    """One FeatureStore for tune, experiment and promote.

    Each cutoff's features are built once, and kept under ``out_dir/.feature_cache`` for the next run on the
    same data and feature set.
    """
    if "store" not in state:
        state["store"] = cached_store(plan.experiment, _load(plan, state), plan.config.out_dir / ".feature_cache")
    return state["store"]


def stage_validate(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Validate the data; write ``validation.json``."""
    cfg = plan.config
    tx = _load(plan, state)
    summary = validation_summary(tx)
    path = cfg.out_dir / "validation.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return {"path": path, "line": f"{summary['users']:,} users, {tx.report.accepted:,} rows accepted, "
                                  f"{tx.report.rejected:,} rejected, spend {summary['total_spend']:,.2f}"}


def stage_describe(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Describe the data; write ``describe/report.html``."""
    cfg = plan.config
    out = cfg.out_dir / "describe"
    tx = _load(plan, state)
    result = run_describe(tx, out, country=cfg.country, net_refunds=plan.experiment.experiment.reader.refunds == "net")
    return {"path": out / "report.html", "line": f"report {out / 'report.html'}", "result": result}


def stage_tune(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Run the tuning study; its best parameters go to the tuned-params file."""
    assert plan.tune is not None
    r = execute_tune(plan.tune, tracking_uri=plan.config.tracking_uri, heartbeat=plan.heartbeat,
                     transactions=_load(plan, state), store=_store(plan, state))
    return {"path": r.params_path, "line": f"{r.study_name}: {r.n_complete} trials, best validation RMSE "
                                           f"{r.best_value:.3f} -> {r.params_path}"}


def stage_experiment(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Run the experiment on the parameters tuned so far; write the leaderboard."""
    cfg = plan.config
    out = cfg.out_dir / "experiment"
    tx = _load(plan, state)
    result = execute(plan.experiment_plan(), out_dir=out, tracking_uri=cfg.tracking_uri, transactions=tx,
                     store=_store(plan, state))
    return {"path": out / "leaderboard.csv", "line": f"champion {result.champion}; leaderboard {out / 'leaderboard.csv'}"}


def stage_promote(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Register the experiment's champion; write ``promotion.json``."""
    cfg = plan.config
    outcome = promote_experiment(plan.experiment.experiment.name, tracking_uri=cfg.tracking_uri,
                                 transactions=_load(plan, state), store=_store(plan, state))
    path = cfg.out_dir / "promotion.json"
    atomic_write_text(path, json.dumps({"promoted": outcome.promoted, "version": outcome.version,
                                        "previous_champion": outcome.previous_champion,
                                        "new_version": outcome.new_version, "reason": outcome.reason},
                                       indent=2) + "\n")
    return {"path": path, "line": f"spendlab-next-month v{outcome.version}: {outcome.reason}"}


def stage_score(plan: PipelinePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Score the next period with the champion; write ``scores.parquet``."""
    cfg = plan.config
    out = cfg.out_dir / "scores.parquet"
    model = load_model(tracking_uri=cfg.tracking_uri)
    r = score(_load(plan, state), out=out, model=model, progress=False)
    return {"path": out, "line": f"{r.rows_out:,} users scored for {r.target_period} "
                                 f"(model v{r.model_version}; total {r.total_prediction:,.2f})"}


def stages(cfg: PipelineConfig) -> list[tuple[str, Stage]]:
    """Return the stages ``cfg`` runs, in order."""
    out: list[tuple[str, Stage]] = [("validate", stage_validate), ("describe", stage_describe)]
    if cfg.tune is not None:
        out.append(("tune", stage_tune))
    out.append(("experiment", stage_experiment))
    if cfg.promote:
        out.append(("promote", stage_promote))
    if cfg.score:
        out.append(("score", stage_score))
    return out


def run_pipeline(plan: PipelinePlan, console: Console | None = None) -> dict[str, dict[str, Any]]:
    """Run every stage of ``plan`` in order with a progress display; return what each stage wrote."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True)
    results: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {}
    cfg = plan.config
    todo = stages(cfg)
    start = time.perf_counter()

    # A previous job killed with -9 left its MLflow runs RUNNING: end them KILLED first.
    orphans = mark_orphaned_runs(tracking_uri=cfg.tracking_uri)
    if orphans:
        console.print(f"marked {len(orphans)} orphaned MLflow run(s) of a killed job KILLED", highlight=False)
    for i, (name, fn) in enumerate(todo, 1):
        t0 = time.perf_counter()
        with console.status(f"[{i}/{len(todo)}] {name} ..."):
            results[name] = fn(plan, state)
        console.print(f"[green]done[/] [{i}/{len(todo)}] {name:<10} {time.perf_counter() - t0:6.1f}s  "
                      f"{escape(str(results[name]['line']))}", highlight=False)
    console.print(f"\nfinished in {time.perf_counter() - start:.0f}s. Where everything is:", highlight=False)
    for name in ("describe", "experiment", "score", "promote", "validate"):
        if name in results:
            console.print(f"  {name:<10} {escape(str(results[name]['path']))}", highlight=False)
    console.print("  runs       make ui  (MLflow at http://127.0.0.1:5000)", highlight=False)
    return results
