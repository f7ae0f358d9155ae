"""Champion promotion in the MLflow Model Registry.

The champion of an experiment (chosen on validation origins) is refitted on every example whose
label is known at the latest complete period, wrapped in the pyfunc model logged from code
(:mod:`spendlab.tracking.pyfunc_model`) with a signature and an input example, and registered as
``spendlab-next-month``. The alias ``champion`` moves to the new version **only if** its mean
test RMSE beats the current champion's on the same test protocol; otherwise the alias stays and
the version's tags say why. A candidate identical to an existing version (same fingerprint: data,
experiment, model, parameters, feature set, training cutoff) is not registered again, so a rerun
is idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spendlab.config import config_hash
from spendlab.errors import SpendlabError
from spendlab.features.metadata import default_as_of
from spendlab.forecast.intervals import cold_start_fallback
from spendlab.forecast.protocol import fingerprint, protocol_id
from spendlab.forecast.segments import segment_users
from spendlab.forecast.split import training_set
from spendlab.jobs.experiment import feature_store, load_dataset, load_experiment, resolve_params
from spendlab.models.registry import make_model
from spendlab.tracking.registry import (
    Candidate,
    PromotionOutcome,
    champion_intervals,
    latest_experiment_run,
    log_and_register,
)


def _experiment_path(experiment: str) -> Path:
    p = Path(experiment)
    if p.suffix in {".yaml", ".yml"}:
        return p
    candidate = Path("experiments") / f"{experiment}.yaml"
    if not candidate.exists():
        raise SpendlabError(f"no experiment file for {experiment!r} (looked for {candidate})")
    return candidate


def build_candidate(experiment: str, *, tracking_uri: str | None = None, transactions: Any = None,
                    store: Any = None) -> Candidate:
    """Refit the latest experiment run's champion on every example labelled by the last complete period.

    ``store``: a :class:`~spendlab.forecast.backtest.FeatureStore` of the same experiment whose features may
    already be built (the main job shares one across tune, experiment and promote).
    """
    cfg = load_experiment(_experiment_path(experiment))
    run = latest_experiment_run(cfg.name, tracking_uri=tracking_uri)
    key = run.data.tags["champion"]
    metrics = run.data.metrics
    intervals, coverage = champion_intervals(run)
    if key == "ensemble":
        weights = {k.removeprefix("ensemble_weight."): float(v) for k, v in run.data.params.items()
                   if k.startswith("ensemble_weight.") and float(v) > 0}
        members = tuple(sorted(weights))
        params: dict[str, Any] = {"members": members, "weights": weights,
                                  "member_params": {m: resolve_params(cfg, m)[0] for m in members}}
    else:
        params = resolve_params(cfg, key)[0]

    tx = transactions if transactions is not None else load_dataset(cfg)
    store = feature_store(cfg, store if store is not None else tx)
    fcfg = store.feature_config
    train_cutoff = default_as_of(store.con, cfg.freq)
    X, y = training_set(store, train_cutoff, cfg.train_origins)
    estimator = make_model(key, params).fit(X.drop(columns=["user_id"]), y)
    feature_names = [c for c in X.columns if c != "user_id"]
    segments = segment_users(X, active_window=cfg.segments.active_window)
    example = store.features(train_cutoff).head(5).reset_index(drop=True)
    dataset_hash = tx.content_hash()
    fhash = config_hash(fcfg)
    return Candidate(
        model_key=key,
        params=params,
        estimator=estimator,
        feature_names=feature_names,
        feature_config=fcfg.model_dump(mode="json"),
        feature_config_hash=fhash,
        freq=cfg.freq,
        train_cutoff=train_cutoff,
        intervals=intervals,
        active_window=cfg.segments.active_window,
        cold_start=cold_start_fallback(y[segments == "new"]),
        input_example=example,
        test_rmse=float(metrics["champion_rmse"]),
        validation_rmse=float(metrics["champion_validation_rmse"]),
        test_bias=float(metrics.get("champion_bias", float("nan"))),
        interval_coverage=coverage,
        protocol=protocol_id(cfg),
        fingerprint=fingerprint(dataset_hash, cfg.model_dump(mode="json"), key, params, train_cutoff, fhash),
        experiment=cfg.name,
        dataset_hash=dataset_hash[:16],
        extra_tags={"experiment_run_id": run.info.run_id},
    )


def promote_experiment(experiment: str, *, tracking_uri: str | None = None, force: bool = False,
                       transactions: Any = None, store: Any = None) -> PromotionOutcome:
    """Build the champion candidate of ``experiment`` and register it (see module docstring)."""
    candidate = build_candidate(experiment, tracking_uri=tracking_uri, transactions=transactions, store=store)
    return log_and_register(candidate, tracking_uri=tracking_uri, force=force)
