"""The runner behind ``spendlab experiment run``: an experiment plan, backtested, tracked and written.

An experiment (``experiments/*.yaml``, planned by :mod:`spendlab.jobs.plan`) names a dataset, a frequency, the **validation** origins (choose the champion and
the ensemble weights, fit the interval quantiles, tune) and the **test** origins (reported), the
models to compare and their hyperparameters. The runner backtests every model on both sets,
logs one MLflow parent run with a child per model, and writes the leaderboard and predictions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab.config import StrictModel, config_hash
from spendlab.features.store import FeatureStore
from spendlab.forecast.backtest import BacktestOutcome, BacktestResult, backtest_models, say_progress
from spendlab.forecast.blend import blend, stack
from spendlab.forecast.candidate import Candidate, Measured
from spendlab.forecast.intervals import calibrate, calibration_report
from spendlab.forecast.leaderboard import rank_models, test_predictions
from spendlab.forecast.protocol import ExperimentConfig, protocol_id
from spendlab.jobs.auto_origins import resolve_plan
from spendlab.jobs.covariates import load_dataset_with_users
from spendlab.jobs.experiment_outputs import log_parent, render_experiment_report, write_outputs
from spendlab.jobs.feature_cache import cached_store, dataset_record
from spendlab.jobs.plan import ExperimentPlan, TunePlan, load_experiment, plan_experiment
from spendlab.jobs.tuned_params import TUNED_DIR
from spendlab.models.registry import resolved_params
from spendlab.settings import usable_cores
from spendlab.timing import Timings, current, profiled, timed
from spendlab.tracking import figures as figs
from spendlab.tracking import results
from spendlab.tracking import runs as tracking
from spendlab.tracking.trust import CANDIDATE_TAG, candidate_digest


class ExperimentResult(StrictModel):
    """What :func:`run_experiment` wrote and decided."""

    model_config = {"arbitrary_types_allowed": True, "frozen": True, "extra": "forbid"}

    name: str
    leaderboard: Any  # pandas.DataFrame with LEADERBOARD_COLUMNS (+ interval_coverage_80, tuned)
    champion: str
    parent_run_id: str
    paths: dict[str, Path]
    ensemble_weights: dict[str, float] = {}
    profile: Any = None  # pandas.DataFrame, spendlab.timing.SUMMARY_COLUMNS: where the run's time went


def load_dataset(cfg: ExperimentConfig) -> Any:
    """Load the experiment's transactions: its ``dataset`` read with its ``reader`` settings (and its user table)."""
    return load_dataset_with_users(cfg)


def feature_store(plan: ExperimentPlan | TunePlan, source: Any) -> FeatureStore:
    """Open the feature store of ``plan`` over ``source``.

    Parameters
    ----------
    plan : ExperimentPlan or TunePlan
        Gives the frequency, horizon and the resolved feature set.
    source : Transactions, DuckDB connection or FeatureStore
        The experiment's transactions, or a store built for it earlier, so that jobs in one process
        build each cutoff's features once.

    Returns
    -------
    FeatureStore
        A new store, or ``source`` itself when it is a store of the same settings.

    Raises
    ------
    ValueError
        ``source`` is a store built for another frequency, horizon or feature set.
    """
    cfg = plan.experiment
    return FeatureStore.from_source(source, freq=cfg.freq, horizon=cfg.horizon, feature_config=plan.features)


