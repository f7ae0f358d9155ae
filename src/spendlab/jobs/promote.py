"""Champion promotion in the MLflow Model Registry, from the tested candidate alone.

The latest experiment run's ``candidate.json`` (its champion: registry key, every hyperparameter,
blend weights, feature set, interval calibration, dataset and protocol) is refitted on every example
whose label is known at the latest complete period, wrapped in the pyfunc model logged from code
(:mod:`spendlab.tracking.pyfunc_model`) and registered as ``spendlab-next-month``. Neither the
experiment YAML nor ``configs/tuned/`` is read for parameters: a ``spendlab tune`` between the
experiment and the promotion changes nothing here. The alias ``champion`` moves to the new version
**only if** its test RMSE beats the current champion's on the same test protocol. The same candidate
on the same data (fingerprint) is not registered twice, so a rerun is a no-op.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from spendlab.errors import SpendlabError
from spendlab.features.metadata import default_as_of
from spendlab.features.segments import segment_users
from spendlab.features.store import FeatureStore
from spendlab.forecast.candidate import Candidate
from spendlab.forecast.cold_start import cold_users, training_fallback
from spendlab.forecast.sampling import training_rows, weight_kwargs
from spendlab.forecast.split import training_set
from spendlab.jobs.experiment import load_dataset, load_experiment
from spendlab.models.registry import make_model
from spendlab.monitor.drift import reference_profile
from spendlab.tracking.experiment_runs import latest_experiment_run, run_candidate
from spendlab.tracking.registry import PromotionOutcome, Refit, log_and_register
from spendlab.tracking.trust import signing_key


def experiment_name(experiment: str) -> str:
    """Name the experiment: given as is, or read (only the name) from an experiment YAML path."""
    p = Path(experiment)
    if p.suffix in {".yaml", ".yml"}:
        return load_experiment(p).name
    return experiment


def candidate_store(candidate: Candidate, *, transactions: Any = None, store: Any = None) -> tuple[Any, FeatureStore]:
    """Load the candidate's data (its logged dataset) and a feature store with the candidate's own feature set."""
    cfg = candidate.experiment_config()
    tx = transactions if transactions is not None else load_dataset(cfg)
    return tx, FeatureStore.from_source(store if store is not None else tx, freq=cfg.freq, horizon=cfg.horizon,
                                        feature_config=candidate.features())


def refit(candidate: Candidate, *, transactions: Any = None, store: Any = None,
          cutoff: dt.date | None = None) -> Refit:
    """Fit the candidate's estimator on every example labelled by the last complete period.

    ``store``: a :class:`~spendlab.features.store.FeatureStore` over the same data whose features may
    already be built (the main job shares one across tune, experiment and promote). ``cutoff``: fit
    as of another period end instead (the backtest's model of that origin; replays use it).
    """
    cfg = candidate.experiment_config()
    tx, store = candidate_store(candidate, transactions=transactions, store=store)
    train_cutoff = cutoff or default_as_of(store.con, cfg.freq)
    X, y = training_set(store, train_cutoff, cfg.train_origins)
    names = [c for c in X.columns if c != "user_id"]
    if sorted(names) != sorted(candidate.feature_names):
        raise SpendlabError(f"the data's features {sorted(set(names) ^ set(candidate.feature_names))} differ "
                            "from the candidate's")
    X_fit, y_fit, w_fit = training_rows(candidate.model_key, X, y, zero_fraction=cfg.train_zero_fraction,
                                        seed=cfg.seed)  # the rows and weights the backtest fitted on
    estimator = make_model(candidate.model_key, candidate.params).fit(X_fit[candidate.feature_names], y_fit,
                                                                      **weight_kwargs(w_fit))
    return Refit(
        candidate=candidate,
        estimator=estimator,
        train_cutoff=train_cutoff,
        cold_start=training_fallback(X, y, active_window=cfg.segments.active_window, level=cfg.interval_level),
        input_example=store.features(train_cutoff).head(5).reset_index(drop=True),
        dataset_hash=tx.content_hash(),
        reference=training_reference(store.features(train_cutoff), active_window=cfg.segments.active_window),
    )


def training_reference(features: Any, *, active_window: int) -> dict[str, Any]:
    """Return the reference profile of the population at the training cutoff (logged with the version).

    Parameters
    ----------
    features : pandas.DataFrame
        As-of features at the training cutoff.
    active_window : int
        The segments' active window.

    Returns
    -------
    dict
        :func:`spendlab.monitor.drift.reference_profile`.
    """
    return reference_profile(features, segment_users(features, active_window=active_window), cold_users(features))


def promote_experiment(experiment: str, *, tracking_uri: str | None = None, force: bool = False,
                       transactions: Any = None, store: Any = None) -> PromotionOutcome:
    """Refit the latest experiment run's tested champion and register it (see module docstring).

    The store is looked up first: a missing store or experiment is an error that creates nothing. A
    ``candidate.json`` whose bytes differ from the digest its run recorded is refused; with
    ``$SPENDLAB_SIGNING_KEY`` set the registered model is also signed.
    """
    run = latest_experiment_run(experiment_name(experiment), tracking_uri=tracking_uri)
    candidate = run_candidate(run)
    return log_and_register(refit(candidate, transactions=transactions, store=store), tracking_uri=tracking_uri,
                            force=force, key=signing_key())
