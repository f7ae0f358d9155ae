"""Rolling-origin backtests: the time split, leakage, metrics (hand-computed) and segments."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from spendlab.features.segments import segment_users
from spendlab.features.store import FeatureStore
from spendlab.forecast.backtest import run_backtest
from spendlab.forecast.metrics import origin_metrics
from spendlab.forecast.protocol import ExperimentConfig
from spendlab.forecast.split import training_origins
from spendlab.io.load import connect
from spendlab.models import registry

D = dt.date


def tx_frame(seed: int = 3, n_users: int = 60) -> pd.DataFrame:
    """Transactions of ``n_users`` from 2024-01-01 to 2024-07-31; one user in three joins in March."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = D(2024, 3, 1) if u % 3 == 0 else D(2024, 1, 1)
        day = start + dt.timedelta(days=int(rng.integers(0, 20)))
        while day <= D(2024, 7, 31):
            rows.append((f"u{u:03d}", pd.Timestamp(day) + pd.Timedelta(hours=12), round(float(rng.gamma(2.0, 15.0)), 2)))
            day += dt.timedelta(days=int(rng.integers(5, 60)))
    return pd.DataFrame(rows, columns=["user_id", "ts", "amount"])


def store_for(df: pd.DataFrame) -> FeatureStore:
    con = connect()
    con.register("raw", df)
    con.execute("""CREATE TEMP VIEW transactions AS SELECT user_id, CAST(ts AS TIMESTAMP) AS ts, amount,
                   CAST(NULL AS BIGINT) AS n_items, 'mem' AS source_file, CAST(row_number() OVER () AS BIGINT)
                   AS line FROM raw""")
    return FeatureStore(con, freq="month", horizon=1)


def experiment(test: list[dt.date]) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": "leak", "dataset": {"input": "mem", "format": "generic"}, "freq": "month",
        "validation": {"dates": [D(2024, 3, 31)]}, "test": {"dates": test}, "train_origins": 3})


def test_training_origins_are_earlier_cutoffs_whose_target_is_known_at_the_cutoff() -> None:
    assert training_origins(D(1997, 10, 31), freq="month", horizon=1, n=6) == [
        D(1997, 4, 30), D(1997, 5, 31), D(1997, 6, 30), D(1997, 7, 31), D(1997, 8, 31), D(1997, 9, 30)]
    # Four-week horizon: the latest training origin is 4 weeks back, so its 4-week target ends at the cutoff.
    assert training_origins(D(2024, 3, 31), freq="week", horizon=4, n=2) == [D(2024, 2, 25), D(2024, 3, 3)]
    assert training_origins(D(1997, 3, 31), freq="month", horizon=1, n=6, first_cutoff=D(1997, 1, 31)) == [
        D(1997, 1, 31), D(1997, 2, 28)]


CUTOFF = D(2024, 5, 31)