@profiled  # the load below and execute's stages in one recorder
def run_experiment(experiment_path: Path, *, models: list[str] | None = None, out_dir: Path,
                   tracking_uri: str | None = None, tuned_dir: Path = TUNED_DIR,
                   progress: Any | None = None, feature_cache: Path | None = None) -> ExperimentResult:
    """Backtest every model of the experiment, track it in MLflow, write leaderboard and predictions.

    Writes ``out_dir/leaderboard.csv``, ``out_dir/predictions.parquet`` (test origins) and
    ``out_dir/intervals.json`` (each model's conformal quantiles, for batch scoring). ``progress``
    is an optional ``callable(str)`` for status lines; ``feature_cache`` a directory keeping each
    cutoff's features across runs (:mod:`spendlab.jobs.feature_cache`).
    """
    plan = plan_experiment(load_experiment(experiment_path), experiment_path=Path(experiment_path), models=models,
                           tuned_dir=tuned_dir)
    with timed("load", plan.experiment.dataset.name or plan.experiment.dataset.input):
        tx = load_dataset(plan.experiment)
        store = cached_store(plan, tx, feature_cache)
    return execute(plan, out_dir=Path(out_dir), tracking_uri=tracking_uri, progress=progress, transactions=tx,
                   store=store)


def _log_model(run: tracking.RunLog, res: BacktestResult, *, tuned: bool, estimator_params: dict[str, Any],
               scored: pd.DataFrame, candidate: Candidate, calibration_tables: dict[str, pd.DataFrame],
               resolved_cfg: dict[str, Any], dataset: dict[str, str]) -> None:
    """Log one model's child run.

    Params, per-origin and mean metrics, predictions (with P(spend) and the interval), calibration
    tables, figures, and the typed ``candidate.json``.
    """
    preds = res.predictions
    test = preds["split"] == "test"
    texts = {"intervals.json": json.dumps(candidate.calibration, indent=2), "candidate.json": candidate.to_json()}
    if getattr(res.estimator, "summary_text_", None):
        texts["statsmodels_summary.txt"] = res.estimator.summary_text_
    protocol = {k: resolved_cfg[k] for k in ("freq", "horizon", "train_origins", "train_zero_fraction",
                                                 "validation", "test")}
    results.log_model_results(
        run, params={**{f"hp.{k}": v for k, v in estimator_params.items()}, "tuned": tuned,
                     **results.flatten("config", protocol)},
        per_origin=res.per_origin, means=res.means, dataset=dataset,
        tables={"predictions.parquet": pd.concat([preds[test], scored[test]], axis=1),
                "metrics.csv": res.per_origin,
                "validation_predictions.parquet": pd.concat([preds[~test], scored[~test]], axis=1),
                **{f"calibration/{name}": t for name, t in calibration_tables.items()}},
        figures=figs.model_figures(res, feature_names=res.feature_names), texts=texts, freq=resolved_cfg["freq"])
    run.tag(CANDIDATE_TAG, candidate_digest(texts["candidate.json"]))


def _say_done(progress: Any | None, o: BacktestOutcome) -> None:
    m = o.result.means if o.result is not None else {}
    say_progress(progress, f"      {o.key}: validation RMSE {m.get('validation_rmse', float('nan')):.3f}, "
                   f"test RMSE {m.get('test_rmse', float('nan')):.3f}, test bias "
                   f"{m.get('test_bias', float('nan')):+.3f} ({o.seconds:.0f} s)")


def _train_spend_rate(res: BacktestResult) -> float:
    """Share of training examples with spend, over the test origins (the constant P(spend) forecast)."""
    po = res.per_origin
    rows = po[po["split"] == "test"]
    if "train_spend_rate" not in rows or rows.empty:
        return float("nan")
    return float((rows["train_spend_rate"] * rows["n_train"]).sum() / rows["n_train"].sum())


