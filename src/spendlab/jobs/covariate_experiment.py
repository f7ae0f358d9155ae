"""The champion with and without covariates on one protocol, and each covariate's permutation importance (``spendlab experiment covariates``)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab.errors import ConfigError
from spendlab.forecast.bootstrap import bootstrap_rmse, delta_interval
from spendlab.forecast.importance import validation_importance
from spendlab.io.atomic import atomic_path, atomic_write_text
from spendlab.io.safe_out import output_dir
from spendlab.jobs.covariates import materialised
from spendlab.jobs.experiment import execute, feature_store, load_dataset
from spendlab.jobs.plan import load_experiment, plan_experiment
from spendlab.models.learned import FeatureRegressor
from spendlab.models.registry import make_model
from spendlab.tracking.covariates import log_covariate_comparison


def importance_model(board: pd.DataFrame, champion: str) -> str | None:
    """Return the model whose covariate importance is reported.

    The champion when it reads every feature column (a :class:`~spendlab.models.learned.FeatureRegressor`),
    else the best such model on validation.
    """
    learned = [m for m in board["model"] if isinstance(make_model(m), FeatureRegressor)]
    if champion in learned:
        return champion
    if not learned:
        return None
    pool = board[board["model"].isin(learned)]
    return str(pool.sort_values(["validation_rmse", "model"]).iloc[0]["model"])


@dataclass(frozen=True)
class CovariateComparison:
    """The champion with and without covariates on one protocol, and the covariates' importance."""

    with_covariates: Any  # ExperimentResult
    without_covariates: Any  # ExperimentResult
    summary: dict[str, Any]
    importance: pd.DataFrame
    paths: dict[str, Path]


def _champion_rows(result: Any) -> pd.DataFrame:
    preds = pd.read_parquet(result.paths["predictions"])
    rows = preds[preds["model"] == result.champion].reset_index(drop=True)
    return rows.assign(split="test")


def compare_summary(with_run: Any, without_run: Any, *, seed: int = 0) -> dict[str, Any]:
    """Test RMSE of both champions and the paired bootstrap interval of their difference (95%)."""
    a, b = _champion_rows(with_run), _champion_rows(without_run)
    boot = bootstrap_rmse({"with": a, "without": b}, split="test", seed=seed)
    lo, hi = delta_interval(boot, "with", "without")
    board = with_run.leaderboard
    champ = board[board["model"] == with_run.champion].iloc[0]
    return {"champion_with": with_run.champion, "champion_without": without_run.champion,
            "rmse_with": float(champ["rmse"]),
            "rmse_without": float(without_run.leaderboard.loc[without_run.leaderboard["champion"], "rmse"].iloc[0]),
            "delta_rmse": float(boot["with"].mean() - boot["without"].mean()), "ci_low": lo, "ci_high": hi,
            "delta_rmse_vs_best_peer": float(champ.get("delta_rmse_vs_best_peer", float("nan"))),
            "peer_ci_low": float(champ.get("ci_low", float("nan"))),
            "peer_ci_high": float(champ.get("ci_high", float("nan")))}


def run_covariates(experiment_path: Path, *, out_dir: Path, tracking_uri: str | None = None,
                   models: list[str] | None = None, progress: Any | None = None) -> CovariateComparison:
    """Run an experiment whose feature set declares covariates twice, with them and without them.

    Writes ``out_dir/without`` then ``out_dir/with`` (each an experiment's outputs, each its own MLflow
    run; the with-covariates run is the latest, the one ``spendlab promote`` registers), and ``out_dir/covariates.json`` (both champions' test RMSE, the paired bootstrap interval of
    the difference, the lead over the best peer) and ``out_dir/importance.csv`` (permutation importance
    on the validation origins); both are logged to the with-covariates run and appended to its report.

    Raises
    ------
    ConfigError
        The experiment's feature set declares no covariates.
    """
    plan = plan_experiment(load_experiment(experiment_path), experiment_path=Path(experiment_path), models=models)
    if plan.features.covariates is None:
        raise ConfigError(f"{experiment_path}: its feature set declares no covariates (features: covariates:)")
    out_dir = Path(out_dir)
    with output_dir(out_dir):
        tx = materialised(load_dataset(plan.experiment))
        bare = replace(plan, features=plan.features.model_copy(update={"covariates": None}))
        without_run = execute(bare, out_dir=out_dir / "without", tracking_uri=tracking_uri, progress=progress,
                              transactions=tx)
        store = feature_store(plan, tx)  # the with-covariates run goes last: `spendlab promote` takes the latest
        with_run = execute(plan, out_dir=out_dir / "with", tracking_uri=tracking_uri, progress=progress,
                           transactions=tx, store=store)
        summary = compare_summary(with_run, without_run, seed=plan.experiment.seed)
        key = importance_model(with_run.leaderboard, with_run.champion)
        importance = pd.DataFrame(columns=["covariate", "columns", "importance", "std", "n"])
        if key is not None:
            params = dict(plan.models[key].params) if key in plan.models else {}
            importance = validation_importance(store, plan.experiment, key, params, seed=plan.experiment.seed)
        summary["importance_model"] = key
        summary["user_table"] = tx.users.as_dict() if tx.users is not None else None
        paths = write_comparison(out_dir, summary, importance, report=with_run.paths.get("report"))
        log_covariate_comparison(with_run.parent_run_id, summary, importance, tracking_uri=tracking_uri)
    return CovariateComparison(with_run, without_run, summary, importance, paths)


def write_comparison(out_dir: Path, summary: dict[str, Any], importance: pd.DataFrame, *,
                     report: Path | None) -> dict[str, Path]:
    """``covariates.json`` and ``importance.csv``, each atomically.

    The with-covariates ``report.html`` gains a section with both (rewritten atomically).
    """
    paths = {"summary": out_dir / "covariates.json", "importance": out_dir / "importance.csv"}
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2, default=str) + "\n")
    with atomic_path(paths["importance"]) as tmp:
        importance.to_csv(tmp, index=False, float_format="%.6g")
    if report is not None and report.exists():
        atomic_write_text(report, with_covariate_section(report.read_text(encoding="utf-8"), summary, importance))
    return paths


def with_covariate_section(page: str, summary: dict[str, Any], importance: pd.DataFrame) -> str:
    """``page`` (an experiment's ``report.html``) with a section on covariates before ``</body>``."""
    table = pd.DataFrame([summary]).T.reset_index().rename(columns={"index": "figure", 0: "value"})
    section = ("<section><h2>Covariates</h2><p>The champion with and without the covariates on the same test "
               "origins (paired bootstrap over users, 95%), and each covariate's permutation importance on the "
               f"validation origins (RMSE increase when it is shuffled; model: "
               f"{html.escape(str(summary.get('importance_model')))}).</p>"
               + table.to_html(index=False, float_format=lambda v: f"{v:,.4g}")
               + importance.to_html(index=False, float_format=lambda v: f"{v:,.4g}") + "</section>")
    at = page.rfind("</body>")
    return page + section if at < 0 else page[:at] + section + page[at:]
