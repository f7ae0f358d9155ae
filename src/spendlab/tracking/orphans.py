"""End the runs whose creating process is gone: a killed job leaves no run ``RUNNING`` forever."""

from __future__ import annotations

from spendlab.io.recovery import HOST_TAG, PID_TAG, owner_alive
from spendlab.tracking.runs import client, configure

__all__ = ["mark_orphaned_runs"]


def mark_orphaned_runs(experiment_name: str | None = None, *, tracking_uri: str | None = None) -> list[str]:
    """End ``KILLED`` every ``RUNNING`` run whose creating process is gone from this host.

    Runs of ``experiment_name`` (every experiment when ``None``). A run from another host, or
    without spendlab's owner tags, is left alone (its owner cannot be checked from here). Each
    marked run gets a ``killed_reason`` tag. Returns the ids of the runs marked.
    """
    import time

    from mlflow.entities import ViewType

    configure(tracking_uri)
    c = client()
    if experiment_name is None:
        ids = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ALL)]
    else:
        exp = c.get_experiment_by_name(experiment_name)
        ids = [] if exp is None else [exp.experiment_id]
    marked: list[str] = []
    for i in range(0, len(ids), 100):
        token = None
        while True:
            page = c.search_runs(ids[i:i + 100], filter_string="attributes.status = 'RUNNING'",
                                 run_view_type=ViewType.ALL, max_results=1000, page_token=token)
            for run in page:
                tags = run.data.tags
                if owner_alive(tags) is False:
                    c.set_tag(run.info.run_id, "killed_reason",
                              f"orphaned: process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} ended without "
                              f"closing the run (found {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})")
                    c.set_terminated(run.info.run_id, "KILLED")
                    marked.append(run.info.run_id)
            token = page.token
            if not token:
                break
    return marked
