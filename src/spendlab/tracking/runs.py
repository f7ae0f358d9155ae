"""Everything MLflow: the one module that knows the tracking store and how runs are laid out.

Store: ``sqlite:///mlruns/mlflow.db`` relative to the working directory (the plain file store is
deprecated), artifacts under ``mlruns/<experiment>``. Layout: one parent run per invocation, one
child run per model (tag ``model=<key>``), nested trial runs for tuning studies. A run whose block
raises ends ``FAILED`` with a ``failure_reason`` tag; non-finite metrics are never logged (a
``nonfinite_metrics`` tag lists them instead, so no ``1.797e308`` clamp reaches the store).

Crash and concurrency safety: every run is tagged with the pid, host and start time of the process
that created it, and :func:`spendlab.tracking.orphans.mark_orphaned_runs` ends ``KILLED`` the ``RUNNING`` runs whose process
is gone (a ``kill -9`` leaves them ``RUNNING``). A SQLite store is created and migrated under an
inter-process file lock (concurrent first runs raced in alembic), and client calls are retried
with backoff on SQLite's "database is locked".
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import spendlab
from spendlab import __version__
from spendlab.errors import SpendlabError
from spendlab.io.recovery import file_lock, process_tags, retry

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACT_ROOT = Path("mlruns")
_MAX_PARAM_CHARS = 6000  # MLflow's param value limit is 6000 characters
_MAX_TAG_CHARS = 5000


def tracking_uri(uri: str | None = None) -> str:
    """Return the tracking URI: ``uri`` if given, else ``sqlite:///mlruns/mlflow.db`` (relative to cwd)."""
    return uri or DEFAULT_TRACKING_URI


