"""A build for some columns (``build_features_arrow(columns=...)``) gives the full build's values for them.

The pruned build aggregates only what the asked columns read (:func:`spendlab.features.arrays.feature_needs`),
so each column is checked alone, and each registry model's inputs together with the columns scoring
adds (:func:`spendlab.tracking.scorer.scoring_columns`), against the full build: same users, same
order, bit-identical values. The declared inputs are checked against what the arithmetic really reads.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from spendlab.features import FeatureConfig, build_features_arrow, feature_columns
from spendlab.features.arrays import FeatureInputs, feature_needs
from spendlab.features.config import FreqFeatures, RollingSpec
from spendlab.features.sql import aggregate_sql, stats_plan, user_stats_from_sums_sql
from spendlab.models.customer_base import RFM_COLUMNS
from spendlab.models.registry import MODELS
from spendlab.tracking.scorer import SCORING_EXTRA_COLUMNS

from .conftest import random_transactions, tx_con

CONFIGS = {
    "default": FeatureConfig(),
    "every_option": FeatureConfig(
        btyd=True,
        weekly_activity_windows=(2, 9),
        month=FreqFeatures(lags={"spend": 4, "refund_amount": 2, "active_days": 1},
                           rolling=(RollingSpec(column="spend", stats=("mean", "std", "max"), windows=(2, 5)),
                                    RollingSpec(column="n_transactions", stats=("mean",), windows=(3,))),
                           trend_windows=(3,), expanding_mean=True, ewm_alphas=(0.3, 0.7), ewm_window=6),
        week=FreqFeatures(lags={"spend": 3, "n_transactions": 2}, trend_windows=(4, 8), ewm_alphas=(0.5,),
                          ewm_window=5, expanding_mean=True),
    ),
}
#: Cutoffs inside the fixture's 500 days: early (short histories, windows clamped) and late.
CUTOFFS = (dt.date(2021, 2, 17), dt.date(2022, 2, 28))
#: What the BTYD models read (besides the RFM columns, when present).
BTYD_EXTRAS = ("n_periods", "asof_days_in_period", "target_days_in_period")


@pytest.fixture(scope="module")
def con():
    c = tx_con(random_transactions(11, users=30, rows=500))
    yield c
    c.close()


def _model_reads(key: str, columns: list[str]) -> list[str]:
    """The feature columns registry model ``key`` reads from a frame of ``columns``.

    A baseline records them when fitted (``columns_``); the customer-base models read the RFM columns
    and the period's days; every learned model and combination reads every column.
    """
    import pandas as pd

    if key in ("bgnbd_gg", "bgnbd_seasonal"):
        return [c for c in (*RFM_COLUMNS, *BTYD_EXTRAS) if c in columns]
    est = MODELS[key]()
    if hasattr(est, "_columns"):
        est.fit(pd.DataFrame({c: np.zeros(3) for c in columns}), np.zeros(3))
        return list(est.columns_)
    return list(columns)


def _subsets(config: FeatureConfig, freq: str, *, single_columns: bool) -> dict[str, list[str]]:
    every = feature_columns(config, freq)[1:]
    scoring = [*SCORING_EXTRA_COLUMNS, "spend_lag1", "spend_lag2", "spend_lag3"]
    out = {f"model:{key}": list(dict.fromkeys([*_model_reads(key, every), *scoring])) for key in MODELS}
    out.update({f"model_alone:{key}": _model_reads(key, every) for key in MODELS})
    if single_columns:
        out.update({f"column:{c}": [c] for c in every})
    return out


def _check_subsets(con, config: FeatureConfig, freq: str, as_of: dt.date, *,
                   single_columns: bool) -> int:
    full = build_features_arrow(con, freq=freq, as_of=as_of, config=config)
    checked = 0
    for name, cols in _subsets(config, freq, single_columns=single_columns).items():
        part = build_features_arrow(con, freq=freq, as_of=as_of, config=config, columns=cols)
        assert part.column_names == ["user_id", *(c for c in full.column_names[1:] if c in cols)], name
        assert part.column("user_id").equals(full.column("user_id")), name
        for c in part.column_names[1:]:
            a, b = part.column(c).to_numpy(), full.column(c).to_numpy()
            assert np.array_equal(a, b), f"{name}: {c} differs from the full build"
        checked += 1
    return checked


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("freq", ["month", "week"])
@pytest.mark.parametrize("as_of", CUTOFFS, ids=str)
def test_pruned_build_equals_full_build_for_every_model_and_column(con, config_name: str, freq: str,
                                                                   as_of: dt.date) -> None:
    # every column alone at one cutoff (the early one clamps the windows to short histories)
    single = as_of == CUTOFFS[0]
    assert _check_subsets(con, CONFIGS[config_name], freq, as_of, single_columns=single) >= 2 * len(MODELS)


def test_btyd_model_needs_no_window_and_no_event_join() -> None:
    needs = feature_needs(FeatureConfig(), "month", RFM_COLUMNS)
    assert needs.widths == {}
    assert needs.stats == {"n_periods", "purchase_days", "recency_days", "first_seen_day", "spend_total",
                           "first_purchase_day_spend"}
    sums, periods = stats_plan(needs.stats)
    assert "event_spend" not in periods and "refund_amount" not in periods
    sql = aggregate_sql(dt.date(2024, 12, 31), "month", "SELECT * FROM t", periods)
    assert "spendlab_event_days" not in sql and "refund" not in sql
    assert "first_purchase_day_spend" in user_stats_from_sums_sql(FeatureConfig(), "s", "f", needs.stats)


def test_lag_only_needs_just_that_many_periods_of_that_column() -> None:
    needs = feature_needs(FeatureConfig(), "month", ["spend_lag3", "n_transactions_lag2"])
    assert needs.widths == {"spend": 3, "n_transactions": 2}
    assert needs.stats == {"n_periods"}
    assert needs.columns == ("spend_lag3", "n_transactions_lag2")
    assert stats_plan(needs.stats)[0] == {"n_periods"}


def test_full_needs_are_the_full_widths() -> None:
    for freq in ("month", "week"):
        from spendlab.features.arrays import window_widths

        assert feature_needs(FeatureConfig(), freq).widths == window_widths(FeatureConfig(), freq)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("freq", ["month", "week"])
def test_declared_inputs_are_all_a_feature_reads(config_name: str, freq: str) -> None:
    """Each feature computed from only its declared stats and windows (anything else absent) succeeds."""
    from spendlab.features.arrays import FAMILIES

    config = CONFIGS[config_name]
    rng = np.random.default_rng(0)
    n = 5
    stats_all = {s: rng.integers(1, 30, n).astype(np.float64)
                 for s in feature_needs(config, freq).stats}
    for name in feature_columns(config, freq)[1:]:
        needs = feature_needs(config, freq, [name])
        if not needs.columns:  # BTYD columns come from their own query
            continue
        x = FeatureInputs({s: stats_all[s] for s in needs.stats},
                          {c: rng.random((n, w)) for c, w in needs.widths.items()},
                          stats_all["n_periods"], dt.date(2024, 6, 30), freq, config,
                          {f"{w}_{c}": 1.0 for w in ("asof", "target")
                           for c in ("n_holidays", "n_retail_events", "weekend_days", "days_in_period")},
                          frozenset([name]))
        out = {k: v for family in FAMILIES.values() for k, v in family.compute(x).items()}
        assert list(out) == [name]


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_user_stats_names_every_column_the_stats_query_gives(config_name: str) -> None:
    """``USER_STATS`` (what a family without declared inputs gets) is the stats query's columns, no more, no less."""
    import re

    from spendlab.features.arrays import USER_STATS

    config = CONFIGS[config_name]
    select = user_stats_from_sums_sql(config, "sums", "first_day").split("\nFROM ")[0]
    given = set(re.findall(r" AS (\w+),?$", select, flags=re.M))
    recent = {f"purchase_days_last{w}w" for w in config.weekly_activity_windows}
    assert given == set(USER_STATS) | recent
