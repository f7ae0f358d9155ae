"""Experiment configs (``experiments/*.yaml``) and the runner behind ``spendlab experiment run``.

An experiment names a dataset, a frequency, the **validation** origins (choose the champion and
the ensemble weights, fit the interval quantiles, tune) and the **test** origins (reported), the
models to compare and their hyperparameters. The runner backtests every model on both sets,
logs one MLflow parent run with a child per model, and writes the leaderboard and predictions.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from spendlab.calendar import Freq, period_end, shift_period
from spendlab.config import ReaderConfig, StrictModel, load_yaml, parse_config
from spendlab.errors import ConfigError


class DatasetSpec(StrictModel):
    """Where the transactions come from (same arguments as ``spendlab validate``)."""

    input: str
    format: Literal["millions", "cdnow", "generic"] = "generic"
    name: str | None = None  # the dataset's name in MLflow; default: the input


class Origins(StrictModel):
    """Cutoffs (period ends): every period end from ``start`` to ``end``, or an explicit list."""

    start: dt.date | None = None
    end: dt.date | None = None
    dates: tuple[dt.date, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> "Origins":
        if bool(self.dates) == (self.start is not None or self.end is not None):
            raise ValueError("give either dates: [...] or start: and end:")
        if not self.dates and (self.start is None or self.end is None):
            raise ValueError("start: and end: go together")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def cutoffs(self, freq: Freq) -> list[dt.date]:
        """The cutoffs, each checked to be the last day of its period."""
        if self.dates:
            out = sorted(set(self.dates))
            bad = [d for d in out if d != period_end(d, freq)]
            if bad:
                raise ConfigError(f"origins must be {freq} ends (cutoff = last day of a period): {bad}")
            return out
        assert self.start is not None and self.end is not None
        out, cur = [], period_end(self.start, freq)
        if cur != self.start:
            raise ConfigError(f"origins start {self.start} is not the last day of a {freq}")
        while cur <= self.end:
            out.append(cur)
            cur = period_end(shift_period(cur, freq, 1), freq)
        return out


class SegmentSpec(StrictModel):
    """Segments for the per-segment RMSE and the intervals (see ``backtest.segment_users``)."""

    active_window: int = 3  # periods (lag1..lagN) in which a purchase makes a user "active"


class ExperimentConfig(StrictModel):
    """One ``experiments/<name>.yaml``."""

    name: str
    description: str = ""
    dataset: DatasetSpec
    reader: ReaderConfig = ReaderConfig()
    freq: Freq = "month"
    horizon: int = 1  # the target is the spend of the ``horizon`` periods after the cutoff's period
    validation: Origins
    test: Origins
    train_origins: int = 6  # earlier origins stacked into each training set (most recent first)
    features: Path | None = None  # feature-set YAML; None = spendlab's default feature set
    models: tuple[str, ...] = ()  # () = every registry key
    params: dict[str, dict[str, Any]] = {}
    ensemble_members: tuple[str, ...] = ("lightgbm", "lightgbm_clv", "sm_tweedie_glm", "bgnbd_gg")
    # Members whose mean validation |bias| exceeds this are left out of the blend (validation only).
    ensemble_max_validation_bias: float = 0.10
    segments: SegmentSpec = SegmentSpec()
    interval_level: float = 0.8
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("name must be letters, digits, _ . - (it names MLflow experiments and files)")
        return v

    @field_validator("horizon", "train_origins")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        from spendlab.models.registry import MODELS

        unknown = [m for m in (*self.models, *self.params, *self.ensemble_members) if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
        if "ensemble" in self.ensemble_members:
            raise ValueError("ensemble_members cannot include ensemble")
        if not 0.0 < self.interval_level < 1.0:
            raise ValueError("interval_level must be between 0 and 1")
        val, test = self.validation.cutoffs(self.freq), self.test.cutoffs(self.freq)
        if not val or not test:
            raise ValueError("validation and test need at least one origin each")
        # The last validation target must be known before the first test cutoff: validation
        # origins end at least `horizon` periods before it.
        latest_val = period_end(shift_period(test[0], self.freq, -self.horizon), self.freq)
        late = [d for d in val if d > latest_val]
        if late:
            raise ValueError(f"validation origins {late} are not strictly before the first test cutoff "
                             f"{test[0]} (their targets must be known by then: last allowed {latest_val})")
        return self

    def model_keys(self) -> list[str]:
        from spendlab.models.registry import MODELS

        return list(self.models) if self.models else list(MODELS)

    def origins(self, which: Literal["validation", "test", "all"]) -> list[dt.date]:
        if which == "validation":
            return self.validation.cutoffs(self.freq)
        if which == "test":
            return self.test.cutoffs(self.freq)
        if which == "all":
            return sorted(set(self.validation.cutoffs(self.freq)) | set(self.test.cutoffs(self.freq)))
        raise ValueError(f"origins must be validation, test or all, got {which!r}")


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML (unknown keys and bad origins are errors naming the file)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: experiment file not found")
    return parse_config(ExperimentConfig, load_yaml(p), str(p))


# --- the runner -------------------------------------------------------------------------------

LEADERBOARD_COLUMNS: tuple[str, ...] = ("model", "rmse", "mae", "bias", "wape", "top10_capture",
                                        "validation_rmse", "champion")
PREDICTION_COLUMNS: tuple[str, ...] = ("model", "cutoff", "target_period", "user_id", "y_true", "y_pred")
TUNED_DIR = Path("configs/tuned")


class ExperimentResult(StrictModel):
    """What :func:`run_experiment` wrote and decided."""

    model_config = {"arbitrary_types_allowed": True, "frozen": True, "extra": "forbid"}

    name: str
    leaderboard: Any  # pandas.DataFrame with LEADERBOARD_COLUMNS (+ interval_coverage_80, tuned)
    champion: str
    parent_run_id: str
    paths: dict[str, Path]
    ensemble_weights: dict[str, float] = {}


def tuned_params_path(experiment_name: str, model_key: str, tuned_dir: Path = TUNED_DIR) -> Path:
    """Where ``spendlab tune`` writes, and experiment runs read, a model's tuned parameters."""
    return tuned_dir / f"{experiment_name}-{model_key}.yaml"


