"""Promote through the MLflow Model Registry.

Log a candidate as a pyfunc model, register it, and move the ``champion`` alias only if it wins on
the same test protocol.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from spendlab import __version__
from spendlab.errors import SpendlabError
from spendlab.io.hashing import file_sha256
from spendlab.tracking import pyfunc_model
from spendlab.tracking import runs as tracking
from spendlab.tracking.persist import save_estimator
from spendlab.tracking.pyfunc_model import ModelIntegrityError
from spendlab.tracking.trust import (
    MLMODEL_TAG,
    SIGNATURE_FILE,
    TREE_TAG,
    authenticate,
    copy_without_bytecode,
    drop_bytecode,
    is_bytecode_cache,
    registry_lookup,
    sign_model_dir,
    signing_key,
    tree_digest,
)

if TYPE_CHECKING:  # imported where used: verifying and loading a model need neither (nor scikit-learn with them)
    from spendlab.forecast.candidate import Candidate

REGISTERED_MODEL = "spendlab-next-month"
ALIAS = "champion"


#: The pyfunc's inference params and their defaults (part of the signature): ``n_threads`` = threads
#: ``predict`` may use, 0 = the model's own setting. Batch scoring passes the machine's cores.
PREDICT_PARAMS: dict[str, int | str] = {"n_threads": 0, "as_of": ""}


#: Exit code of ``spendlab promote`` when the candidate does not take the alias.
EXIT_NOT_PROMOTED = 4


@dataclass
class Refit:
    """A tested candidate refitted on every example labelled by the latest complete period."""

    candidate: Candidate
    estimator: Any
    train_cutoff: dt.date
    cold_start: dict[str, float]
    input_example: pd.DataFrame
    dataset_hash: str
    #: The training population's profile (``reference.json``, :func:`spendlab.monitor.drift.reference_profile`).
    reference: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """Same candidate, same data, same cutoff: the same model (promoting it again is a no-op)."""
        from spendlab.forecast.protocol import fingerprint  # defer: scikit-learn
        return fingerprint(self.candidate.candidate_id, self.dataset_hash, self.train_cutoff)


@dataclass(frozen=True)
class PromotionOutcome:
    """Whether a candidate was promoted, the version registered and why."""

    promoted: bool
    version: str
    previous_champion: str | None
    reason: str
    new_version: bool

    @property
    def exit_code(self) -> int:
        """Return the CLI's exit code: 0 when promoted, else the not-promoted code."""
        return 0 if self.promoted else EXIT_NOT_PROMOTED


#: The marker a spendlab model carries in its MLmodel ``metadata`` (with the file manifest).
MARKER = "spendlab"
MANIFEST_VERSION = 1
_CODE_LOADER = "mlflow.pyfunc.loaders.code_model"
_CODE_FILE = Path(pyfunc_model.__file__).name
#: Written by MLflow when a registered version is downloaded (name and version, YAML; never executed).
_REGISTRY_FILES = frozenset({"registered_model_meta", SIGNATURE_FILE})