@pytest.fixture(scope="module")
def clean_and_poisoned() -> tuple[FeatureStore, FeatureStore]:
    """The same history up to the cutoff; after it, amounts x1000 and two brand-new big spenders."""
    clean = tx_frame()
    after = clean["ts"] >= pd.Timestamp(CUTOFF + dt.timedelta(days=1))
    poisoned = clean.copy()
    poisoned.loc[after, "amount"] *= 1000.0
    intruders = pd.DataFrame({"user_id": ["zz1", "zz2"], "ts": [pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-20")],
                              "amount": [1e6, 5e5]})
    poisoned = pd.concat([poisoned, intruders], ignore_index=True)
    return store_for(clean), store_for(poisoned)


@pytest.mark.parametrize("key", sorted(registry.MODELS))
def test_no_model_sees_target_period_data(key: str, clean_and_poisoned: tuple[FeatureStore, FeatureStore]) -> None:
    """Poisoned data after the cutoff must not move any prediction at the cutoff, while the
    scored actuals do move."""
    exp = experiment([CUTOFF])
    clean, poisoned = clean_and_poisoned
    a = run_backtest(clean, experiment=exp, model_key=key, origins="test")
    b = run_backtest(poisoned, experiment=exp, model_key=key, origins="test")
    np.testing.assert_array_equal(a.predictions["user_id"], b.predictions["user_id"])  # intruders not scored
    np.testing.assert_allclose(a.predictions["y_pred"], b.predictions["y_pred"], rtol=0, atol=1e-9)
    assert b.predictions["y_true"].sum() > 100 * a.predictions["y_true"].sum() > 0


def test_training_rows_are_features_and_targets_of_earlier_origins_only() -> None:
    """A spy model records what it is fitted on: the stacked rows of origins Feb..Apr for the
    2024-05-31 cutoff (train_origins=3), with targets = March..May spend, computed in pandas."""
    seen: dict[str, object] = {}
    base = registry.MODELS["last_period"]

    class Spy(base):  # type: ignore[misc, valid-type]
        def fit(self, X, y=None):
            seen["X"], seen["y"] = X.copy(), np.asarray(y).copy()
            return super().fit(X, y)

    registry.MODELS["spy"] = Spy
    try:
        df = tx_frame()
        run_backtest(store_for(df), experiment=experiment([D(2024, 5, 31)]), model_key="spy", origins="test")
    finally:
        del registry.MODELS["spy"]
    expected = []
    for c, (lo, hi) in [(D(2024, 2, 29), ("2024-03-01", "2024-04-01")), (D(2024, 3, 31), ("2024-04-01", "2024-05-01")),
                        (D(2024, 4, 30), ("2024-05-01", "2024-06-01"))]:
        users = sorted(df.loc[df["ts"] < pd.Timestamp(c + dt.timedelta(days=1)), "user_id"].unique())
        window = df[(df["ts"] >= lo) & (df["ts"] < hi)].groupby("user_id")["amount"].sum()
        expected.append(window.reindex(users, fill_value=0.0).to_numpy())
    np.testing.assert_allclose(seen["y"], np.concatenate(expected))
    assert "user_id" not in seen["X"].columns  # ids are never features
    assert len(seen["X"]) == len(seen["y"])
    # Each row's origin is in the index (not a feature): bgnbd_gg fits on the latest one.
    origin = seen["X"].index.get_level_values("origin")
    assert list(origin.unique()) == list(pd.to_datetime([D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30)]))
    assert [int((origin == o).sum()) for o in origin.unique()] == [len(e) for e in expected]