def _with_scored(results: dict[str, BacktestResult], scored: dict[str, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Every model's test-origin predictions with its ``p_spend, median, lower, upper`` (same row order)."""
    extra = pd.concat([scored[k][(results[k].predictions["split"] == "test").to_numpy()] for k in keys],
                      ignore_index=True)
    return pd.concat([test_predictions(results, keys), extra], axis=1)


def _candidate(cfg: ExperimentConfig, key: str, res: BacktestResult, *, params: dict[str, Any], tuned: bool,
               feature_names: list[str],
               calibration: dict[str, Any], feature_config: Any, resolved_cfg: dict[str, Any], dataset_hash: str,
               run_id: str) -> Candidate:
    """Build the typed record of one tested model (what ``spendlab promote`` registers)."""
    m = res.means
    nan = float("nan")
    return Candidate(
        model_key=key, params=params, tuned=tuned, feature_names=feature_names,
        feature_config=feature_config.model_dump(mode="json"), feature_config_hash=config_hash(feature_config),
        calibration=calibration, protocol_id=protocol_id(cfg), experiment=resolved_cfg, dataset_hash=dataset_hash,
        figures=Measured(test_rmse=m.get("test_rmse", nan), validation_rmse=m.get("validation_rmse", nan),
                         test_bias=m.get("test_bias"), interval_coverage_80=m.get("interval_coverage_80"),
                         brier_p_spend=m.get("brier_p_spend")),
        experiment_run_id=run_id)


@dataclass
class _Recorder:
    """Calibrates each backtest as it arrives and logs it to its child run (tracking)."""

    cfg: ExperimentConfig
    keys: list[str]
    parent: tracking.RunLog
    store: FeatureStore
    dataset: dict[str, str]
    common_tags: dict[str, str]
    resolved_cfg: dict[str, Any]
    results: dict[str, BacktestResult] = field(default_factory=dict)
    intervals: dict[str, Any] = field(default_factory=dict)
    scored_rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    child_ids: dict[str, str] = field(default_factory=dict)

    def record(self, key: str, res: BacktestResult, tuned: bool, estimator_params: dict[str, Any],
               params: dict[str, Any], base_rate: float, timing: tuple[float, float] | None = None) -> None:
        cfg = self.cfg
        with timed("calibrate", key):
            cal, scored, cov = calibrate(res.predictions, level=cfg.interval_level)
            test = res.predictions["split"] == "test"
            cal_metrics, cal_tables = calibration_report(pd.concat([res.predictions[test], scored[test]], axis=1),
                                                         level=cfg.interval_level, base_rate=base_rate)
        res.means.update({**cal_metrics, **cov})
        self.intervals[key], self.results[key], self.scored_rows[key] = cal, res, scored
        if key not in self.keys:  # an ensemble member that was not asked for: no run of its own
            return
        start, end = timing or (None, None)  # the backtest's own times, not the logging's
        with timed("mlflow", key), tracking.child_run(self.parent, run_name=key, start_time=start, end_time=end,
                                tags={"model": key, "kind": "model", **self.common_tags,
                                      "tuned": str(tuned).lower()}) as run:
            names = res.feature_names or next(r.feature_names for r in self.results.values() if r.feature_names)
            self.candidates[key] = _candidate(cfg, key, res, params=params, tuned=tuned, calibration=cal,
                                              feature_names=list(names), feature_config=self.store.feature_config,
                                              resolved_cfg=self.resolved_cfg, dataset_hash=self.dataset["digest"],
                                              run_id=self.parent.run_id)
            _log_model(run, res, tuned=tuned, estimator_params=estimator_params, scored=scored,
                       candidate=self.candidates[key], calibration_tables=cal_tables,
                       resolved_cfg=self.resolved_cfg, dataset=self.dataset)
            self.child_ids[key] = run.run_id

    def fail(self, o: BacktestOutcome) -> None:
        """Fail a failed backtest's own run (when it has one), then the parent."""
        if o.key in self.keys:
            with tracking.child_run(self.parent, run_name=o.key, start_time=o.started,
                                    tags={"model": o.key, "kind": "model", **self.common_tags}):
                raise o.error  # type: ignore[misc]
        raise o.error  # type: ignore[misc]


def _blend_ensemble(rec: _Recorder, resolved: dict[str, tuple[dict[str, Any], bool]], n: int,
                    progress: Any | None) -> dict[str, float]:
    """Blend the configured members (cross-fitted on validation) and record the blend like a model."""
    cfg = rec.cfg
    say_progress(progress, f"[{n}/{n}] blending ensemble (convex weights from validation origins; each validation "
                   "origin scored with weights fitted without it)")
    blend_start, t0 = time.time(), time.perf_counter()
    with timed("blend", "ensemble"):
        bl = blend(rec.results, cfg.ensemble_members, max_validation_bias=cfg.ensemble_max_validation_bias)
    timing = (blend_start, blend_start + time.perf_counter() - t0)
    if bl.left_out:
        say_progress(progress, f"      ensemble: left out {bl.left_out} (|validation bias| > "
                       f"{cfg.ensemble_max_validation_bias:.0%})")
    used = {m: w for m, w in bl.weights.items() if w > 0}
    ens_params = resolved_params("ensemble", {
        "members": list(used), "weights": used,
        "member_params": {m: resolved_params(m, resolved[m][0]) for m in used}})
    rec.record("ensemble", bl.result, False,
               {"members": ",".join(cfg.ensemble_members), "left_out": ",".join(bl.left_out),
                **{f"weight.{m}": w for m, w in bl.weights.items()},
                **{f"fold_weight.{c}.{m}": w for c, fw in bl.fold_weights.items() for m, w in fw.items()}},
               ens_params, _train_spend_rate(rec.results[next(iter(used))]), timing)
    return bl.weights


def _stack_members(rec: _Recorder, resolved: dict[str, tuple[dict[str, Any], bool]], progress: Any | None) -> None:
    """Stack the members (per-segment weights fitted on validation, cross-fitted) and record the stack like a model."""
    cfg = rec.cfg
    say_progress(progress, "      stacking the ensemble members (a meta-learner per segment, fitted on validation origins; "
                   "each validation origin scored with one fitted without it)")
    start, t0 = time.time(), time.perf_counter()
    with timed("blend", "stack"):
        st = stack(rec.results, cfg.ensemble_members, max_validation_bias=cfg.ensemble_max_validation_bias)
    timing = (start, start + time.perf_counter() - t0)
    used = [m for m in cfg.ensemble_members if any(w.get(m, 0.0) > 0 for w in st.weights.values())]
    params = resolved_params("stack", {
        "members": used, "weights": {s: {m: w[m] for m in used} for s, w in st.weights.items()},
        "member_params": {m: resolved_params(m, resolved[m][0]) for m in used},
        "active_window": cfg.segments.active_window})
    rec.record("stack", st.result, False,
               {"members": ",".join(cfg.ensemble_members), "left_out": ",".join(st.left_out),
                **{f"weight.{s}.{m}": v for s, w in st.weights.items() for m, v in w.items()},
                **{f"fold_weight.{c}.{s}.{m}": v for c, fw in st.fold_weights.items()
                   for s, w in fw.items() for m, v in w.items()}},
               params, _train_spend_rate(rec.results[used[0]]), timing)


def _backtest_all(rec: _Recorder, resolved: dict[str, tuple[dict[str, Any], bool]],
                  folds: dict[str, dict[Any, dict[str, Any]]], *, jobs: int, progress: Any | None) -> None:
    """Backtest every planned model and record each as it finishes (a failure fails its run, then the job)."""
    for o in backtest_models(rec.store, rec.cfg, resolved, jobs=jobs, progress=progress, fold_params=folds):
        if o.error is not None:
            rec.fail(o)
        scoring = {"validation_scoring": "cross_fitted" if folds.get(o.key) else "in_sample"} if o.tuned else {}
        rec.record(o.key, o.result, o.tuned, {**o.estimator_params, **scoring},
                   resolved_params(o.key, resolved[o.key][0]), _train_spend_rate(o.result), o.timing)
        _say_done(progress, o)


# long: the run in order (load, backtests, blend, rank, report, write, log), each step one call on the previous one's objects
@profiled  # every timed stage records into the caller's recorder, or into this run's own
def execute(plan: ExperimentPlan, *, out_dir: Path, tracking_uri: str | None = None, progress: Any | None = None,
            transactions: Any | None = None, jobs: int | None = None, store: Any | None = None) -> ExperimentResult:
    """Run an experiment plan: backtest every model, blend, rank, track and write.

    Reads no configuration: every setting and parameter comes from ``plan``; the only input read is
    the plan's dataset (unless ``transactions`` or ``store`` are given).

    Parameters
    ----------
    plan : ExperimentPlan
        From :func:`spendlab.jobs.plan.plan_experiment`; logged as the parent run's ``plan.json``.
    out_dir : pathlib.Path
        Where ``leaderboard.csv``, ``predictions.parquet``, ``intervals.json`` and ``report.html`` go.
    tracking_uri : str, optional
        The MLflow store (default ``sqlite:///mlruns/mlflow.db``).
    progress : callable, optional
        ``progress(str)`` receives status lines.
    transactions : Transactions, optional
        The plan's dataset, already loaded.
    jobs : int, optional
        Backtests at once (default: usable cores, at most 4).
    store : FeatureStore, optional
        A store over the same data whose features may already be built.

    Returns
    -------
    ExperimentResult
        The leaderboard, the champion, the parent run and the files written.
    """
    timings = current() or Timings()
    with timed("load" if transactions is None else "dataset_hash", plan.experiment.dataset.name or plan.experiment.dataset.input):
        tx = transactions if transactions is not None else load_dataset(plan.experiment)
        store = feature_store(plan, store if store is not None else tx)
        dataset, common_tags = dataset_record(plan, tx)
    plan = resolve_plan(plan, store.first_cutoff)  # validation: auto -> the origins the data allow
    cfg, keys = plan.experiment, list(plan.keys)
    resolved_cfg = cfg.model_dump(mode="json")
    resolved = {k: (dict(m.params), m.tuned) for k, m in plan.models.items()}  # key -> (params, tuned)
    folds = {k: {c: dict(p) for c, p in m.fold_params.items()} for k, m in plan.models.items() if m.tuned}
    run_name = f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    with tracking.start_parent_run(cfg.name, run_name=run_name,
                                   tags={**common_tags, "kind": "experiment", "models": ",".join(keys)},
                                   tracking_uri=tracking_uri) as parent:
        with timed("mlflow", "parent"):
            parent.params(results.flatten("", resolved_cfg))
            results.log_dataset(parent, **dataset)
            parent.text(json.dumps(resolved_cfg, indent=2, default=str), "config/experiment.json")
            parent.text(plan.to_json(), "plan.json")
        rec = _Recorder(cfg, keys, parent, store, dataset, common_tags, resolved_cfg)
        _backtest_all(rec, resolved, folds, jobs=jobs or min(4, usable_cores()), progress=progress)
        weights = _blend_ensemble(rec, resolved, len(resolved) + 1, progress) if "ensemble" in keys else {}
        if "stack" in keys:
            _stack_members(rec, resolved, progress)
        ranking = rank_models(rec.results, keys, {k: resolved.get(k, ({}, False))[1] for k in keys}, seed=cfg.seed,
                              rule=cfg.selection.rule, level=cfg.selection.level, members=cfg.ensemble_members)
        # no run id in the report: a rerun must write the same report byte for byte (the run logs it)
        report = render_experiment_report(cfg.name, ranking, rec.results, keys, notes={"dataset": f"{dataset['name']} ({dataset['digest'][:12]})"})
        paths = write_outputs(Path(out_dir), board=ranking.board, predictions=_with_scored(rec.results, rec.scored_rows, keys),
                              intervals={"experiment": cfg.name, "champion": ranking.champion,
                                         "level": cfg.interval_level, "models": rec.intervals}, report=report)
        log_parent(rec, ranking, paths, weights)
        results.log_profile(parent, timings.records())
        return ExperimentResult(name=cfg.name, leaderboard=ranking.board, champion=ranking.champion,
                                parent_run_id=parent.run_id, paths=paths, ensemble_weights=weights,
                                profile=timings.summary())

