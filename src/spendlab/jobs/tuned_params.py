"""Where tuned hyperparameters live and how an experiment reads them (``configs/tuned/``).

``spendlab tune`` writes ``configs/tuned/<experiment>-<model>.yaml``: the best trial's ``params`` and,
per validation origin, ``fold_params`` chosen without that origin. An experiment run uses ``params``
for the test origins and ``fold_params`` to score each validation origin out of sample.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spendlab.config import load_yaml
from spendlab.errors import ConfigError

if TYPE_CHECKING:
    from spendlab.forecast.protocol import ExperimentConfig

TUNED_DIR = Path("configs/tuned")


def tuned_params_path(experiment_name: str, model_key: str, tuned_dir: Path = TUNED_DIR) -> Path:
    """Where ``spendlab tune`` writes, and experiment runs read, a model's tuned parameters."""
    return tuned_dir / f"{experiment_name}-{model_key}.yaml"


def tuned_params(experiment_name: str, model_key: str, tuned_dir: Path = TUNED_DIR) -> dict[str, Any] | None:
    """Read the ``params:`` of ``configs/tuned/<experiment>-<model>.yaml`` if that file exists."""
    path = tuned_params_path(experiment_name, model_key, tuned_dir)
    if not path.exists():
        return None
    data = load_yaml(path)
    params = data.get("params")
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: a tuned-params file needs a params: mapping")
    return params


def tuned_fold_params(cfg: ExperimentConfig, key: str, tuned_dir: Path = TUNED_DIR) -> dict[dt.date, dict[str, Any]]:
    """Read the ``fold_params`` of the tuned-params file (``spendlab tune``).

    For each validation origin, the settings chosen without it. ``{}`` when the file has none or they do
    not cover every validation origin of ``cfg`` (tuned before cross-fitting, or on other origins): then
    the tuned model's validation score is in sample, and its run says so (``hp.validation_scoring``).
    """
    path = tuned_params_path(cfg.name, key, tuned_dir)
    folds = load_yaml(path).get("fold_params") if path.exists() else None
    if not isinstance(folds, dict):
        return {}
    out = {dt.date.fromisoformat(str(c)): dict(p) for c, p in folds.items() if isinstance(p, dict)}
    if cfg.validation == "auto":  # checked against the resolved origins when the run starts
        return out
    return out if set(cfg.origins("validation")) <= set(out) else {}