def test_origin_metrics_match_hand_computed_values() -> None:
    y = np.array([0.0, 10.0, 0.0, 30.0, 60.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    p = np.array([1.0, 8.0, 0.0, 20.0, 70.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    seg = np.array(["new", "active", "lapsed", "active", "active", "lapsed", "lapsed", "lapsed", "lapsed",
                    "lapsed", "lapsed", "new"])
    m = origin_metrics(y, p, seg)
    # errors: 1, -2, 0, -10, 10, 0, 2, 0, 0, 0, 0, 1  -> squares 1+4+100+100+4+1 = 210
    assert m["rmse"] == pytest.approx(math.sqrt(210 / 12))
    assert m["mae"] == pytest.approx(26 / 12)
    assert m["bias"] == pytest.approx(2 / 100)  # sum(pred - actual) = 102 - 100
    assert m["wape"] == pytest.approx(26 / 100)
    # ceil(10% of 12) = 2 users with the highest predictions (70, 20) made 60 + 30 of 100.
    assert m["top10_capture"] == pytest.approx(0.9)
    assert m["rmse_new"] == pytest.approx(1.0)
    assert m["rmse_active"] == pytest.approx(math.sqrt(204 / 3))
    assert m["rmse_lapsed"] == pytest.approx(math.sqrt(4 / 7))


def test_ratio_metrics_are_nan_when_nobody_spends() -> None:
    m = origin_metrics(np.zeros(3), np.array([1.0, 0.0, 0.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert math.isnan(m["bias"]) and math.isnan(m["wape"]) and math.isnan(m["top10_capture"])


def test_segments_new_active_lapsed() -> None:
    X = pd.DataFrame({"n_periods": [1, 5, 5, 5], "spend_lag1": [9.0, 0.0, 0.0, 0.0],
                      "spend_lag2": [0.0, 3.0, 0.0, 0.0], "spend_lag3": [0.0, 0.0, 0.0, 0.0],
                      "spend_lag4": [0.0, 0.0, 0.0, 7.0]})
    assert list(segment_users(X, active_window=3)) == ["new", "active", "lapsed", "lapsed"]
    assert list(segment_users(X, active_window=4)) == ["new", "active", "lapsed", "active"]


def test_every_user_acquired_by_the_cutoff_gets_a_prediction() -> None:
    df = tx_frame()
    res = run_backtest(store_for(df), experiment=experiment([D(2024, 4, 30), D(2024, 5, 31)]),
                       model_key="lightgbm", origins="test")
    for cutoff, g in res.predictions.groupby("cutoff"):
        acquired = df.loc[df["ts"] < pd.Timestamp(cutoff + dt.timedelta(days=1)), "user_id"].nunique()
        assert len(g) == acquired and g["user_id"].is_unique
        assert (g["y_pred"] >= 0).all()
    assert list(res.per_origin["split"]) == ["test", "test"]


def test_a_shared_store_is_reused_only_for_the_same_freq_horizon_and_feature_config() -> None:
    """The main job passes one FeatureStore to tune, experiment and promote; a store built for
    other features must be refused, not silently reused."""
    from spendlab.features import FeatureConfig

    store = store_for(tx_frame(n_users=6))
    assert FeatureStore.from_source(store, freq="month", horizon=1) is store
    assert FeatureStore.from_source(store, freq="month", horizon=1, feature_config=FeatureConfig()) is store
    with pytest.raises(ValueError, match="freq/horizon"):
        FeatureStore.from_source(store, freq="month", horizon=2)
    other = FeatureConfig(weekly_activity_windows=(4,))
    with pytest.raises(ValueError, match="feature config"):
        FeatureStore.from_source(store, freq="month", horizon=1, feature_config=other)


def test_an_experiment_with_its_own_feature_set_backtests_on_its_shared_store(tmp_path) -> None:
    """``feature_store`` builds the store with the experiment's feature file; ``run_backtest`` reuses
    it as it is (no config given), and the store is refused to an experiment with default features."""
    import yaml

    from spendlab.jobs.experiment import feature_store
    from spendlab.jobs.plan import plan_experiment

    (tmp_path / "features.yaml").write_text(yaml.safe_dump({"weekly_activity_windows": [4]}))
    custom = experiment([D(2024, 5, 31)]).model_copy(update={"features": tmp_path / "features.yaml"})
    store = feature_store(plan_experiment(custom), store_for(tx_frame(n_users=12)).con)
    assert store.feature_config.weekly_activity_windows == (4,)
    assert feature_store(plan_experiment(custom), store) is store
    result = run_backtest(store, experiment=custom, model_key="last_period", origins="test")
    assert len(result.per_origin) == 1
    assert "active_days_per_week_mean_last4" in result.feature_names
    assert "active_days_per_week_mean_last13" not in result.feature_names
    with pytest.raises(ValueError, match="feature config"):
        feature_store(plan_experiment(experiment([D(2024, 5, 31)])), store)


def test_train_origins_all_reaches_back_to_the_first_period_of_the_data() -> None:
    assert training_origins(D(1997, 10, 31), freq="month", horizon=1, n="all", first_cutoff=D(1997, 1, 31)) == [
        D(1997, m, 31 if m in (1, 3, 5, 7, 8) else 30 if m != 2 else 28) for m in range(1, 10)]
    cfg = ExperimentConfig.model_validate({
        "name": "all", "dataset": {"input": "mem", "format": "generic"}, "freq": "month",
        "validation": {"dates": [D(2024, 3, 31)]}, "test": {"dates": [D(2024, 5, 31)]}, "train_origins": "all"})
    assert cfg.train_origins == "all"
    with pytest.raises(Exception, match="train_origins"):
        ExperimentConfig.model_validate({**cfg.model_dump(), "train_origins": "some"})


def test_train_origins_as_a_date_starts_where_the_population_exists() -> None:
    assert training_origins(D(1997, 7, 31), freq="month", horizon=1, n=D(1997, 3, 31), first_cutoff=D(1997, 1, 31)) == [
        D(1997, 3, 31), D(1997, 4, 30), D(1997, 5, 31), D(1997, 6, 30)]
    cfg = ExperimentConfig.model_validate({
        "name": "from", "dataset": {"input": "mem", "format": "generic"}, "freq": "month",
        "validation": {"dates": [D(2024, 3, 31)]}, "test": {"dates": [D(2024, 5, 31)]}, "train_origins": "2024-01-31"})
    assert cfg.train_origins == D(2024, 1, 31)


def long_tx_frame(seed: int = 5, n_users: int = 150) -> pd.DataFrame:
    """19 months (2023-01 .. 2024-07) with a December uplift: every user joins in January or February
    2023, so each origin from 2023-04 on has established customers (3+ periods of history)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        day = D(2023, 1 + u % 2, 1) + dt.timedelta(days=int(rng.integers(0, 25)))
        while day <= D(2024, 7, 31):
            scale = 3.0 if day.month == 12 else 1.0
            rows.append((f"u{u:03d}", pd.Timestamp(day) + pd.Timedelta(hours=12),
                         round(float(rng.gamma(2.0, 15.0 * scale)), 2)))
            day += dt.timedelta(days=int(rng.integers(4, 30)))
    return pd.DataFrame(rows, columns=["user_id", "ts", "amount"])


@pytest.mark.parametrize("key", ["bgnbd_seasonal", "ensemble", "stack"])
def test_the_seasonal_level_sees_no_data_after_the_cutoff(key: str) -> None:
    """With a year of training origins the seasonal level is active (``bgnbd_seasonal`` differs from
    ``bgnbd_gg``), and data after the cutoff (x1000, intruders) still moves no prediction, alone or as
    a combination's member."""
    clean = long_tx_frame()
    after = clean["ts"] >= pd.Timestamp(CUTOFF + dt.timedelta(days=1))
    poisoned = clean.copy()
    poisoned.loc[after, "amount"] *= 1000.0
    poisoned = pd.concat([poisoned, pd.DataFrame({"user_id": ["zz1"], "ts": [pd.Timestamp("2024-06-03")],
                                                  "amount": [1e6]})], ignore_index=True)
    exp = ExperimentConfig.model_validate({
        "name": "leak", "dataset": {"input": "mem", "format": "generic"}, "freq": "month",
        "validation": {"dates": [D(2024, 3, 31)]}, "test": {"dates": [CUTOFF]}, "train_origins": "all",
        "ensemble_members": ["bgnbd_seasonal", "ridge"]})
    a = run_backtest(store_for(clean), experiment=exp, model_key=key, origins="test")
    b = run_backtest(store_for(poisoned), experiment=exp, model_key=key, origins="test")
    np.testing.assert_array_equal(a.predictions["user_id"], b.predictions["user_id"])
    np.testing.assert_allclose(a.predictions["y_pred"], b.predictions["y_pred"], rtol=0, atol=1e-9)
    plain = run_backtest(store_for(clean), experiment=exp, model_key="bgnbd_gg", origins="test")
    if key == "bgnbd_seasonal":
        ratio = a.predictions["y_pred"].to_numpy() / np.maximum(plain.predictions["y_pred"].to_numpy(), 1e-12)
        assert abs(float(np.median(ratio)) - 1.0) > 1e-3  # the seasonal path ran


def world_frame(profile: str) -> pd.DataFrame:
    """Seven months of a synthetic world (2024-01 .. 2024-07) as a transaction frame."""
    from spendlab.datasets.worlds import make_world

    world = make_world(profile, users=150, months=7, start="2024-01-01", seed=5)
    latent = world.latent(0)
    u, ts, amount = world.purchases(0, latent)
    return pd.DataFrame({"user_id": world.user_ids(0)[u], "ts": pd.to_datetime(ts, unit="us"), "amount": amount})


@pytest.mark.parametrize("profile", ["habit", "mixed"])
@pytest.mark.parametrize("key", ["lightgbm", "lightgbm_clv", "bgnbd_gg", "sm_tweedie_glm", "hurdle", "moving_average"])
def test_no_model_sees_target_period_data_in_the_habit_worlds(key: str, profile: str) -> None:
    """The poisoning check, for one model of each family, on the habit and mixed worlds' data."""
    clean = world_frame(profile)
    after = clean["ts"] >= pd.Timestamp(CUTOFF + dt.timedelta(days=1))
    assert after.any() and (~after).any()
    poisoned = clean.copy()
    poisoned.loc[after, "amount"] *= 1000.0
    poisoned = pd.concat([poisoned, pd.DataFrame({"user_id": ["zz1"], "ts": [pd.Timestamp("2024-06-03")],
                                                  "amount": [1e6]})], ignore_index=True)
    exp = experiment([CUTOFF])
    a = run_backtest(store_for(clean), experiment=exp, model_key=key, origins="test")
    b = run_backtest(store_for(poisoned), experiment=exp, model_key=key, origins="test")
    np.testing.assert_array_equal(a.predictions["user_id"], b.predictions["user_id"])
    np.testing.assert_allclose(a.predictions["y_pred"], b.predictions["y_pred"], rtol=0, atol=1e-9)
    assert b.predictions["y_true"].sum() > 100 * a.predictions["y_true"].sum() > 0

def test_backtests_run_side_by_side_fit_with_one_blas_thread_and_restore_it_after() -> None:
    """Two backtests on threads each fitting a BLAS model with two threads oversubscribe two cores: every
    fit sees one BLAS thread, the caller's setting is back once the backtests are done."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from spendlab.forecast.backtest import backtest_models

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    base = registry.MODELS["last_period"]

    class Spy(base):  # type: ignore[misc, valid-type]
        def fit(self, X, y=None):
            seen.append(blas_threads())
            return super().fit(X, y)

    registry.MODELS["spy"] = Spy
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            before = blas_threads()
            outcomes = list(backtest_models(store_for(tx_frame()), experiment([D(2024, 5, 31), D(2024, 6, 30)]),
                                            {"spy": ({}, False), "last_period": ({}, False)}, jobs=2))
            after = blas_threads()
    finally:
        del registry.MODELS["spy"]
    assert [o.error for o in outcomes] == [None, None]
    assert len(seen) == 3 and all(s == {1} for s in seen)  # the validation origin and both test origins
    assert before == after == {2}


@pytest.mark.parametrize("key", ["moving_average", "ridge", "lightgbm", "tweedie_glm", "bgnbd_gg", "hurdle"])
def test_origins_fitted_side_by_side_give_the_same_backtest_as_one_at_a_time(key: str) -> None:
    """``origin_jobs=2`` only changes when each origin is fitted: rows, predictions and the estimator match."""
    cfg = experiment([D(2024, 4, 30), D(2024, 5, 31), D(2024, 6, 30)])
    df = tx_frame()
    one = run_backtest(store_for(df), experiment=cfg, model_key=key, origins="all")
    two = run_backtest(store_for(df), experiment=cfg, model_key=key, origins="all", origin_jobs=2)
    pd.testing.assert_frame_equal(one.per_origin, two.per_origin)
    pd.testing.assert_frame_equal(one.predictions, two.predictions)
    assert list(two.per_origin["cutoff"]) == [D(2024, 3, 31), D(2024, 4, 30), D(2024, 5, 31), D(2024, 6, 30)]
    X = store_for(df).features(D(2024, 6, 30)).drop(columns=["user_id"])
    np.testing.assert_array_equal(one.estimator.predict(X), two.estimator.predict(X))  # the last origin's


def test_on_origin_still_sees_the_origins_in_order_when_origin_jobs_is_given() -> None:
    seen: list[int] = []
    cfg = experiment([D(2024, 4, 30), D(2024, 5, 31)])
    run_backtest(store_for(tx_frame()), experiment=cfg, model_key="moving_average", origins="all",
                 on_origin=lambda i, _: seen.append(i), origin_jobs=2)
    assert seen == [0, 1, 2]
