"""Estimator files: every registry model round-trips, and only what skops cannot hold is a pickle."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from spendlab.models.registry import MODELS, make_model
from spendlab.tracking.persist import (
    FORMATS,
    SKOPS_TRUSTED,
    EstimatorFormatError,
    load_estimator,
    save_estimator,
    skops_verdict,
)
from tests.models.test_registry_conformance import synthetic_feature_frame

#: The format each registry key is written in: none is a pickle (joblib is the fallback for a model
#: skops cannot hold, tested below with a type outside the trusted list).
EXPECTED_FORMAT = {key: "skops" for key in MODELS}
LIGHTGBM_KEYS = ("lightgbm", "lightgbm_clv", "hurdle", "ensemble", "stack")


class _Canary:
    """Unpickling this creates a file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.path),))


class _Untrusted:
    """A type no trusted list names."""

    def __init__(self) -> None:
        self.value = 1.5


@pytest.fixture(scope="module")
def fitted() -> dict:
    X, y = synthetic_feature_frame(120, seed=3)
    return {"X": X, "models": {key: make_model(key).fit(X, y) for key in sorted(MODELS)}}


def test_every_registry_key_has_an_expected_format() -> None:
    assert set(EXPECTED_FORMAT) == set(MODELS)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_every_registry_model_round_trips_with_identical_predictions(fitted: dict, key: str, tmp_path: Path) -> None:
    est, X = fitted["models"][key], fitted["X"]
    manifest = save_estimator(est, tmp_path)
    print(f"{key}: {manifest['format']} {manifest['reason']}")
    assert manifest["format"] == EXPECTED_FORMAT[key], manifest["reason"]
    assert [p.name for p in tmp_path.iterdir()] == [FORMATS[manifest["format"]]] == [manifest["file"]]
    loaded = load_estimator(tmp_path, manifest)
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if manifest["format"] == "skops":
        assert zipfile.is_zipfile(tmp_path / manifest["file"])
        assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in zipfile.ZipFile(tmp_path / manifest["file"]).namelist())


