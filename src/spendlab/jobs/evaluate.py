"""``spendlab evaluate MODEL_URI EXPERIMENT.yaml``: re-run a registered version's test protocol.

The version's ``candidate.json`` (read from the verified model directory, nothing unpickled) gives
the model, its hyperparameters and feature set; the experiment YAML gives the data and the test
origins, and must describe the same protocol (:func:`~spendlab.forecast.protocol.protocol_id`). The
backtest on the test origins must reproduce the test RMSE recorded when the candidate was tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spendlab.errors import SpendlabError
from spendlab.forecast.backtest import run_backtest
from spendlab.forecast.protocol import protocol_id
from spendlab.jobs.experiment import load_dataset, load_experiment
from spendlab.jobs.promote import candidate_store
from spendlab.tracking import runs as tracking
from spendlab.tracking.registry import read_model_candidate, verified_model_dir

#: How close the re-run must come to the recorded test RMSE.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Evaluation:
    """The recorded and the reproduced test RMSE of a registered model version."""

    model_uri: str
    version: str
    model_key: str
    recorded_test_rmse: float
    test_rmse: float
    per_origin: Any

    @property
    def difference(self) -> float:
        """Return the absolute difference between the reproduced and the recorded test RMSE."""
        return abs(self.test_rmse - self.recorded_test_rmse)

    @property
    def reproduced(self) -> bool:
        """Tell whether the reproduced test RMSE matches the recorded one within the tolerance."""
        return self.difference <= TOLERANCE


def evaluate_model(model_uri: str, experiment_path: Path, *, tracking_uri: str | None = None,
                   transactions: Any = None) -> Evaluation:
    """Backtest the version's recorded candidate on the experiment's test origins."""
    cfg = load_experiment(experiment_path)
    if model_uri.startswith("models:/"):
        tracking.configure(tracking_uri, must_exist=True)
    with verified_model_dir(model_uri, tracking_uri=tracking_uri) as (local, version, _):
        candidate = read_model_candidate(local)
    if candidate.protocol_id != protocol_id(cfg):
        raise SpendlabError(f"{model_uri} was tested on protocol {candidate.protocol_id}; {experiment_path} "
                            f"describes protocol {protocol_id(cfg)} (other data, frequency, horizon or test origins)")
    _, store = candidate_store(candidate, transactions=transactions if transactions is not None else load_dataset(cfg))
    res = run_backtest(store, experiment=candidate.experiment_config(), model_key=candidate.model_key,
                       params=candidate.params, origins="test")
    return Evaluation(model_uri, version, candidate.model_key, float(candidate.figures.test_rmse),
                      float(res.means["test_rmse"]), res.per_origin)