def tuned_params(experiment_name: str, model_key: str, tuned_dir: Path = TUNED_DIR) -> dict[str, Any] | None:
    """The ``params:`` of ``configs/tuned/<experiment>-<model>.yaml`` if that file exists."""
    path = tuned_params_path(experiment_name, model_key, tuned_dir)
    if not path.exists():
        return None
    data = load_yaml(path)
    params = data.get("params")
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: a tuned-params file needs a params: mapping")
    return params


def resolve_params(cfg: ExperimentConfig, key: str, tuned_dir: Path = TUNED_DIR) -> tuple[dict[str, Any], bool]:
    """(hyperparameters, tuned?): tuned params file > experiment ``params`` > registry defaults."""
    tuned = tuned_params(cfg.name, key, tuned_dir)
    if tuned is not None:
        return dict(tuned), True
    return dict(cfg.params.get(key, {})), False


def load_dataset(cfg: ExperimentConfig) -> Any:
    """The experiment's transactions: its ``dataset`` read with its ``reader`` settings."""
    from spendlab.io import load_transactions

    return load_transactions(cfg.dataset.input, cfg.dataset.format, config=cfg.reader)


def feature_store(cfg: ExperimentConfig, source: Any) -> Any:
    """The :class:`~spendlab.backtest.FeatureStore` of experiment ``cfg`` over ``source``: its
    transactions, or a store built for it earlier (refused if built for another frequency,
    horizon or feature set), so that jobs in one process build each cutoff's features once."""
    from spendlab.backtest import FeatureStore
    from spendlab.features import FeatureConfig, load_feature_config

    fcfg = load_feature_config(cfg.features) if cfg.features is not None else FeatureConfig()
    return FeatureStore.from_source(source, freq=cfg.freq, horizon=cfg.horizon, feature_config=fcfg)


