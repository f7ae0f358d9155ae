"""The on-disk feature cache: the same frames as a fresh build, a miss whenever data, reader, feature set
or feature code change, atomic entries that survive concurrent writers and corrupt files."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from spendlab.config import ReaderConfig
from spendlab.features import FeatureConfig
from spendlab.io import load_transactions
from spendlab.jobs import feature_cache as fc
from spendlab.jobs.experiment import load_dataset, run_experiment
from spendlab.jobs.plan import load_experiment, plan_experiment
from spendlab.timing import recording
from tests.jobs.conftest import write_experiment

CUTOFFS = [dt.date(2023, 7, 31), dt.date(2023, 10, 31), dt.date(2023, 12, 31)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("cache")
    path = write_experiment(root, users=120, months=14, models=["zero", "last_period"])
    return root, plan_experiment(load_experiment(path), experiment_path=path, tuned_dir=root / "tuned")


def _frames(store) -> list[pd.DataFrame]:
    return [f for c in CUTOFFS for f in (store.features(c), pd.DataFrame({"target": store.target(c)}))]


def test_a_second_store_reads_every_frame_from_the_cache_identical_to_a_fresh_build(setup, tmp_path: Path) -> None:
    _, plan = setup
    tx = load_dataset(plan.experiment)
    fresh = _frames(fc.cached_store(plan, tx, None))
    with recording() as first:
        filled = _frames(fc.cached_store(plan, tx, tmp_path / "c"))
    with recording() as second:
        reread = _frames(fc.cached_store(plan, load_dataset(plan.experiment), tmp_path / "c"))
    for a, b, c in zip(fresh, filled, reread, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        pd.testing.assert_frame_equal(a, c, check_exact=True)  # values, dtypes, column order
    built = set(first.records()["stage"])
    assert {"features", "targets", "feature_cache_write"} <= built and "feature_cache_read" not in built
    stages = second.records()["stage"]
    assert set(stages) == {"feature_cache_read"} and len(stages) == 2 * len(CUTOFFS)  # nothing rebuilt
    assert len(list((tmp_path / "c").glob("*.parquet"))) == 2 * len(CUTOFFS)
    assert (tmp_path / "c" / ".spendlab-output").exists()  # marked as spendlab's directory


def test_the_key_changes_with_data_reader_feature_set_and_feature_code(setup, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, plan = setup
    tx = load_dataset(plan.experiment)
    base = fc.cache_key(plan, tx)
    assert fc.cache_key(plan, load_dataset(plan.experiment)) == base  # stable across loads
    other_reader = load_transactions(plan.experiment.dataset.input, "generic",
                                     config=ReaderConfig(max_abs_amount=1e6))
    assert fc.cache_key(plan, other_reader) != base
    other_features = dataclasses.replace(plan, features=FeatureConfig(btyd=True))
    assert fc.cache_key(other_features, tx) != base
    weekly = dataclasses.replace(plan, experiment=plan.experiment.model_copy(update={"horizon": 2}))
    assert fc.cache_key(weekly, tx) != base
    monkeypatch.setattr(fc, "feature_code_digest", lambda: "edited")
    assert fc.cache_key(plan, tx) != base
    monkeypatch.undo()
    copy = tmp_path / "tx.parquet"  # the same rows with one amount changed: other bytes, other key
    df = pd.read_parquet(plan.experiment.dataset.input)
    df.loc[0, df.select_dtypes("number").columns[0]] += 1
    df.to_parquet(copy)
    changed = load_transactions(str(copy), "generic")
    assert fc.cache_key(plan, changed) != base


def test_changed_data_misses_the_cache_and_gets_its_own_frames(setup, tmp_path: Path) -> None:
    _, plan = setup
    df = pd.read_parquet(plan.experiment.dataset.input)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    df.to_parquet(tmp_path / "a" / "tx.parquet")
    df[df.index % 2 == 0].to_parquet(tmp_path / "b" / "tx.parquet")  # half the rows
    for name in ("a", "b"):
        tx = load_transactions(str(tmp_path / name / "tx.parquet"), "generic")
        store = fc.cached_store(plan, tx, tmp_path / "cache")
        oracle = fc.cached_store(plan, tx, None)
        pd.testing.assert_frame_equal(store.features(CUTOFFS[1]), oracle.features(CUTOFFS[1]), check_exact=True)
    assert len(list((tmp_path / "cache").glob("features-*.parquet"))) == 2  # one entry per dataset


def test_data_without_files_is_never_cached(setup, tmp_path: Path) -> None:
    _, plan = setup
    tx = dataclasses.replace(load_dataset(plan.experiment), files=())
    store = fc.cached_store(plan, tx, tmp_path / "c")
    assert store.cache is None and fc.cache_key(plan, tx) is None
    store.features(CUTOFFS[0])
    assert not (tmp_path / "c").exists()


def test_a_corrupt_entry_is_rebuilt_and_replaced(setup, tmp_path: Path) -> None:
    _, plan = setup
    tx = load_dataset(plan.experiment)
    good = fc.cached_store(plan, tx, tmp_path / "c").features(CUTOFFS[0])
    entry = next((tmp_path / "c").glob("features-*.parquet"))
    entry.write_bytes(b"PAR1 not really")
    again = fc.cached_store(plan, tx, tmp_path / "c").features(CUTOFFS[0])
    pd.testing.assert_frame_equal(again, good, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(entry), good, check_exact=True)


def test_concurrent_writers_of_one_entry_leave_one_whole_file(setup, tmp_path: Path) -> None:
    _, plan = setup
    tx = load_dataset(plan.experiment)
    frame = fc.cached_store(plan, tx, None).features(CUTOFFS[2])
    cache = fc.FeatureCache(tmp_path / "c", "k")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: cache.put("features", CUTOFFS[2], frame), range(12)))
    assert [p.name for p in (tmp_path / "c").iterdir() if p.name != ".spendlab-output"] == [
        cache.path("features", CUTOFFS[2]).name]  # no temporaries left behind
    pd.testing.assert_frame_equal(cache.get("features", CUTOFFS[2]), frame, check_exact=True)


@pytest.mark.slow
def test_a_rerun_with_the_cache_builds_nothing_and_writes_the_same_leaderboard(setup, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root, plan = setup
    monkeypatch.chdir(tmp_path)
    runs = [run_experiment(plan.experiment_path, out_dir=tmp_path / f"out{i}", tuned_dir=root / "tuned",
                           feature_cache=tmp_path / "cache") for i in range(2)]
    first, second = (set(r.profile["stage"]) for r in runs)
    assert "features" in first and "feature_cache_write" in first
    assert "features" not in second and "targets" not in second and "feature_cache_read" in second
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out0" / "leaderboard.csv"),
                                  pd.read_csv(tmp_path / "out1" / "leaderboard.csv"), check_exact=True)
