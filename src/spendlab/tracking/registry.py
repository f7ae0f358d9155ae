"""The MLflow Model Registry side of promotion: log a candidate as a pyfunc model, register it,
move the ``champion`` alias only if it wins on the same test protocol.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from spendlab import __version__
from spendlab.errors import SpendlabError
from spendlab.tracking import pyfunc_model
from spendlab.tracking import runs as tracking

REGISTERED_MODEL = "spendlab-next-month"


ALIAS = "champion"


#: The pyfunc's inference params and their defaults (part of the signature): ``n_threads`` = threads
#: ``predict`` may use, 0 = the model's own setting. Batch scoring passes the machine's cores.
PREDICT_PARAMS: dict[str, int] = {"n_threads": 0}


#: Exit code of ``spendlab promote`` when the candidate does not take the alias.
EXIT_NOT_PROMOTED = 4


@dataclass
class Candidate:
    """A refitted champion ready to be logged."""

    model_key: str
    params: dict[str, Any]
    estimator: Any
    feature_names: list[str]
    feature_config: dict[str, Any]
    feature_config_hash: str
    freq: str
    train_cutoff: dt.date
    intervals: dict[str, Any]
    active_window: int
    cold_start: dict[str, float]
    input_example: pd.DataFrame
    test_rmse: float
    validation_rmse: float
    test_bias: float
    interval_coverage: float
    protocol: str
    fingerprint: str
    experiment: str
    dataset_hash: str
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    version: str
    previous_champion: str | None
    reason: str
    new_version: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.promoted else EXIT_NOT_PROMOTED


def log_and_register(
    candidate: Candidate,
    *,
    tracking_uri: str | None = None,
    registered_model: str = REGISTERED_MODEL,
    alias: str = ALIAS,
    force: bool = False,
) -> PromotionOutcome:
    """Log ``candidate`` as a pyfunc model from code, register it, and move the alias if it wins."""
    import joblib
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature


    tracking.configure(tracking_uri)
    client = MlflowClient()
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model, description="Next-period spend per user (spendlab).")

    same = client.search_model_versions(f"name = '{registered_model}' and tag.fingerprint = '{candidate.fingerprint}'")
    current = _current_champion(client, registered_model, alias)
    if same:
        version = str(max(int(v.version) for v in same))
        is_champion = current is not None and str(current.version) == version
        reason = (f"unchanged: an identical candidate is already version {version}"
                  + (" (the champion)" if is_champion else " (not the champion)"))
        return PromotionOutcome(is_champion, version, str(current.version) if current else None, reason, False)

    promoted, reason = _decide(candidate, current, force)
    exp_id = tracking.ensure_experiment(candidate.experiment)
    with tempfile.TemporaryDirectory() as tmp:
        est_path = Path(tmp) / "estimator.joblib"
        joblib.dump(candidate.estimator, est_path)
        intervals_path = Path(tmp) / "intervals.json"
        intervals_path.write_text(json.dumps(candidate.intervals, sort_keys=True))
        model_config = {
            "estimator_sha256": pyfunc_model.file_sha256(str(est_path)),
            "feature_names": candidate.feature_names,
            "feature_config": candidate.feature_config,
            "feature_config_hash": candidate.feature_config_hash,
            "freq": candidate.freq,
            "train_cutoff": candidate.train_cutoff.isoformat(),
            "model_key": candidate.model_key,
            "active_window": candidate.active_window,
            "cold_start": candidate.cold_start,
            "spendlab_version": __version__,
        }
        example = candidate.input_example
        loaded = pyfunc_model.SpendForecaster()
        loaded.bind(candidate.estimator, candidate.intervals, candidate.feature_names, candidate.active_window)
        signature = infer_signature(example, loaded.predict(None, example), params=PREDICT_PARAMS)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"promote-{candidate.model_key}",
                              tags={**tracking.base_tags(), "kind": "promotion", "model": candidate.model_key}):
            mlflow.log_params({"model_key": candidate.model_key, "train_cutoff": candidate.train_cutoff.isoformat(),
                               **{f"param_{k}": str(v)[:500] for k, v in candidate.params.items()}})
            mlflow.log_metrics({"test_rmse": candidate.test_rmse, "validation_rmse": candidate.validation_rmse})
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(pyfunc_model.__file__)),
                artifacts={"estimator": str(est_path), "intervals": str(intervals_path)},
                model_config=model_config,
                signature=signature,
                input_example=example,
                pip_requirements=[f"spendlab=={__version__}"],
            )
    with _quiet_registration():
        mv = mlflow.register_model(info.model_uri, registered_model)
    version = str(mv.version)
    tags = {
        "fingerprint": candidate.fingerprint,
        "model_key": candidate.model_key,
        "experiment": candidate.experiment,
        "protocol": candidate.protocol,
        "test_rmse": f"{candidate.test_rmse:.6f}",
        "validation_rmse": f"{candidate.validation_rmse:.6f}",
        "test_bias": f"{candidate.test_bias:.6f}",
        "interval_coverage_80": f"{candidate.interval_coverage:.4f}",
        "train_cutoff": candidate.train_cutoff.isoformat(),
        "feature_set_version": candidate.feature_config_hash,
        "dataset_hash": candidate.dataset_hash,
        "promoted": str(promoted).lower(),
        "promotion_reason": reason,
        **candidate.extra_tags,
    }
    for k, v in tags.items():
        client.set_model_version_tag(registered_model, version, k, v)
    if promoted:
        client.set_registered_model_alias(registered_model, alias, version)
    return PromotionOutcome(promoted, version, str(current.version) if current else None, reason, True)


@contextlib.contextmanager
def _quiet_registration() -> Iterator[None]:
    """Drop MLflow's registration chatter from stderr ("Registered model ... already exists" on the
    very first version, since spendlab creates the model with its description first); spendlab
    reports the outcome itself. Anything else written meanwhile is passed through."""
    chatter = ("Successfully registered model ", "Registered model ", "Created version ")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        rest = [line for line in buf.getvalue().splitlines(keepends=True) if not line.startswith(chatter)]
        sys.stderr.write("".join(rest))


def _current_champion(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _decide(candidate: Candidate, current: Any, force: bool) -> tuple[bool, str]:
    """Whether the candidate takes the alias, and the reason (stored on the version)."""
    if current is None:
        return True, f"first champion (test RMSE {candidate.test_rmse:.4f})"
    cur_tags = current.tags or {}
    cur_rmse = float(cur_tags.get("test_rmse", "inf"))
    if cur_tags.get("protocol") != candidate.protocol:
        if force:
            return True, f"forced: protocol {candidate.protocol} differs from the champion's {cur_tags.get('protocol')}"
        return False, (f"not comparable: the champion (version {current.version}) was tested on protocol "
                       f"{cur_tags.get('protocol')}, the candidate on {candidate.protocol}; use --force")
    if candidate.test_rmse < cur_rmse:
        return True, (f"beats champion version {current.version}: test RMSE {candidate.test_rmse:.4f} "
                      f"< {cur_rmse:.4f}")
    if force:
        return True, f"forced over version {current.version} (test RMSE {candidate.test_rmse:.4f} >= {cur_rmse:.4f})"
    return False, (f"does not beat champion version {current.version}: test RMSE {candidate.test_rmse:.4f} "
                   f">= {cur_rmse:.4f}")


def latest_experiment_run(experiment_name: str, *, tracking_uri: str | None = None) -> Any:
    """The newest FINISHED parent run of ``spendlab experiment run`` for this experiment."""
    from mlflow import MlflowClient


    tracking.configure(tracking_uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        raise SpendlabError(f"no MLflow experiment {experiment_name!r}: run `spendlab experiment run` first")
    runs = client.search_runs([exp.experiment_id],
                              filter_string="tags.kind = 'experiment' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs or "champion" not in runs[0].data.tags:
        raise SpendlabError(f"experiment {experiment_name!r} has no finished run with a champion; "
                            "run `spendlab experiment run` first")
    return runs[0]


def champion_intervals(run: Any) -> tuple[dict[str, Any], float]:
    """The champion's interval calibration (from the experiment run's ``intervals.json``) and its
    logged test coverage (NaN when the champion has no run of its own)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    key = run.data.tags["champion"]
    with tempfile.TemporaryDirectory() as tmp:
        intervals_file = client.download_artifacts(run.info.run_id, "intervals.json", tmp)
        intervals_all = json.loads(Path(intervals_file).read_text())
    coverage = float("nan")
    child_id = run.data.tags.get("champion_run_id")
    if child_id:
        coverage = float(client.get_run(child_id).data.metrics.get("interval_coverage_80", float("nan")))
    return intervals_all["models"][key], coverage
