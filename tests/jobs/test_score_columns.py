"""Scoring builds only the columns its model reads, checks the cutoff without re-reading the input, and
profiles drift from Arrow on the model's own features.

Oracles: the full feature build (every column) selected afterwards, :func:`spendlab.settings.check_as_of`
on the data's span read straight from the input, and the drift of the same features as a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import spendlab.jobs.score as score_job
from spendlab.errors import ConfigError
from spendlab.features import FeatureConfig, build_features_arrow
from spendlab.features.btyd import BTYD_COLUMNS
from spendlab.io import load_transactions
from spendlab.io.load import connect, date_span
from spendlab.jobs.datasets import synth_transactions
from spendlab.jobs.score import _check_cutoff, _Written, score_drift
from spendlab.monitor.drift import feature_drift, reference_profile
from spendlab.settings import check_as_of
from spendlab.tracking.scorer import SCORING_EXTRA_COLUMNS, scoring_columns

AS_OF = dt.date(2024, 3, 31)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("cols") / "tx.parquet"
    synth_transactions(path, users=120, months=14, start="2023-01-01", seed=3)
    con = connect()
    load_transactions(str(path), "generic").register(con, native_ids=True)
    return con


@pytest.mark.parametrize("btyd", [False, True])
def test_a_column_subset_equals_the_full_build_selected_afterwards(synth, btyd: bool) -> None:
    config = FeatureConfig(btyd=btyd)
    full = build_features_arrow(synth, freq="month", as_of=AS_OF, config=config)
    names = full.column_names[1:]
    rng = np.random.default_rng(7)
    subsets = [[], names[:1], names[-3:], [*BTYD_COLUMNS[:1], "spend_lag1"], ["no_such_feature", "n_periods"]]
    subsets += [list(rng.choice(names, size=k, replace=False)) for k in (2, 9, len(names) // 2)]
    for subset in subsets:
        part = build_features_arrow(synth, freq="month", as_of=AS_OF, config=config, columns=subset)
        expected = ["user_id", *(c for c in names if c in subset)]  # the builder's order, unknown names left out
        assert part.column_names == expected
        assert part.equals(full.select(expected))


def test_without_a_btyd_column_named_the_btyd_pass_is_skipped(synth, monkeypatch: pytest.MonkeyPatch) -> None:
    import spendlab.features.build as build

    calls = []
    real = build._with_btyd
    monkeypatch.setattr(build, "_with_btyd", lambda *a, **k: calls.append(1) or real(*a, **k))
    build_features_arrow(synth, freq="month", as_of=AS_OF, config=FeatureConfig(btyd=True), columns=["spend_lag1"])
    assert calls == []
    build_features_arrow(synth, freq="month", as_of=AS_OF, config=FeatureConfig(btyd=True),
                         columns=[BTYD_COLUMNS[-1]])
    assert calls == [1]


@pytest.mark.parametrize("window", [1, 3, 5])
def test_scoring_columns_are_the_models_inputs_features_and_what_the_scorer_reads(window: int) -> None:
    model = SimpleNamespace(input_columns=["user_id", "spend_lag1", "tenure_days", "spend_lag2"],
                            feature_names=["spend_lag2", "bgnbd_frequency"], active_window=window)
    cols = scoring_columns(model)
    lags = [f"spend_lag{i}" for i in range(1, window + 1)]
    assert set(cols) == {"spend_lag1", "tenure_days", "spend_lag2", "bgnbd_frequency", *SCORING_EXTRA_COLUMNS, *lags}
    assert len(cols) == len(set(cols)) and "user_id" not in cols
    assert cols[:3] == ["spend_lag1", "tenure_days", "spend_lag2"]  # the signature's order first


def _tiny(path: Path) -> Path:
    """User a buys in Jan and Feb 2023; user b buys in Jan 2023 and only refunds in Jan 2024."""
    rows = [("a", dt.datetime(2023, 1, 5, 9), 10.0), ("a", dt.datetime(2023, 2, 10, 9), 12.0),
            ("b", dt.datetime(2023, 1, 20, 9), 8.0), ("b", dt.datetime(2024, 1, 25, 9), -8.0)]
    pq.write_table(pa.table({"user_id": [r[0] for r in rows],
                             "ts": pa.array([r[1] for r in rows], pa.timestamp("us", "UTC")),
                             "amount": [r[2] for r in rows]}), path)
    return path


def _raises(fn) -> str | None:
    try:
        fn()
    except ConfigError as exc:
        return str(exc)
    return None


def test_the_cutoff_check_equals_check_as_of_on_the_datas_span_and_reads_it_only_when_needed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 11th day from before the data to two years after it: the same error (or none) as the
    check on the span read from the input; the span is read only without a user or a year past the
    last purchase (a trailing refund then decides: 2024-03-31 is 415 days after it, 66 after the refund)."""
    tx = load_transactions(str(_tiny(tmp_path / "t.parquet")), "generic")
    reads = []
    monkeypatch.setattr(score_job, "date_span", lambda t: reads.append(1) or date_span(t))
    con = connect()
    tx.register(con, native_ids=True)
    outcomes = set()
    for as_of in itertools.takewhile(lambda d: d < dt.date(2025, 6, 1),
                                     (dt.date(2022, 12, 1) + dt.timedelta(days=11 * i) for i in itertools.count())):
        feats = build_features_arrow(con, freq="month", as_of=as_of, columns=["days_since_last_purchase"])
        reads.clear()
        got = _raises(lambda: _check_cutoff(tx, as_of, feats))  # noqa: B023 - called at once
        assert got == _raises(lambda: check_as_of(as_of, *date_span(tx))), as_of  # noqa: B023
        last_purchase = dt.date(2023, 2, 10) if as_of >= dt.date(2023, 2, 10) else dt.date(2023, 1, 20)
        needed = feats.num_rows == 0 or (as_of - last_purchase).days > 366
        assert reads == ([1] if needed else []), as_of
        outcomes.add((got is None, needed))
    assert outcomes == {(False, True), (True, False), (True, True)}  # errors, no read, the refund's rescue


