"""Trust boundaries for artifacts: a model directory or candidate changed after it was written never
executes and never becomes champion, whatever else was changed with it."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.models import Model

from spendlab.errors import SpendlabError
from spendlab.io.hashing import file_sha256
from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.promote import promote_experiment
from spendlab.tracking.registry import MARKER, REGISTERED_MODEL
from spendlab.tracking.scorer import load_model
from spendlab.tracking.trust import (
    CANDIDATE_TAG,
    KEY_ENV,
    SIGNATURE_FILE,
    TREE_TAG,
    UntrustedModelError,
    sign_model_dir,
    tree_digest,
)
from tests.jobs.conftest import write_experiment

CHAMPION = f"models:/{REGISTERED_MODEL}@champion"
KEY = b"test-signing-key"


class _Exploit:
    """Unpickling this writes the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('executed')",))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One experiment (``last_period``) promoted to champion, and a downloaded copy of the champion."""
    root = tmp_path_factory.mktemp("trust")
    old = os.getcwd()
    os.chdir(root)
    try:
        exp = write_experiment(root, models=["zero", "last_period"], users=120)
        run_experiment(exp, out_dir=root / "out")
        outcome = promote_experiment(str(exp))
        pristine = Path(mlflow.artifacts.download_artifacts(CHAMPION, dst_path=str(root / "pristine")))
        yield {"root": root, "experiment": exp, "outcome": outcome, "pristine": pristine}
    finally:
        os.chdir(old)