def pick_champion(leaderboard: "Any") -> str:
    """The non-baseline model with the lowest mean validation RMSE (test results are never used)."""
    from spendlab.models.registry import BASELINES

    cands = leaderboard[~leaderboard["model"].isin(BASELINES)]
    if cands.empty:
        cands = leaderboard
    cands = cands[cands["validation_rmse"].notna()]
    if cands.empty:
        raise ConfigError("no model has a finite validation RMSE; cannot choose a champion")
    return str(cands.sort_values(["validation_rmse", "model"]).iloc[0]["model"])


def run_experiment(experiment_path: Path, *, models: list[str] | None = None, out_dir: Path,
                   tracking_uri: str | None = None, tuned_dir: Path = TUNED_DIR,
                   progress: "Any | None" = None) -> ExperimentResult:
    """Backtest every model of the experiment, track it in MLflow, write leaderboard and predictions.

    Writes ``out_dir/leaderboard.csv``, ``out_dir/predictions.parquet`` (test origins) and
    ``out_dir/intervals.json`` (each model's conformal quantiles, for batch scoring). ``progress``
    is an optional ``callable(str)`` for status lines.
    """
    cfg = load_experiment(experiment_path)
    return execute(cfg, experiment_path=Path(experiment_path), models=models, out_dir=Path(out_dir),
                   tracking_uri=tracking_uri, tuned_dir=tuned_dir, progress=progress)


def _say(progress: "Any | None", msg: str) -> None:
    if progress is not None:
        progress(msg)


