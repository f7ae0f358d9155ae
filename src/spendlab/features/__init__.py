"""Per-user spend panels and leakage-safe as-of features, built in DuckDB.

The one time split is :func:`asof_view`; :func:`build_panel`, :func:`build_features` read only through
it. :func:`build_target` is the only function that reads after the cutoff.
"""

from spendlab.calendar import next_period_start, period_end, period_start, shift_period
from spendlab.features.arrays import FAMILIES, FeatureFamily, FeatureInputs, compute_features, feature_columns
from spendlab.features.build import (
    asof_rows_table,
    asof_view,
    build_features,
    build_features_arrow,
    build_panel,
    build_panel_table,
    build_target,
)
from spendlab.features.config import FeatureConfig

__all__ = [
    "FAMILIES",
    "FeatureConfig",
    "FeatureFamily",
    "FeatureInputs",
    "asof_rows_table",
    "asof_view",
    "build_features",
    "build_features_arrow",
    "build_panel",
    "build_panel_table",
    "build_target",
    "compute_features",
    "feature_columns",
    "next_period_start",
    "period_end",
    "period_start",
    "shift_period",
]