@pytest.fixture
def in_store(store: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(store["root"])
    monkeypatch.delenv(KEY_ENV, raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{store['root']}/mlruns/mlflow.db")
    return store


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _estimator_file(model_dir: Path) -> Path:
    """The estimator file the model's config records (``estimator.skops`` for the registry's baselines)."""
    config = Model.load(str(model_dir / "MLmodel")).flavors["python_function"]["config"]
    return model_dir / "artifacts" / config.get("estimator_file", "estimator.joblib")


def _rewrite_manifest(model_dir: Path) -> None:
    """What an attacker with write access does: make the in-directory manifest agree again."""
    meta = Model.load(str(model_dir / "MLmodel"))
    est = _estimator_file(model_dir)
    meta.flavors["python_function"]["config"]["estimator_sha256"] = file_sha256(est)
    files = {p.relative_to(model_dir).as_posix(): file_sha256(p) for p in sorted(model_dir.rglob("*"))
             if p.is_file() and p.name not in {"MLmodel", "registered_model_meta", SIGNATURE_FILE}}
    meta.metadata = {MARKER: {**meta.metadata[MARKER], "files": files}}
    meta.save(str(model_dir / "MLmodel"))


def _edit_candidate(model_dir: Path, **changes: object) -> None:
    path = model_dir / "artifacts" / "candidate.json"
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if k == "test_rmse":
            data["figures"]["test_rmse"] = v
        else:
            data[k] = v
    path.write_text(json.dumps(data, indent=2) + "\n")


#: Each change an attacker may make; every non-empty combination is tried, the manifest rewritten last.
CHANGES = ("pickle", "candidate_key", "candidate_rmse", "mlmodel_config", "extra_file")


def _apply(model_dir: Path, changes: tuple[str, ...], marker: Path) -> None:
    if "pickle" in changes:  # a pickle under the recorded name (a skops archive for these models)
        _estimator_file(model_dir).write_bytes(pickle.dumps(_Exploit(marker)))
    if "candidate_key" in changes:
        _edit_candidate(model_dir, model_key="zero")
    if "candidate_rmse" in changes:
        _edit_candidate(model_dir, test_rmse=0.0001)
    if "mlmodel_config" in changes:
        meta = Model.load(str(model_dir / "MLmodel"))
        meta.flavors["python_function"]["config"]["cold_start"]["prediction"] = 1e9
        meta.save(str(model_dir / "MLmodel"))
    if "extra_file" in changes:
        (model_dir / "artifacts" / "notes.txt").write_text("extra")


COMBOS = [c for n in range(1, len(CHANGES) + 1) for c in itertools.combinations(CHANGES, n)]


def _swap_format(model_dir: Path, marker: Path) -> None:
    """Replace the skops archive by a joblib pickle and make the model's config and artifacts name it."""
    est = _estimator_file(model_dir)
    assert est.name == "estimator.skops" and zipfile.is_zipfile(est)
    est.unlink()
    (model_dir / "artifacts" / "estimator.joblib").write_bytes(pickle.dumps(_Exploit(marker)))
    meta = Model.load(str(model_dir / "MLmodel"))
    pyfunc = meta.flavors["python_function"]
    pyfunc["config"].update(estimator_format="joblib", estimator_file="estimator.joblib")
    for name in ("artifacts",):
        if isinstance(pyfunc.get(name), dict) and "estimator" in pyfunc[name]:
            pyfunc[name]["estimator"]["path"] = "artifacts/estimator.joblib"
    meta.save(str(model_dir / "MLmodel"))


def _assert_refused(local: Path, marker: Path, manifest: str, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cover the change (manifest rewritten, signature forged or stale) and check loading refuses it unexecuted."""
    if manifest == "rewritten":
        _rewrite_manifest(local)
    if key != "unset":
        monkeypatch.setenv(KEY_ENV, KEY.decode())
        if key.startswith("set, signature forged"):
            sign_model_dir(local, b"the attacker's key")
    with pytest.raises(SpendlabError) as err:
        load_model(str(local))
    assert not marker.exists()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("manifest", ["stale", "rewritten"])
@pytest.mark.parametrize("key", ["unset", "set, signature forged with another key", "set, signature from before the change"])
def test_a_pickle_swapped_in_for_the_skops_estimator_never_executes(in_store: dict, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch, manifest: str,
                                                                    key: str) -> None:
    marker = tmp_path / "EXECUTED"
    local = _copy(in_store["pristine"], tmp_path / "m")
    sign_model_dir(local, KEY)
    _swap_format(local, marker)
    _assert_refused(local, marker, manifest, key, monkeypatch)


def test_an_unchanged_copy_loads_because_its_registered_version_records_its_digest(in_store: dict,
                                                                                      tmp_path: Path) -> None:
    local = _copy(in_store["pristine"], tmp_path / "m")
    version = MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, "champion")
    assert version.tags[TREE_TAG] == tree_digest(local)
    assert load_model(str(local)).feature_names
    assert zipfile.is_zipfile(local / "artifacts" / "estimator.skops")  # no pickle in the model
    assert not list(local.rglob("*.joblib")) and not list(local.rglob("*.pkl"))


@pytest.mark.parametrize("changes", COMBOS, ids=["+".join(c) for c in COMBOS])
@pytest.mark.parametrize("manifest", ["stale", "rewritten"])
@pytest.mark.parametrize("key", ["unset", "set, signature forged with another key", "set, signature from before the change"])
def test_a_changed_model_directory_never_executes(in_store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  changes: tuple[str, ...], manifest: str, key: str) -> None:
    marker = tmp_path / "EXECUTED"
    local = _copy(in_store["pristine"], tmp_path / "m")
    sign_model_dir(local, KEY)  # signed as written: every later change must break it
    _apply(local, changes, marker)
    _assert_refused(local, marker, manifest, key, monkeypatch)


def test_a_signed_directory_loads_without_a_store_only_under_its_key(in_store: dict, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    local = _copy(in_store["pristine"], tmp_path / "m")
    sign_model_dir(local, KEY)
    nowhere = f"sqlite:///{tmp_path}/no-store/mlflow.db"
    with pytest.raises(UntrustedModelError, match="SPENDLAB_SIGNING_KEY is not set"):
        load_model(str(local), tracking_uri=nowhere)
    monkeypatch.setenv(KEY_ENV, "another key")
    with pytest.raises(UntrustedModelError, match="does not match"):
        load_model(str(local), tracking_uri=nowhere)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert load_model(str(local), tracking_uri=nowhere).feature_names
    assert not (tmp_path / "no-store").exists()  # the look-up created no store


def test_a_forged_self_consistent_directory_is_refused_on_the_command_line(in_store: dict, tmp_path: Path) -> None:
    marker = tmp_path / "EXECUTED"
    local = _copy(in_store["pristine"], tmp_path / "m")
    _apply(local, ("pickle",), marker)
    _rewrite_manifest(local)
    data = tmp_path / "tx.parquet"
    shutil.copy(in_store["root"] / "data" / "tx.parquet", data)
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    proc = subprocess.run([sys.executable, "-m", "spendlab.cli", "score", str(data), "--format", "generic",
                           "--model", str(local), "--out", str(tmp_path / "scores.parquet")],
                          capture_output=True, text=True, cwd=in_store["root"], env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not a trusted model" in lines[0] and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "scores.parquet").exists()


def _parent_run() -> object:
    client = MlflowClient()
    exp = client.get_experiment_by_name("synth_next_month")
    return client.search_runs([exp.experiment_id], "tags.kind = 'experiment'",
                              order_by=["attributes.start_time DESC"], max_results=1)[0]


def _artifact(run: object, name: str) -> Path:
    return Path(unquote(urlparse(run.info.artifact_uri).path)) / name


@pytest.mark.parametrize("edit", ["model key", "test RMSE", "replaced by another candidate", "no digest recorded"])
def test_an_edited_candidate_is_refused_and_never_becomes_champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   edit: str) -> None:
    """A fresh store per case: the run's candidate.json is edited after the experiment wrote it."""
    monkeypatch.chdir(tmp_path)
    exp = write_experiment(tmp_path, models=["zero", "last_period"], users=120)
    run_experiment(exp, out_dir=tmp_path / "out")
    assert promote_experiment(str(exp)).promoted  # champion: the tested last_period (or zero)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
    run = _parent_run()
    path = _artifact(run, "candidate.json")
    data = json.loads(path.read_text())
    assert run.data.tags[CANDIDATE_TAG]
    if edit == "model key":
        data["model_key"] = "zero" if data["model_key"] != "zero" else "last_period"
        path.write_text(json.dumps(data, indent=2) + "\n")
    elif edit == "test RMSE":
        data["figures"]["test_rmse"] = data["figures"]["test_rmse"] / 10
        path.write_text(json.dumps(data, indent=2) + "\n")
    elif edit == "replaced by another candidate":
        other = next(p for p in _artifact(run, "candidates").glob("*.json") if p.read_text() != path.read_text())
        shutil.copy(other, path)
    else:
        client.delete_tag(run.info.run_id, CANDIDATE_TAG)
    with pytest.raises(UntrustedModelError) as err:
        promote_experiment(str(exp), force=True)
    assert "\n" not in str(err.value) and run.info.run_id in str(err.value)
    assert client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version == champion.version
    assert len(client.search_model_versions(f"name = '{REGISTERED_MODEL}'")) == 1


def test_python_bytecode_caches_are_not_model_content_and_never_run(in_store: dict, tmp_path: Path) -> None:
    """Without PYTHONDONTWRITEBYTECODE (Python's default) importing the model's code writes
    ``__pycache__/pyfunc_model.*.pyc`` into the model directory; loading then failed "files differ from
    the recorded manifest". A cache is not part of a model: verification ignores it, spendlab loads a copy
    without it (a planted .pyc never runs) and never writes into the user's directory."""
    from spendlab.tracking.registry import verify_model_dir

    local = _copy(in_store["pristine"], tmp_path / "model")
    marker = tmp_path / "executed"
    cache = local / "__pycache__"
    cache.mkdir()
    planted = f"open({str(marker)!r}, 'w').write('x')\n"  # what a planted cache would run
    import importlib.util
    tag = sys.implementation.cache_tag
    (cache / f"pyfunc_model.{tag}.pyc").write_bytes(importlib.util.MAGIC_NUMBER + b"\0" * 12 + planted.encode())
    verify_model_dir(local)  # the cache is not an unrecorded model file
    before = {p.relative_to(local).as_posix(): file_sha256(p) for p in local.rglob("*") if p.is_file()}
    code = ("import os, sys; sys.dont_write_bytecode = False; os.environ.pop('PYTHONDONTWRITEBYTECODE', None)\n"
            "from spendlab.tracking.scorer import load_model\n"
            f"load_model({str(local)!r}); load_model({str(local)!r}); load_model({CHAMPION!r}); load_model({CHAMPION!r})\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=in_store["root"])
    assert run.returncode == 0, run.stderr
    assert not marker.exists()  # the planted cache never ran
    assert {p.relative_to(local).as_posix(): file_sha256(p) for p in local.rglob("*") if p.is_file()} == before
    (local / "notes.txt").write_text("not part of the model")
    with pytest.raises(SpendlabError, match="unrecorded"):
        verify_model_dir(local)  # anything else beside the model still fails