def _model_keys(cfg: ExperimentConfig, models: list[str] | None) -> list[str]:
    from spendlab.models.registry import MODELS

    keys = list(models) if models else cfg.model_keys()
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise ConfigError(f"--models: unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    if not keys:
        raise ConfigError("no models to run")
    return list(dict.fromkeys(keys))


def execute(cfg: ExperimentConfig, *, experiment_path: Path | None = None, models: list[str] | None = None,
            out_dir: Path, tracking_uri: str | None = None, tuned_dir: Path = TUNED_DIR,
            progress: "Any | None" = None, transactions: "Any | None" = None,
            jobs: int | None = None, store: "Any | None" = None) -> ExperimentResult:
    """:func:`run_experiment` on an already-validated config (``transactions`` may be preloaded).

    ``jobs``: backtests run at once (default: the usable cores, at most 4).
    """
    import contextlib
    import json
    import time

    import pandas as pd

    from spendlab import tracking
    from spendlab.backtest import ensemble_result, run_backtest
    from spendlab.intervals import apply_intervals, coverage, fit_conformal
    from spendlab.io.atomic import atomic_path, atomic_write_text
    from spendlab.io.safe_out import prepare_output_dir
    from spendlab.models.ensemble import nnls_weights
    from spendlab.models.base import usable_cores
    from spendlab.models.registry import model_params
    from spendlab.models import diagnostics as figs

    keys = _model_keys(cfg, models)
    jobs = jobs or min(4, usable_cores())
    tx = transactions if transactions is not None else load_dataset(cfg)
    dataset_name = cfg.dataset.name or cfg.dataset.input
    digest = tx.content_hash()
    store = feature_store(cfg, store if store is not None else tx)
    source = tx.files[0] if len(tx.files) == 1 else cfg.dataset.input
    dataset = {"name": dataset_name, "digest": digest, "source": str(source)}
    common_tags = {"dataset_name": dataset_name, "dataset_hash": digest, "experiment_file": str(experiment_path or "")}
    resolved = cfg.model_dump(mode="json")

    needed = [k for k in keys if k != "ensemble"]
    if "ensemble" in keys:
        needed += [m for m in cfg.ensemble_members if m not in needed]

    results: dict[str, Any] = {}
    tuned_flags: dict[str, bool] = {}
    child_ids: dict[str, str] = {}
    intervals: dict[str, Any] = {}
    weights: dict[str, float] = {}
    run_name = f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    with tracking.start_parent_run(cfg.name, run_name=run_name,
                                   tags={**common_tags, "kind": "experiment", "models": ",".join(keys)},
                                   tracking_uri=tracking_uri) as parent:
        parent.params(tracking.flatten("", resolved))
        tracking.log_dataset(parent, **dataset)
        parent.text(json.dumps(resolved, indent=2, default=str), "config/experiment.json")

        def finish(key: str, res: Any, tuned: bool, estimator_params: dict[str, Any],
                   run: "tracking.RunLog | None") -> None:
            val = res.predictions[res.predictions["split"] == "validation"]
            test = res.predictions[res.predictions["split"] == "test"]
            q = fit_conformal(val, level=cfg.interval_level)
            bounds = apply_intervals(test, q)
            res.means["interval_coverage_80"] = coverage(test["y_true"].to_numpy(), bounds)
            res.means["validation_interval_coverage_80"] = coverage(val["y_true"].to_numpy(), apply_intervals(val, q))
            intervals[key] = q
            tuned_flags[key] = tuned
            results[key] = res
            if run is None:  # an ensemble member that was not asked for: no run of its own
                return
            texts = {"intervals.json": json.dumps(q, indent=2)}
            if getattr(res.estimator, "summary_text_", None):
                texts["statsmodels_summary.txt"] = res.estimator.summary_text_
            figures = figs.model_figures(res, feature_names=res.feature_names)
            test_preds = test.assign(lower=bounds["lower"].to_numpy(), upper=bounds["upper"].to_numpy())
            tracking.log_model_results(
                run, params={**{f"hp.{k}": v for k, v in estimator_params.items()}, "tuned": tuned,
                             **tracking.flatten("config", {k: resolved[k] for k in
                                                           ("freq", "horizon", "train_origins", "validation", "test")})},
                per_origin=res.per_origin, means=res.means, dataset=dataset,
                tables={"predictions.parquet": test_preds, "metrics.csv": res.per_origin,
                        "validation_predictions.parquet": val},
                figures=figures, texts=texts)
            child_ids[key] = run.run_id

        def model_run(key: str, tuned: bool) -> Any:
            if key not in keys:
                return contextlib.nullcontext(None)
            return tracking.child_run(parent, run_name=key,
                                      tags={"model": key, **common_tags, "tuned": str(tuned).lower()})

        total = len(needed) + ("ensemble" in keys)
        resolved_params = {key: resolve_params(cfg, key, tuned_dir) for key in needed}  # (params, tuned)

        def backtest(i: int, key: str) -> tuple[Any, dict[str, Any], float] | BaseException:
            from spendlab.models.registry import make_model

            params, tuned = resolved_params[key]
            _say(progress, f"[{i}/{total}] backtesting {key}{' (tuned params)' if tuned else ''}")
            t0 = time.perf_counter()
            try:
                res = run_backtest(store, experiment=cfg, model_key=key, params=params, origins="all")
                return res, model_params(make_model(key, params)), time.perf_counter() - t0
            except Exception as exc:  # raised again on this job's thread, inside the model's run
                return exc

        # The first backtest builds every cutoff's features and targets (cached in the store); the
        # others then run `jobs` at a time on threads: each fits single-threaded (LightGBM n_jobs=1)
        # and releases the GIL in LightGBM, numpy and DuckDB. Results are logged on this thread
        # (MLflow calls, matplotlib figures), in the configured order, each as soon as it and those
        # before it are done, so logging overlaps the backtests still running. A failed backtest
        # fails its own run and the parent, as it did when models ran one by one, and the backtests
        # not yet started are cancelled.
        first, rest = needed[:1], needed[1:]
        outcomes: dict[str, Any] = {key: backtest(1, key) for key in first}
        if any(isinstance(o, BaseException) for o in outcomes.values()):
            rest = []
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="spendlab-backtest") as pool:
            # Tuned models first: a search tends to land on bigger models (CDNOW: 350 trees against
            # 150, the longest backtest), and the longest job should start first so both threads
            # finish together.
            submitted = {key: pool.submit(backtest, needed.index(key) + 1, key)
                         for key in sorted(rest, key=lambda k: not resolved_params[k][1])}
            try:
                for key in needed:
                    outcome = outcomes[key] if key in outcomes else submitted[key].result()
                    tuned = resolved_params[key][1]
                    with model_run(key, tuned) as run:
                        if isinstance(outcome, BaseException):
                            raise outcome
                        res, est_params, seconds = outcome
                        finish(key, res, tuned, est_params, run)
                    m = res.means
                    _say(progress, f"      {key}: validation RMSE {m.get('validation_rmse', float('nan')):.3f}, "
                                   f"test RMSE {m.get('test_rmse', float('nan')):.3f}, test bias "
                                   f"{m.get('test_bias', float('nan')):+.3f} ({seconds:.0f} s)")
            except BaseException:
                for future in submitted.values():
                    future.cancel()
                raise

        if "ensemble" in keys:
            _say(progress, f"[{total}/{total}] blending ensemble (weights from validation origins)")
            with model_run("ensemble", False) as run:
                members = {m: results[m] for m in cfg.ensemble_members
                           if abs(results[m].means.get("validation_bias", 0.0)) <= cfg.ensemble_max_validation_bias}
                dropped = [m for m in cfg.ensemble_members if m not in members]
                if not members:  # every member fails the gate: blend them all rather than nothing
                    members, dropped = {m: results[m] for m in cfg.ensemble_members}, []
                if dropped:
                    _say(progress, f"      ensemble: left out {dropped} (|validation bias| > "
                                   f"{cfg.ensemble_max_validation_bias:.0%})")
                val_preds = pd.DataFrame({m: r.predictions.loc[r.predictions["split"] == "validation", "y_pred"]
                                          .to_numpy() for m, r in members.items()})
                y_val = next(iter(members.values())).predictions
                y_val = y_val.loc[y_val["split"] == "validation", "y_true"].to_numpy()
                weights = nnls_weights(val_preds, y_val)
                if not any(w > 0 for w in weights.values()):
                    weights = {m: 1.0 / len(members) for m in members}
                res = ensemble_result(members, {m: w for m, w in weights.items() if w > 0})
                weights = {m: weights.get(m, 0.0) for m in cfg.ensemble_members}
                finish("ensemble", res, False,
                       {"members": ",".join(cfg.ensemble_members), "left_out": ",".join(dropped),
                        **{f"weight.{m}": w for m, w in weights.items()}}, run)

        rows = []
        for key in keys:
            m = results[key].means
            rows.append({"model": key, "rmse": m.get("test_rmse"), "mae": m.get("test_mae"),
                         "bias": m.get("test_bias"), "wape": m.get("test_wape"),
                         "top10_capture": m.get("test_top10_capture"), "validation_rmse": m.get("validation_rmse"),
                         "interval_coverage_80": m.get("interval_coverage_80"), "tuned": tuned_flags[key]})
        board = pd.DataFrame(rows)
        champion = pick_champion(board)
        board["champion"] = board["model"] == champion
        board = board.sort_values(["rmse", "model"], ignore_index=True)
        board = board[[*LEADERBOARD_COLUMNS, "interval_coverage_80", "tuned"]]

        preds = pd.concat([results[k].predictions.loc[results[k].predictions["split"] == "test",
                                                      list(PREDICTION_COLUMNS)] for k in keys], ignore_index=True)
        preds["cutoff"] = pd.to_datetime(preds["cutoff"]).dt.date
        preds["target_period"] = pd.to_datetime(preds["target_period"]).dt.date
        prepare_output_dir(out_dir)  # checked and marked as spendlab's (spendlab.io.safe_out)
        paths = {"leaderboard": out_dir / "leaderboard.csv", "predictions": out_dir / "predictions.parquet",
                 "intervals": out_dir / "intervals.json"}
        with atomic_path(paths["leaderboard"]) as tmp:
            board.to_csv(tmp, index=False, float_format="%.6g")
        with atomic_path(paths["predictions"]) as tmp:
            preds.to_parquet(tmp, index=False)
        atomic_write_text(paths["intervals"], json.dumps(
            {"experiment": cfg.name, "champion": champion, "level": cfg.interval_level, "models": intervals},
            indent=2) + "\n")
        parent.tags({"champion": champion, "champion_run_id": child_ids.get(champion, "")})
        parent.metrics({f"champion_{c}": float(board.loc[board["champion"], c].iloc[0])
                        for c in ("rmse", "mae", "bias", "wape", "top10_capture", "validation_rmse")})
        parent.table(board, "leaderboard.csv")
        parent.artifact(paths["intervals"])
        if weights:
            parent.params({f"ensemble_weight.{m}": w for m, w in weights.items()})
        return ExperimentResult(name=cfg.name, leaderboard=board, champion=champion, parent_run_id=parent.run_id,
                                paths=paths, ensemble_weights=weights)