@pytest.mark.parametrize("key", LIGHTGBM_KEYS)
def test_lightgbm_boosters_are_stored_as_lightgbm_text_models(fitted: dict, key: str, tmp_path: Path) -> None:
    manifest = save_estimator(fitted["models"][key], tmp_path)
    schema = json.loads(zipfile.ZipFile(tmp_path / manifest["file"]).read("schema.json"))
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("__class__") == "Booster":
                state = node["content"]["content"]["_handle"]  # a JSON string node: the model text
                texts.append(json.loads(state["content"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert texts, "no LightGBM booster found in the archive"
    import lightgbm

    for text in texts:
        assert text.startswith("tree\nversion=")
        assert lightgbm.Booster(model_str=text).num_trees() > 0


def test_the_trusted_list_is_exactly_what_the_registry_needs(fitted: dict) -> None:
    needed: set[str] = set()
    for key, est in fitted["models"].items():
        if EXPECTED_FORMAT[key] == "skops":
            needed |= set(sio.get_untrusted_types(data=sio.dumps(est)))
    assert needed == set(SKOPS_TRUSTED)


def test_an_estimator_with_an_untrusted_type_falls_back_to_joblib_with_the_reason(tmp_path: Path) -> None:
    data, reason = skops_verdict({"model": _Untrusted()})
    assert data is None and "_Untrusted" in reason
    manifest = save_estimator({"model": _Untrusted()}, tmp_path)
    assert manifest["format"] == "joblib" and "_Untrusted" in manifest["reason"]
    assert load_estimator(tmp_path, manifest)["model"].value == 1.5


@pytest.fixture
def skops_dir(fitted: dict, tmp_path: Path) -> tuple[Path, dict]:
    d = tmp_path / "est"
    d.mkdir()
    return d, save_estimator(fitted["models"]["last_period"], d)


@pytest.mark.parametrize("name", ["estimator.skops", "estimator.joblib"])
@pytest.mark.parametrize("digest", ["stale", "matching"])
def test_a_pickle_swapped_in_for_a_skops_file_is_refused_before_it_is_read(skops_dir: tuple[Path, dict],
                                                                         tmp_path: Path, name: str,
                                                                         digest: str) -> None:
    d, manifest = skops_dir
    canary = tmp_path / "canary"
    (d / manifest["file"]).unlink()
    (d / name).write_bytes(pickle.dumps(_Canary(str(canary))))
    forged = dict(manifest, file=name) if digest == "matching" else dict(manifest)
    if digest == "matching":
        from spendlab.io.hashing import file_sha256

        forged["sha256"] = file_sha256(str(d / name))
    with pytest.raises((EstimatorFormatError, FileNotFoundError)):
        load_estimator(d, forged)
    with pytest.raises((EstimatorFormatError, FileNotFoundError)):
        load_estimator(d / name, forged)
    assert not canary.exists()


def test_a_skops_file_with_a_type_outside_the_list_is_refused(tmp_path: Path) -> None:
    from spendlab.io.hashing import file_sha256

    path = tmp_path / FORMATS["skops"]
    sio.dump({"model": _Untrusted()}, path)
    manifest = {"format": "skops", "file": path.name, "sha256": file_sha256(str(path)), "reason": ""}
    with pytest.raises(EstimatorFormatError, match="trusted list"):
        load_estimator(tmp_path, manifest)


@pytest.mark.parametrize("change", ["byte", "format", "unknown_format"])
def test_a_changed_file_or_record_is_refused(skops_dir: tuple[Path, dict], tmp_path: Path, change: str) -> None:
    d, manifest = skops_dir
    if change == "byte":
        path = d / manifest["file"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        match = "SHA-256"
    elif change == "format":  # the record claims joblib for a skops archive
        shutil.copy(d / manifest["file"], d / FORMATS["joblib"])
        manifest = dict(manifest, format="joblib", file=FORMATS["joblib"])
        match = "zip archive"
    else:
        manifest = dict(manifest, format="pickle")
        match = "unknown estimator format"
    with pytest.raises(EstimatorFormatError, match=match):
        load_estimator(d, manifest)


class _Context:
    """What MLflow hands ``load_context``: the artifact paths and the model's config."""

    def __init__(self, artifacts: dict[str, str], model_config: dict) -> None:
        self.artifacts, self.model_config = artifacts, model_config


def _context(d: Path, est_file: Path, config: dict) -> _Context:
    cand = d / "candidate.json"
    cand.write_text(json.dumps({"calibration": {}, "feature_names": ["spend_lag1"],
                                "experiment": {"segments": {"active_window": 3}}}))
    return _Context({"estimator": str(est_file), "candidate": str(cand)}, {"cold_start": {}, **config})


def test_the_scorer_loads_a_model_written_before_the_format_was_recorded(fitted: dict, tmp_path: Path) -> None:
    """Legacy models: ``estimator.joblib`` and only its SHA-256 in the config."""
    import joblib

    from spendlab.io.hashing import file_sha256
    from spendlab.tracking.pyfunc_model import SpendForecaster

    est, X = fitted["models"]["ridge"], fitted["X"]
    path = tmp_path / "estimator.joblib"
    joblib.dump(est, path)
    model = SpendForecaster()
    model.load_context(_context(tmp_path, path, {"estimator_sha256": file_sha256(str(path))}))
    np.testing.assert_array_equal(model.estimator_.predict(X), est.predict(X))


def test_the_scorer_refuses_a_pickle_where_its_config_records_skops(tmp_path: Path) -> None:
    from spendlab.io.hashing import file_sha256
    from spendlab.tracking.pyfunc_model import ModelIntegrityError, SpendForecaster

    canary = tmp_path / "canary"
    path = tmp_path / "estimator.skops"
    path.write_bytes(pickle.dumps(_Canary(str(canary))))
    sha = file_sha256(str(path))
    config = {"estimator_sha256": sha, "estimator_format": "skops", "estimator_file": "estimator.skops"}
    with pytest.raises(ModelIntegrityError, match="not a skops archive"):
        SpendForecaster().load_context(_context(tmp_path, path, config))
    assert not canary.exists()


def test_the_statsmodels_coefficient_table_survives_the_round_trip(fitted: dict, tmp_path: Path) -> None:
    est = fitted["models"]["sm_tweedie_glm"]
    table = est.coef_table_
    assert list(table.columns) == ["feature", "coef", "std_err", "z", "p_value"]
    assert list(table["feature"]) == ["const", *est.feature_names_in_]
    np.testing.assert_array_equal(table["coef"].to_numpy(), est.coef_)  # the coefficients predict uses
    np.testing.assert_allclose(table["z"], table["coef"] / table["std_err"], rtol=1e-12)
    loaded = load_estimator(tmp_path, save_estimator(est, tmp_path))
    import pandas as pd

    pd.testing.assert_frame_equal(loaded.coef_table_, table)
    assert "Generalized Linear Model" in loaded.summary_text_


@pytest.mark.parametrize("members", [["lightgbm", "lightgbm_clv", "sm_tweedie_glm", "bgnbd_seasonal"],
                                     ["hurdle", "random_forest", "per_user_linear"]])
@pytest.mark.parametrize("combiner", ["ensemble", "stack"])
def test_combiners_over_other_members_are_skops_archives_too(fitted: dict, tmp_path: Path, members: list[str],
                                                             combiner: str) -> None:
    """The `make run` ensemble's members (the statsmodels GLM among them), and another mix."""
    X = fitted["X"]
    est = make_model(combiner, {"members": members}).fit(X, synthetic_feature_frame(120, seed=3)[1])
    manifest = save_estimator(est, tmp_path)
    assert manifest["format"] == "skops", manifest["reason"]
    np.testing.assert_array_equal(load_estimator(tmp_path, manifest).predict(X), est.predict(X))
