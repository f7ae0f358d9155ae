"""The candidate: everything that defines a tested model, as one typed, versioned record.

``spendlab experiment run`` writes one ``candidate.json`` per model (its child run; the parent run
holds the champion's and every model's under ``candidates/``). ``spendlab promote`` refits and
registers the champion from that record **alone** (params, feature set, interval calibration,
dataset and protocol), so the registered version is the one that was tested, whatever happened to
``configs/tuned/`` or the experiment YAML meanwhile; ``spendlab evaluate`` re-runs its test protocol.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from spendlab.config import StrictModel
from spendlab.features.config import FeatureConfig
from spendlab.forecast.protocol import ExperimentConfig

#: Bumped whenever a field changes meaning; readers refuse other versions.
CANDIDATE_SCHEMA_VERSION = 1


class Measured(StrictModel):
    """What the candidate scored on the experiment's origins (means over origins)."""

    test_rmse: float
    validation_rmse: float
    test_bias: float | None = None
    interval_coverage_80: float | None = None
    brier_p_spend: float | None = None


class Candidate(StrictModel):
    """One model of one experiment run, as tested (see module docstring)."""

    schema_version: int = CANDIDATE_SCHEMA_VERSION
    model_key: str
    #: Every hyperparameter under its registry-level name (``make_model(model_key, params)``); for the
    #: ensemble ``members``, ``weights`` (blend weights from the validation origins) and ``member_params``.
    params: dict[str, Any]
    tuned: bool = False
    feature_names: list[str]
    feature_config: dict[str, Any]
    feature_config_hash: str
    #: The interval / P(spend) calibration (:func:`spendlab.forecast.intervals.fit_calibration`).
    calibration: dict[str, Any]
    protocol_id: str
    #: The resolved experiment config: dataset, frequency, horizon, origins, segments.
    experiment: dict[str, Any]
    dataset_hash: str
    figures: Measured
    experiment_run_id: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    def experiment_config(self) -> ExperimentConfig:
        """Return the recorded experiment as a validated config."""
        return ExperimentConfig.model_validate(self.experiment)

    def features(self) -> FeatureConfig:
        """Return the feature config, each frequency's lag mapping in the order of :attr:`feature_names`.

        Mapping order is column order; a JSON writer that sorted keys must not change the columns.
        """
        data = json.loads(json.dumps(self.feature_config))
        position = {name: i for i, name in enumerate(self.feature_names)}
        for freq in ("month", "week"):
            lags = (data.get(freq) or {}).get("lags")
            if isinstance(lags, dict):
                data[freq]["lags"] = dict(sorted(lags.items(), key=lambda kv: position.get(f"{kv[0]}_lag1", len(position))))
        return FeatureConfig.model_validate(data)

    def to_json(self) -> str:
        """Return the candidate as JSON text, keys in their recorded order."""
        # Key order is kept, not sorted: the feature config's mapping order is its column order, and
        # column order changes what LightGBM's column sampling draws.
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    @property
    def candidate_id(self) -> str:
        """Hash what defines the model (not the run that tested it).

        Promoting the same candidate twice, from any run, is recognised as the same.
        """
        payload = self.model_dump(mode="json", exclude={"experiment_run_id", "figures", "extra"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def read_candidate(text: str, *, source: str = "candidate.json") -> Candidate:
    """Parse a ``candidate.json``; another schema version is an error naming both."""
    data = json.loads(text)
    version = data.get("schema_version")
    if version != CANDIDATE_SCHEMA_VERSION:
        raise ValueError(f"{source}: candidate schema version {version}, this spendlab reads "
                         f"{CANDIDATE_SCHEMA_VERSION}; re-run the experiment")
    return Candidate.model_validate(data)