def compare_runs(experiment_name: str, *, tracking_uri: str | None = None,
                 top: int = 3) -> tuple["Any", "Any"]:
    """Model runs of ``experiment_name`` across invocations (from ``mlflow.search_runs``), best
    validation RMSE first, and a table of the params that differ between the ``top`` best runs."""
    import pandas as pd

    from spendlab import tracking
    from spendlab.errors import NoDataError

    runs = tracking.search_runs(experiment_name, tracking_uri=tracking_uri)
    if runs.empty or "tags.model" not in runs.columns:
        raise NoDataError(f"no model runs recorded for experiment {experiment_name!r} in the tracking store")
    runs = runs[runs["tags.model"].notna() & (runs["status"] == "FINISHED")]
    if "metrics.validation_rmse" not in runs.columns:
        raise NoDataError(f"experiment {experiment_name!r} has no finished backtest runs")
    runs = runs[runs["metrics.validation_rmse"].notna()]
    if runs.empty:
        raise NoDataError(f"experiment {experiment_name!r} has no finished backtest runs")
    cols = {"tags.model": "model", "start_time": "started", "metrics.test_rmse": "rmse", "metrics.test_mae": "mae",
            "metrics.test_bias": "bias", "metrics.test_wape": "wape", "metrics.test_top10_capture": "top10_capture",
            "metrics.validation_rmse": "validation_rmse", "metrics.interval_coverage_80": "interval_coverage_80",
            "tags.tuned": "tuned", "tags.git_commit": "git_commit", "run_id": "run_id"}
    present = {k: v for k, v in cols.items() if k in runs.columns}
    board = runs[list(present)].rename(columns=present).sort_values(["validation_rmse", "started"],
                                                                    ascending=[True, False], ignore_index=True)
    board["started"] = pd.to_datetime(board["started"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    board["run_id"] = board["run_id"].str[:8]
    best = runs.sort_values("metrics.validation_rmse").head(max(top, 1))
    pcols = [c for c in best.columns if c.startswith("params.")]
    differing = [c for c in pcols if best[c].astype(str).nunique(dropna=False) > 1]
    diff = pd.DataFrame({"param": [c.removeprefix("params.") for c in differing]})
    for _, r in best.iterrows():
        diff[f"{r['tags.model']} {r['run_id'][:8]}"] = [r[c] for c in differing]
    return board, diff