def _manifest(model_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of a saved model except ``MLmodel`` (which holds this manifest)."""
    return {p.relative_to(model_dir).as_posix(): file_sha256(str(p))
            for p in sorted(model_dir.rglob("*")) if p.is_file() and p.relative_to(model_dir).as_posix() != "MLmodel"
            and not is_bytecode_cache(p.relative_to(model_dir).as_posix())}


def save_model_dir(refit: Refit, path: Path) -> Path:
    """Write ``refit`` as a spendlab pyfunc model directory at ``path``.

    Estimator (skops, or joblib for what skops cannot hold: :mod:`spendlab.tracking.persist`; its
    format, file name and SHA-256 in ``model_config``), ``candidate.json``, the model code, and in
    ``MLmodel`` the spendlab marker with every file's SHA-256.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    cand = refit.candidate
    with tempfile.TemporaryDirectory() as tmp:
        stored = save_estimator(refit.estimator, tmp)  # skops where it can hold the estimator, else joblib
        est_path = Path(tmp) / stored["file"]
        cand_path = Path(tmp) / "candidate.json"
        cand_path.write_text(cand.to_json(), encoding="utf-8")
        artifacts = {"estimator": str(est_path), "candidate": str(cand_path)}
        if refit.reference is not None:  # carried by the model: scoring and monitoring read it
            (Path(tmp) / "reference.json").write_text(json.dumps(refit.reference, indent=1), encoding="utf-8")
            artifacts["reference"] = str(Path(tmp) / "reference.json")
        model_config = {
            "estimator_sha256": stored["sha256"],
            "estimator_format": stored["format"],
            "estimator_file": stored["file"],
            "feature_names": cand.feature_names,
            "feature_config": cand.feature_config,
            "feature_config_hash": cand.feature_config_hash,
            "freq": cand.experiment_config().freq,
            "horizon": cand.experiment_config().horizon,
            "train_cutoff": refit.train_cutoff.isoformat(),
            "model_key": cand.model_key,
            "candidate_id": cand.candidate_id,
            "cold_start": refit.cold_start,
            "spendlab_version": __version__,
        }
        example = refit.input_example
        loaded = pyfunc_model.SpendForecaster()
        loaded.bind(refit.estimator, cand.calibration, cand.feature_names,
                    cand.experiment_config().segments.active_window, refit.cold_start)
        signature = infer_signature(example, loaded.predict(None, example), params=PREDICT_PARAMS)
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(Path(pyfunc_model.__file__)),
            artifacts=artifacts,
            model_config=model_config,
            signature=signature,
            input_example=example,
            pip_requirements=[f"spendlab=={__version__}"],
        )
    meta = Model.load(str(path / "MLmodel"))
    meta.metadata = {MARKER: {"manifest_version": MANIFEST_VERSION, "candidate_id": cand.candidate_id,
                              "files": _manifest(path)}}
    meta.save(str(path / "MLmodel"))
    return path


def verify_model_dir(path: str | Path, *, mlmodel_sha256: str | None = None) -> dict[str, Any]:
    """Check a local model directory **before anything in it is imported or unpickled**.

    The spendlab marker and manifest must be in ``MLmodel``; the only flavour must be ``python_function``
    loaded from spendlab's model code (no pickled ``python_model``, no extra code path); every file must
    match its recorded SHA-256 and no unrecorded file may be present; with ``mlmodel_sha256`` (recorded
    on the registered version) ``MLmodel`` itself must match too. Returns the model's ``model_config``.
    """
    from mlflow.models import Model

    root = Path(path)
    where = root / "MLmodel"
    if not where.is_file():
        raise ModelIntegrityError(f"{root} is not an MLflow model directory (no MLmodel file)")
    if mlmodel_sha256 is not None and file_sha256(str(where)) != mlmodel_sha256:
        raise ModelIntegrityError(f"{where} does not match the SHA-256 recorded on the registered version")
    try:
        meta = Model.load(str(where))  # YAML (safe_load): nothing executed
    except Exception as exc:
        raise ModelIntegrityError(f"{where} cannot be read: {exc}") from None
    marker = (meta.metadata or {}).get(MARKER)
    if not isinstance(marker, dict) or marker.get("manifest_version") != MANIFEST_VERSION:
        raise ModelIntegrityError(f"{root} is not a spendlab model (no {MARKER} marker and file manifest in MLmodel)")
    flavors = meta.flavors or {}
    pyfunc = flavors.get("python_function") or {}
    code_file = Path(str(pyfunc.get("model_code_path", ""))).name
    if set(flavors) != {"python_function"} or pyfunc.get("loader_module") != _CODE_LOADER or \
            "python_model" in pyfunc or pyfunc.get("code") or code_file != _CODE_FILE:
        raise ModelIntegrityError(f"{root}: unexpected flavour (spendlab models are python_function models "
                                  f"from the code file {_CODE_FILE}, without pickled Python objects or code paths)")
    recorded = dict(marker.get("files") or {})
    actual = {rel for p in root.rglob("*") if p.is_file() and not is_bytecode_cache(rel := p.relative_to(root).as_posix())
              } - {"MLmodel", *_REGISTRY_FILES}
    extra, missing = sorted(actual - set(recorded)), sorted(set(recorded) - actual)
    if extra or missing:
        raise ModelIntegrityError(f"{root}: files differ from the recorded manifest (unrecorded {extra}, "
                                  f"missing {missing})")
    altered = [name for name, sha in recorded.items() if file_sha256(str(root / name)) != sha]
    if altered:
        raise ModelIntegrityError(f"{root}: {altered} altered after registration (SHA-256 mismatch); not loading")
    return dict(pyfunc.get("config") or {})