def test_drift_from_arrow_columns_equals_drift_from_the_dataframe(synth) -> None:
    feats = build_features_arrow(synth, freq="month", as_of=AS_OF)
    frame = feats.to_pandas()
    ref = reference_profile(frame.iloc[::2], np.array(["new"] * len(frame.iloc[::2])), np.zeros(len(frame.iloc[::2])))
    arrays = {c: feats.column(c).to_numpy() for c in feats.column_names[1:]}
    pd.testing.assert_frame_equal(feature_drift(ref, arrays), feature_drift(ref, frame))


def test_score_drift_is_limited_to_the_models_features(synth) -> None:
    feats = build_features_arrow(synth, freq="month", as_of=AS_OF)
    frame = feats.to_pandas()
    ref = reference_profile(frame.sample(frac=0.5, random_state=1), np.array(["new"] * 60), np.zeros(60))
    written = _Written(rows=len(frame), by_segment={"new": len(frame)})
    every = feature_drift(ref, frame)
    worst = str(every["feature"].iloc[0])
    assert score_drift(ref, feats, written)["max_psi_feature"] == worst
    others = [c for c in ref["features"] if c != worst]
    limited = score_drift(ref, feats, written, others)
    assert limited["max_psi_feature"] == str(every.loc[every["feature"] != worst, "feature"].iloc[0])
    assert limited["max_psi"] == pytest.approx(float(every.loc[every["feature"] != worst, "psi"].iloc[0]))


def test_an_as_of_outside_the_readers_window_is_refused_before_any_feature_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the window, or more than a year past its end, no data can make the cutoff valid: the
    error is check_as_of's on the span, raised before the features (whose calendar would span
    millennia for 9999-12-31); inside the window nothing is read."""
    from spendlab.jobs.score import _check_outside_window

    tx = load_transactions(str(_tiny(tmp_path / "t.parquet")), "generic")
    reads = []
    monkeypatch.setattr(score_job, "date_span", lambda t: reads.append(1) or date_span(t))
    today = dt.date.today()
    for as_of in (dt.date(9999, 12, 31), dt.date(1969, 12, 31), today + dt.timedelta(days=367)):
        got = _raises(lambda: _check_outside_window(tx, as_of))  # noqa: B023 - called at once
        assert got is not None and got == _raises(lambda: check_as_of(as_of, *date_span(tx)))  # noqa: B023
    assert len(reads) == 3
    for as_of in (dt.date(1970, 1, 1), dt.date(2022, 12, 31), today + dt.timedelta(days=366)):
        assert _raises(lambda: _check_outside_window(tx, as_of)) is None  # noqa: B023
    assert len(reads) == 3
