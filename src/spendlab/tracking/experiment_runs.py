"""Find an experiment's latest finished run and read the candidate it logged (verified by its digest)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from spendlab.errors import SpendlabError
from spendlab.forecast.candidate import Candidate, read_candidate
from spendlab.tracking import runs as tracking
from spendlab.tracking.trust import CANDIDATE_TAG, check_candidate

__all__ = ["latest_experiment_run", "run_candidate"]


def latest_experiment_run(experiment_name: str, *, tracking_uri: str | None = None) -> Any:
    """Find the newest FINISHED parent run of ``spendlab experiment run`` for this experiment.

    Nothing is created when the store or the experiment does not exist.
    """
    tracking.configure(tracking_uri, must_exist=True)
    client = tracking.client()
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


def run_candidate(run: Any, name: str = "candidate.json") -> Candidate:
    """Read the typed candidate an experiment run logged (``candidate.json`` = its champion's)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = tracking.client().download_artifacts(run.info.run_id, name, tmp)
        except Exception as exc:
            raise SpendlabError(f"experiment run {run.info.run_id} has no {name}: re-run the experiment "
                                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        data = Path(path).read_bytes()
        check_candidate(data, run.data.tags.get(CANDIDATE_TAG), source=f"run {run.info.run_id}: {name}")
        try:
            return read_candidate(data.decode("utf-8"), source=f"run {run.info.run_id}: {name}")
        except ValueError as exc:
            raise SpendlabError(str(exc)) from None