@contextlib.contextmanager
def verified_model_dir(uri: str, *, tracking_uri: str | None = None,
                       key: bytes | None = None) -> Iterator[tuple[Path, str, str | None]]:
    """Yield a verified local copy of model ``uri``: (directory, version, registered MLmodel hash).

    ``uri`` is a directory, or ``models:/name@alias`` / ``models:/name/v`` (registry look-ups need a
    configured store). A directory must pass :func:`verify_model_dir` and be vouched for from outside
    (:func:`spendlab.tracking.trust.authenticate`: a registered version of the ``tracking_uri`` store
    records its digest, or its ``spendlab.sig`` holds under ``key``, default ``$SPENDLAB_SIGNING_KEY``).
    """
    local = Path(uri)
    if "://" not in uri and ":/" not in uri and local.exists():
        with tempfile.TemporaryDirectory(prefix="spendlab-model-") as tmp:
            copy = copy_without_bytecode(local, Path(tmp) / "model")
            verify_model_dir(copy)
            authenticate(copy, key=key if key is not None else signing_key(), registered=registry_lookup(tracking_uri))
            yield copy, "unregistered", None
        return
    import mlflow
    from mlflow.exceptions import MlflowException

    version, tag, tree = None, None, None
    if uri.startswith("models:/"):
        mv = _model_version(uri)
        version, tag, tree = str(mv.version), (mv.tags or {}).get(MLMODEL_TAG), (mv.tags or {}).get(TREE_TAG)
        if tag is None:
            raise ModelIntegrityError(f"{uri} (version {version}) has no recorded MLmodel hash; re-promote it")
    with tempfile.TemporaryDirectory(prefix="spendlab-model-") as tmp:
        try:
            got = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        except MlflowException as exc:
            why = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
            raise SpendlabError(f"cannot load model {uri} into {tmp}: {why[0]} {why[-1] if len(why) > 1 else ''}") from None
        drop_bytecode(got)  # our own copy: no cached bytecode runs
        verify_model_dir(got, mlmodel_sha256=tag)
        if tree is not None and tree_digest(got) != tree:
            raise ModelIntegrityError(f"{uri}: its files differ from the digest recorded on version {version}")
        yield got, version or "unregistered", tag


