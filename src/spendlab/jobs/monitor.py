"""The runner behind ``spendlab monitor``: a scoring run's rows against the period that happened.

A :class:`MonitorPlan` is resolved once (thresholds from ``configs/monitor.yaml``); :func:`execute`
checks everything before anything is written (the scores carry a model version and lineage, come
from the monitored model, and their target period is complete in the input), then measures realized
accuracy overall and per segment, drift against the version's reference profile, the estimates made
before the actuals, and a verdict; logs one monitoring run to MLflow and writes the report.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from spendlab.calendar import target_window_end
from spendlab.config import ReaderConfig
from spendlab.errors import ConfigError, SpendlabError
from spendlab.features import FeatureConfig, build_features, build_target
from spendlab.features.segments import segment_users
from spendlab.forecast.bootstrap import bootstrap_rmse
from spendlab.io.load import connect, date_span, load_transactions
from spendlab.jobs.monitor_report import period_step, write_report  # noqa: F401 - period_step re-exported
from spendlab.jobs.score import FOLDER_METADATA_FILE, LINEAGE_KEY
from spendlab.monitor.accuracy import bootstrap_interval, join_realized, realized_accuracy
from spendlab.monitor.drift import feature_drift, segment_shift
from spendlab.monitor.estimate import backtest_total_error, pre_actuals_estimate
from spendlab.monitor.verdict import Thresholds, decide
from spendlab.tracking.monitoring import ModelRecord, model_record

#: Exit code of ``spendlab monitor`` when the verdict is ``retrain``.
EXIT_RETRAIN = 6


class MonitorInputError(SpendlabError):
    """Scores or input that cannot be monitored (exit 2, nothing written)."""


@dataclass(frozen=True)
class MonitorPlan:
    """What one monitoring run does, decided before it starts.

    Attributes
    ----------
    scores : pathlib.Path
        A ``spendlab score`` output.
    input : str
        The transactions holding the realized period.
    format : str
        The reader format.
    reader : ReaderConfig
        The reader policy (the one scoring used).
    model : str
        The monitored registered model's name; scores of another model are refused.
    out : pathlib.Path or None
        The report directory (None: nothing written but the MLflow run).
    thresholds : Thresholds
        Where the verdict turns ``warn`` and ``retrain``.
    n_boot : int
        Bootstrap replicates of the realized intervals.
    seed : int
        The bootstrap's seed.
    """

    scores: Path
    input: str
    format: str
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    model: str = "spendlab-next-month"
    out: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    n_boot: int = 500
    seed: int = 0


def plan_monitor(scores: str | Path, input: str, *, format: str, config: dict[str, Any] | None = None,
                 reader: ReaderConfig | None = None, out: str | Path | None = None) -> MonitorPlan:
    """Resolve a monitoring run from the options and the ``monitor:`` config section.

    Parameters
    ----------
    scores : str or pathlib.Path
        The scores file (or the Spark engine's Parquet folder).
    input : str
        The transactions.
    format : str
        The reader format.
    config : dict, optional
        ``model``, ``n_boot``, ``seed`` and ``thresholds`` (keys of :class:`Thresholds`).
    reader : ReaderConfig, optional
        The reader policy.
    out : str or pathlib.Path, optional
        The report directory.

    Returns
    -------
    MonitorPlan
        The frozen plan.

    Raises
    ------
    ConfigError
        An unknown key.
    """
    cfg = dict(config or {})
    allowed = {"model", "n_boot", "seed", "thresholds"}
    if set(cfg) - allowed:
        raise ConfigError(f"monitor: unknown keys {sorted(set(cfg) - allowed)}; allowed: {sorted(allowed)}")
    limits = dict(cfg.get("thresholds") or {})
    known = set(Thresholds.__dataclass_fields__)
    if set(limits) - known:
        raise ConfigError(f"monitor.thresholds: unknown keys {sorted(set(limits) - known)}; allowed: {sorted(known)}")
    return MonitorPlan(scores=Path(scores), input=str(input), format=format, reader=reader or ReaderConfig(),
                       model=str(cfg.get("model", "spendlab-next-month")), out=None if out is None else Path(out),
                       thresholds=Thresholds(**{k: float(v) for k, v in limits.items()}),
                       n_boot=int(cfg.get("n_boot", 500)), seed=int(cfg.get("seed", 0)))


def _folder_lineage(path: Path) -> str | None:
    """Return the lineage of a Parquet folder (Spark's scores): its metadata file's ``spendlab.scores``."""
    meta = path / FOLDER_METADATA_FILE
    if not path.is_dir() or not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get(LINEAGE_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def read_scores(path: Path, *, model: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return the scores and their lineage, refused unless they come from one version of ``model``.

    ``path`` is a scores file (lineage in its footer) or a Parquet folder of part files written by the
    Spark engine (lineage in its ``_spendlab_metadata.json``).

    Raises
    ------
    MonitorInputError
        No ``model_version``, no lineage, several models, or another model than ``model``.
    """
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise MonitorInputError(f"{path}: not a scores Parquet file ({str(exc).splitlines()[0]})") from None
    if "model_version" not in table.column_names:
        raise MonitorInputError(f"{path}: no model_version column: not the output of `spendlab score`")
    raw = (table.schema.metadata or {}).get(LINEAGE_KEY.encode()) or _folder_lineage(Path(path))
    if raw is None:
        raise MonitorInputError(f"{path}: no {LINEAGE_KEY} lineage metadata: score it again with this spendlab")
    lineage = json.loads(raw)
    scores = table.to_pandas()
    versions = sorted(set(scores["model_version"].astype(str)) | set(scores.get("model_uri", pd.Series(dtype=str))))
    if scores["model_version"].nunique() > 1 or scores.get("model_uri", pd.Series(dtype=str)).nunique() > 1:
        raise MonitorInputError(f"{path}: rows from several models ({', '.join(versions)}): monitor one at a time")
    if len(scores) and str(scores["model_version"].iloc[0]) != lineage.get("model_version"):
        raise MonitorInputError(f"{path}: rows of model version {scores['model_version'].iloc[0]} but lineage of "
                                f"version {lineage.get('model_version')}")
    if lineage.get("model_name") != model:
        raise MonitorInputError(f"{path}: scores of model {lineage.get('model_name')!r}, not of the monitored "
                                f"model {model!r}")
    return scores, lineage


def check_complete(lineage: dict[str, str], last_day: dt.date, *, input: str) -> dt.date:
    """Return the target period's last day, refused unless the input reaches it.

    Raises
    ------
    MonitorInputError
        The input ends before the period does (the message names the last day seen).
    """
    as_of = dt.date.fromisoformat(lineage["as_of"])
    end = target_window_end(as_of, lineage.get("freq", "month"), int(lineage.get("horizon", 1)))  # type: ignore[arg-type]
    if last_day < end:
        raise MonitorInputError(f"{input}: period {lineage['target_period']} is not complete: the last day seen is "
                                f"{last_day}, the period ends {end}")
    return end


def version_uri(lineage: dict[str, str]) -> str:
    """Return the scoring model pinned to its version: an alias (``@champion``) may have moved since scoring."""
    uri = lineage.get("model_uri", "")
    if uri.startswith("models:/"):
        return f"models:/{lineage['model_name']}/{lineage['model_version']}"
    return uri


@dataclass
class MonitorResult:
    """What one monitoring run found (and where it wrote it)."""

    model_uri: str
    model_version: str
    period: str
    verdict: str
    reasons: list[str]
    accuracy: pd.DataFrame
    drift: pd.DataFrame
    segments: pd.DataFrame
    summary: dict[str, Any]
    backtest: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str = ""

    @property
    def exit_code(self) -> int:
        """Return the process exit code of the verdict (6 on ``retrain``)."""
        return EXIT_RETRAIN if self.verdict == "retrain" else 0


def measure(scores: pd.DataFrame, lineage: dict[str, str], con: Any, record: ModelRecord, plan: MonitorPlan,
            features: pd.DataFrame | None = None) -> MonitorResult:
    """Measure one scored period on a connection holding the transactions (pure of I/O but the queries).

    ``features``: the as-of features of the scored cutoff when already built (else built here).
    """
    as_of = dt.date.fromisoformat(lineage["as_of"])
    freq = lineage.get("freq", "month")
    cand = record.candidate
    horizon = int(lineage.get("horizon", 1))
    joined = join_realized(scores, build_target(con, freq=freq, as_of=as_of, horizon=horizon))  # type: ignore[arg-type]
    acc = realized_accuracy(joined)
    feats = features if features is not None else build_features(
        con, freq=freq, as_of=as_of, config=FeatureConfig.model_validate(cand.feature_config),  # type: ignore[arg-type]
        horizon=horizon)
    seg_now = segment_users(feats, active_window=cand.experiment_config().segments.active_window)
    ref = record.reference
    drift = feature_drift(ref, feats) if ref else pd.DataFrame(columns=["feature", "psi", "zero_share_ref", "zero_share"])
    shift = segment_shift(ref, seg_now) if ref else pd.DataFrame(columns=["segment", "share_ref", "share", "shift"])
    level = float(lineage.get("interval_level", cand.calibration.get("level", 0.8)))
    error = backtest_total_error(record.backtest, as_of=as_of, freq=freq)
    est = pre_actuals_estimate(scores, level=level, calibration=cand.calibration or None,
                               model_error=error if np.isfinite(error) else 0.0)
    overall = acc.iloc[0].to_dict()
    boot = {m: bootstrap_interval(joined, metric=m, n_boot=plan.n_boot, seed=plan.seed)
            for m in ("rmse", "realized_total", "interval_coverage")}
    bt = _backtest_figures(record, plan)
    summary = {**{k: overall[k] for k in acc.columns if k != "group"}, **est,
               **{f"{m}_low": lo for m, (lo, _) in boot.items()}, **{f"{m}_high": hi for m, (_, hi) in boot.items()},
               **bt, "max_psi": float(drift["psi"].max()) if len(drift) else float("nan"),
               "max_psi_feature": str(drift["feature"].iloc[0]) if len(drift) else "",
               "max_segment_shift": float(shift["shift"].abs().max()) if len(shift) else float("nan"),
               "unscored_new_users": _unscored(con, as_of, freq, scores, horizon)}
    verdict, reasons = decide(summary, plan.thresholds)
    return MonitorResult(lineage.get("model_uri", ""), lineage["model_version"], lineage["target_period"], verdict,
                         reasons, acc, drift, shift, summary, record.backtest)


def _backtest_figures(record: ModelRecord, plan: MonitorPlan) -> dict[str, float]:
    """Return the version's backtest test figures: mean over test origins, and a bootstrap interval of its RMSE."""
    f = record.candidate.figures
    out = {"backtest_rmse": float(f.test_rmse), "backtest_bias": float(f.test_bias if f.test_bias is not None else np.nan),
           "backtest_interval_coverage": float(f.interval_coverage_80 if f.interval_coverage_80 is not None else np.nan),
           "backtest_brier_p_spend": float(f.brier_p_spend if f.brier_p_spend is not None else np.nan),
           "backtest_rmse_low": float("nan"), "backtest_rmse_high": float("nan")}
    if len(record.predictions):
        preds = record.predictions.assign(split="test")
        boot = bootstrap_rmse({"m": preds}, split="test", n_boot=plan.n_boot, seed=plan.seed)["m"].to_numpy()
        out["backtest_rmse_low"], out["backtest_rmse_high"] = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    return out


def _unscored(con: Any, as_of: dt.date, freq: str, scores: pd.DataFrame, horizon: int = 1) -> int:
    """Users who bought in the target window without a score (first seen after the cutoff)."""
    start = as_of + dt.timedelta(days=1)
    stop = target_window_end(as_of, freq, horizon) + dt.timedelta(days=1)  # type: ignore[arg-type]
    rows = con.execute("SELECT DISTINCT CAST(user_id AS VARCHAR) FROM transactions WHERE ts >= ? AND ts < ? "
                       "AND amount > 0", [dt.datetime.combine(start, dt.time()),
                                          dt.datetime.combine(stop, dt.time())]).fetchall()
    return len({r[0] for r in rows} - set(scores["user_id"].astype(str)))


def execute(plan: MonitorPlan, *, tracking_uri: str | None = None, experiment: str | None = None,
            log_run: bool = True) -> MonitorResult:
    """Run a monitoring plan: check, measure, log to MLflow, write the report (see module docstring).

    Parameters
    ----------
    plan : MonitorPlan
        From :func:`plan_monitor`.
    tracking_uri : str, optional
        The MLflow store.
    experiment : str, optional
        The MLflow experiment of the run (default: the model's own experiment).
    log_run : bool
        Log the monitoring run.

    Returns
    -------
    MonitorResult
        Verdict, tables, and what was written.

    Raises
    ------
    MonitorInputError
        Bad scores or an incomplete period: nothing is written.
    """
    scores, lineage = read_scores(plan.scores, model=plan.model)
    tx = load_transactions(plan.input, plan.format, config=plan.reader)
    check_complete(lineage, date_span(tx)[1], input=plan.input)
    record = model_record(version_uri(lineage), tracking_uri=tracking_uri)
    con = connect()
    try:
        tx.register(con)
        result = measure(scores, lineage, con, record, plan)
    finally:
        con.close()
    return write_report(result, plan, record, lineage, tracking_uri=tracking_uri,
                        experiment=experiment or record.candidate.experiment_config().name, log_run=log_run)