def configure(uri: str | None = None, *, must_exist: bool = False) -> str:
    """Point MLflow at the store (creating ``mlruns/``), synchronous logging, quiet loggers.

    ``must_exist``: for look-ups (promote, score, evaluate, compare): a SQLite store that does not
    exist is an error and nothing is created. Artifacts of new experiments go next to a SQLite
    store (``sqlite:///x/mlflow.db`` -> ``x/``), else under ``mlruns/``.
    """
    import mlflow

    global _artifact_root
    resolved = tracking_uri(uri)
    if must_exist and resolved.startswith("sqlite:///") and not Path(resolved.removeprefix("sqlite:///")).exists():
        raise SpendlabError(f"no MLflow tracking store at {resolved} (use --tracking-uri or MLFLOW_TRACKING_URI; "
                            "run `spendlab experiment run` first)")
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("alembic", "mlflow", "mlflow.store", "mlflow.tracking", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    active = resolved
    if resolved.startswith("sqlite:///"):
        db = Path(resolved.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        # MLflow caches one store (and its pooled SQLite connections) per URI string: with the
        # relative URI, a process that changes directory kept writing to the first directory's store.
        active = "sqlite:///" + str(db.resolve())
        _artifact_root = db.resolve().parent
    else:
        _artifact_root = ARTIFACT_ROOT.resolve()
        ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(active)
    _initialise_store(active)
    return resolved


_INITIALISED: set[str] = set()
_artifact_root: Path = ARTIFACT_ROOT


def _initialise_store(uri: str) -> None:
    """Create or migrate a SQLite store once, under a file lock.

    Several processes starting on a new store at once otherwise race in the schema migration
    ("table ... already exists").
    """
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///")).resolve()
    if str(db) in _INITIALISED:
        return
    from mlflow import MlflowClient


    with file_lock(db.with_name(db.name + ".lock")):
        retry(lambda: MlflowClient(tracking_uri=uri).search_experiments(max_results=1))
    _INITIALISED.add(str(db))


class _RetryingClient:
    """``MlflowClient`` whose calls are retried with backoff while SQLite reports a lock."""

    def __init__(self) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient()

    def __getattr__(self, name: str) -> Any:

        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: retry(lambda: attr(*args, **kwargs))


def client() -> Any:
    """Make an MLflow client for the configured store whose calls retry on "database is locked"."""
    return _RetryingClient()


def ensure_experiment(name: str) -> str:
    """Get the id of experiment ``name``, created with its artifacts under ``mlruns/<name>``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = _artifact_root.resolve().as_uri() + "/" + name
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it in between
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit() -> str:
    """Return the commit of the spendlab source that runs.

    ``unknown`` when it is not a git checkout (e.g. an installed wheel); ``+dirty`` if tracked files are
    modified. Asked in the package's own directory, so runs from any working directory record the
    code's commit, not the cwd's.
    """
    where = Path(spendlab.__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True,
                             cwd=where)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True, cwd=where)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def split_finite(metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Finite metrics, and the names of the NaN/inf ones (flagged, never logged)."""
    good, bad = {}, []
    for k, v in metrics.items():
        if v is None or not math.isfinite(float(v)):
            bad.append(k)
        else:
            good[k] = float(v)
    return good, bad


def _param_value(v: Any) -> str:
    s = str(v)
    return s if len(s) <= _MAX_PARAM_CHARS else s[: _MAX_PARAM_CHARS - 3] + "..."


@dataclass
class RunLog:
    """Writes to one run through the client (works for any run, active or not)."""

    run_id: str
    nonfinite: list[str] = field(default_factory=list)

    @property
    def _client(self) -> Any:
        return _RetryingClient()

    def metric(self, key: str, value: float, step: int | None = None) -> None:
        """Log one metric; a missing or non-finite value is skipped."""
        if value is None or not math.isfinite(float(value)):
            self._flag(key if step is None else f"{key}@{step}")
            return
        self._client.log_metric(self.run_id, key, float(value), step=step or 0)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics in one batch; missing or non-finite values are skipped."""
        self.metric_steps({step: values})

    def metric_steps(self, by_step: Mapping[int | None, Mapping[str, float]]) -> None:
        """Metrics at several steps in as few ``log_batch`` calls as MLflow allows (500 metrics each).

        Parameters
        ----------
        by_step : mapping
            step (``None`` = 0, unflagged) -> metric name -> value; NaN/inf values are flagged, not logged.
        """
        import time

        from mlflow.entities import Metric

        ts, batch = int(time.time() * 1000), []
        for step, values in by_step.items():
            good, bad = split_finite(values)
            for k in bad:
                self._flag(k if step is None else f"{k}@{step}")
            batch += [Metric(k, v, ts, step or 0) for k, v in good.items()]
        for i in range(0, len(batch), 500):
            self._client.log_batch(self.run_id, metrics=batch[i:i + 500], synchronous=True)

    def _flag(self, key: str) -> None:
        self.nonfinite.append(key)
        self._client.set_tag(self.run_id, "nonfinite_metrics", ",".join(self.nonfinite)[:_MAX_TAG_CHARS])

    def params(self, values: Mapping[str, Any]) -> None:
        """Log several params in one batch."""
        from mlflow.entities import Param

        batch = [Param(str(k), _param_value(v)) for k, v in values.items()]
        for i in range(0, len(batch), 100):
            self._client.log_batch(self.run_id, params=batch[i:i + 100], synchronous=True)

    def tag(self, key: str, value: Any) -> None:
        """Set one tag (its value as text, truncated to MLflow's limit)."""
        self._client.set_tag(self.run_id, key, str(value)[:_MAX_TAG_CHARS])

    def tags(self, values: Mapping[str, Any]) -> None:
        """Set several tags."""
        for k, v in values.items():
            self.tag(k, v)

    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a local file or directory as an artifact."""
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def text(self, text: str, name: str) -> None:
        """Log ``text`` as the artifact ``name``."""
        self._client.log_text(self.run_id, text, name)

    def figure(self, fig: Any, name: str) -> None:
        """Log a matplotlib figure as the artifact ``name`` and close it."""
        import matplotlib.pyplot as plt

        try:
            self._client.log_figure(self.run_id, fig, name)
        finally:
            plt.close(fig)

    def table(self, df: pd.DataFrame, name: str) -> None:
        """Log a DataFrame as a CSV (or Parquet, by the name's suffix) artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / Path(name).name
            if p.suffix == ".parquet":
                df.to_parquet(p, index=False)
            else:
                df.to_csv(p, index=False)
            parent = str(Path(name).parent)
            self.artifact(p, None if parent == "." else parent)


@contextlib.contextmanager
def terminating_run(run_id: str, end_time: int | None = None) -> Iterator[RunLog]:
    """Terminate ``run_id`` FINISHED, or FAILED when the block raises.

    FINISHED at ``end_time`` (epoch ms, when given: work measured before the run was created); FAILED
    with ``failure_reason`` at the current time.
    """
    MlflowClient = _RetryingClient

    log = RunLog(run_id)
    try:
        yield log
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        with contextlib.suppress(Exception):
            log.tag("failure_reason", reason)
            # Pruned Optuna trials are not failures of the job.
            status = "KILLED" if type(exc).__name__ in {"TrialPruned", "KeyboardInterrupt"} else "FAILED"
            MlflowClient().set_terminated(run_id, status)
        raise
    else:
        MlflowClient().set_terminated(run_id, "FINISHED", end_time=end_time)


def create_run(experiment_id: str, run_name: str, tags: Mapping[str, Any], parent_run_id: str | None,
                start_time: int | None = None) -> str:
    """Create a run with ``tags`` (cut to MLflow's limit), the process tags and its parent; return its id."""
    all_tags = {k: str(v)[:_MAX_TAG_CHARS] for k, v in tags.items()}
    all_tags.update(process_tags())  # pid, host, process start: orphan detection after a kill -9
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = _RetryingClient().create_run(experiment_id, start_time=start_time, tags=all_tags, run_name=run_name)
    return run.info.run_id


def base_tags() -> dict[str, str]:
    """Tags on every spendlab run: git commit and spendlab version."""
    return {"git_commit": git_commit(), "spendlab_version": __version__}


@contextlib.contextmanager
def start_parent_run(experiment_name: str, *, run_name: str, tags: Mapping[str, Any] | None = None,
                     tracking_uri: str | None = None) -> Iterator[RunLog]:
    """One parent run per invocation; yields its :class:`RunLog` (``.run_id``)."""
    configure(tracking_uri)
    exp_id = ensure_experiment(experiment_name)
    run_id = create_run(exp_id, run_name, {**base_tags(), **(tags or {})}, None)
    with terminating_run(run_id) as log:
        yield log


@contextlib.contextmanager
def child_run(parent: RunLog | str, *, run_name: str, tags: Mapping[str, Any] | None = None,
              start_time: float | None = None, end_time: float | None = None) -> Iterator[RunLog]:
    """Open a run nested under ``parent`` in the parent's experiment.

    ``start_time`` / ``end_time`` (epoch seconds) date the run by the work it records when that
    work ran before the run was created (a backtest on a worker thread, logged afterwards), so the
    MLflow UI shows each model's real duration instead of the seconds its logging took.
    """
    from mlflow import MlflowClient

    parent_id = parent.run_id if isinstance(parent, RunLog) else parent
    exp_id = MlflowClient().get_run(parent_id).info.experiment_id
    run_id = create_run(exp_id, run_name, {**base_tags(), **(tags or {})}, parent_id,
                         start_time=_ms(start_time))
    with terminating_run(run_id, end_time=_ms(end_time)) as log:
        yield log


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))


#: Prefix of the per-origin metrics: MLflow lists metric keys as they sort and offers no order of
#: its own; the prefix keeps the per-origin series apart from the headline means (whose plain names
#: ``test_rmse``, ``validation_rmse`` compare, promote and tune read) and gives them one chart section.
ORIGIN_PREFIX = "origin/"


def search_runs(experiment_name: str, *, tracking_uri: str | None = None,
                filter_string: str = "") -> pd.DataFrame:
    """``mlflow.search_runs`` over one experiment (empty frame when it does not exist)."""
    import mlflow
    import pandas as pd

    configure(tracking_uri, must_exist=True)
    exp = mlflow.get_experiment_by_name(experiment_name)
    if exp is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string=filter_string,
                              output_format="pandas")


# --- tuning studies (used by spendlab.jobs.tune) ------------------------------------------------