def _model_version(uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    client = tracking.client()
    name, _, rest = uri.removeprefix("models:/").partition("@")
    try:
        if rest:
            return client.get_model_version_by_alias(name, rest)
        name, _, version = name.partition("/")
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise SpendlabError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None


def read_model_candidate(model_dir: Path) -> Candidate:
    """Read the ``candidate.json`` of a verified model directory (plain JSON, nothing unpickled)."""
    from spendlab.forecast.candidate import read_candidate  # defer: scikit-learn
    return read_candidate((model_dir / "artifacts" / "candidate.json").read_text(encoding="utf-8"),
                          source=str(model_dir))


# long: one registration: idempotency check, verified save, log, register, tag, alias; each step needs the previous one's ids
def log_and_register(
    refit: Refit,
    *,
    tracking_uri: str | None = None,
    registered_model: str = REGISTERED_MODEL,
    alias: str = ALIAS,
    force: bool = False,
    key: bytes | None = None,
) -> PromotionOutcome:
    """Log ``refit`` as a pyfunc model from code, register it, and move the alias if it wins.

    The version records the digests of ``MLmodel`` and of the whole tree; with ``key`` the
    logged model also carries ``spendlab.sig`` (trusted wherever that key is set, without the store).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking.configure(tracking_uri)
    client = MlflowClient()
    cand = refit.candidate
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model, description="Next-period spend per user (spendlab).")

    same = client.search_model_versions(f"name = '{registered_model}' and tag.fingerprint = '{refit.fingerprint}'")
    current = _current_champion(client, registered_model, alias)
    if same:
        version = str(max(int(v.version) for v in same))
        is_champion = current is not None and str(current.version) == version
        reason = (f"unchanged: an identical candidate is already version {version}"
                  + (" (the champion)" if is_champion else " (not the champion)"))
        return PromotionOutcome(is_champion, version, str(current.version) if current else None, reason, False)

    promoted, reason = _decide(cand, current, force)
    exp_id = tracking.ensure_experiment(cand.experiment_config().name)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model_dir(refit, Path(tmp) / "model")
        mlmodel_sha, tree_sha = file_sha256(str(model_dir / "MLmodel")), tree_digest(model_dir)
        if key is not None:
            sign_model_dir(model_dir, key)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"promote-{cand.model_key}",
                              tags={**tracking.base_tags(), "kind": "promotion", "model": cand.model_key}) as run:
            mlflow.log_params({"model_key": cand.model_key, "train_cutoff": refit.train_cutoff.isoformat(),
                               "candidate_id": cand.candidate_id})
            mlflow.log_metrics({"test_rmse": cand.figures.test_rmse, "validation_rmse": cand.figures.validation_rmse})
            mlflow.log_text(cand.to_json(), "candidate.json")
            if refit.reference is not None:
                mlflow.log_dict(refit.reference, "reference.json")
            drop_bytecode(model_dir)  # written if its code was imported (no PYTHONDONTWRITEBYTECODE)
            mlflow.log_artifacts(str(model_dir), "model")
    with _quiet_registration():
        mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", registered_model)
    version = str(mv.version)
    f = cand.figures
    tags = {
        "fingerprint": refit.fingerprint,
        "candidate_id": cand.candidate_id,
        MLMODEL_TAG: mlmodel_sha,
        TREE_TAG: tree_sha,
        "model_key": cand.model_key,
        "experiment": cand.experiment_config().name,
        "protocol": cand.protocol_id,
        "test_rmse": repr(float(f.test_rmse)),
        "validation_rmse": repr(float(f.validation_rmse)),
        "test_bias": repr(float(f.test_bias if f.test_bias is not None else float("nan"))),
        "interval_coverage_80": f"{(f.interval_coverage_80 if f.interval_coverage_80 is not None else float('nan')):.4f}",
        "train_cutoff": refit.train_cutoff.isoformat(),
        "feature_set_version": cand.feature_config_hash,
        "dataset_hash": refit.dataset_hash[:16],
        "experiment_run_id": cand.experiment_run_id,
        "promoted": str(promoted).lower(),
        "promotion_reason": reason,
    }
    for k, v in tags.items():
        client.set_model_version_tag(registered_model, version, k, v)
    if promoted:
        client.set_registered_model_alias(registered_model, alias, version)
    return PromotionOutcome(promoted, version, str(current.version) if current else None, reason, True)


@contextlib.contextmanager
def _quiet_registration() -> Iterator[None]:
    """Drop MLflow's registration chatter from stderr.

    "Registered model ... already exists" is printed on the very first version, since spendlab creates
    the model with its description first; spendlab reports the outcome itself. Anything else written
    meanwhile is passed through.
    """
    chatter = ("Successfully registered model ", "Registered model ", "Created version ")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        rest = [line for line in buf.getvalue().splitlines(keepends=True) if not line.startswith(chatter)]
        sys.stderr.write("".join(rest))


def _current_champion(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _decide(candidate: Candidate, current: Any, force: bool) -> tuple[bool, str]:
    """Whether the candidate takes the alias, and the reason (stored on the version)."""
    test_rmse, protocol = candidate.figures.test_rmse, candidate.protocol_id
    if current is None:
        return True, f"first champion (test RMSE {test_rmse:.4f})"
    cur_tags = current.tags or {}
    cur_rmse = float(cur_tags.get("test_rmse", "inf"))
    if cur_tags.get("protocol") != protocol:
        if force:
            return True, f"forced: protocol {protocol} differs from the champion's {cur_tags.get('protocol')}"
        return False, (f"not comparable: the champion (version {current.version}) was tested on protocol "
                       f"{cur_tags.get('protocol')}, the candidate on {protocol}; use --force")
    if test_rmse < cur_rmse:
        return True, (f"beats champion version {current.version}: test RMSE {test_rmse:.4f} "
                      f"< {cur_rmse:.4f}")
    if force:
        return True, f"forced over version {current.version} (test RMSE {test_rmse:.4f} >= {cur_rmse:.4f})"
    return False, (f"does not beat champion version {current.version}: test RMSE {test_rmse:.4f} "
                   f">= {cur_rmse:.4f}")
