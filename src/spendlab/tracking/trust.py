"""What vouches for a model directory and a tested candidate: always something outside them.

A model directory cannot vouch for itself: whoever can replace its pickle can rewrite a manifest kept
in the same folder. A directory is therefore loaded only when one of two anchors outside it agrees:

- **the registry**: ``promote`` records the digest of the whole artifact tree (:func:`tree_digest`,
  tag ``tree_sha256``) and of ``MLmodel`` (tag ``mlmodel_sha256``, which holds the per-file manifest)
  on the registered version; a directory whose digest a registered version of the tracking store
  records is that version;
- **a signature**: ``spendlab.sig`` holds an HMAC-SHA256 of the tree digest under a key the directory
  cannot carry: the environment variable ``SPENDLAB_SIGNING_KEY`` (``promote`` signs the model it
  registers when the key is set; :func:`sign_model_dir` signs a directory).

Anything else is refused before a byte of the directory is unpickled. Candidates work the same way:
the experiment records the SHA-256 of each ``candidate.json`` as a tag of the run that logged it,
and ``promote`` refuses a candidate whose bytes no longer match (or whose run records no digest).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from spendlab.errors import SpendlabError
from spendlab.io.hashing import file_sha256
from spendlab.tracking import runs as tracking

#: The signature file inside a model directory (not part of the tree digest it signs).
SIGNATURE_FILE = "spendlab.sig"
#: The environment variable holding the HMAC key.
KEY_ENV = "SPENDLAB_SIGNING_KEY"
#: Tag of a registered version: the digest of its whole artifact tree.
TREE_TAG = "tree_sha256"
#: Tag of a registered version: the SHA-256 of its ``MLmodel`` (which lists every other file's SHA-256).
MLMODEL_TAG = "mlmodel_sha256"
#: Tag of an experiment run: the SHA-256 of the ``candidate.json`` it logged.
CANDIDATE_TAG = "candidate_sha256"
#: Files outside the digest: the signature itself, and MLflow's note of the version it downloaded.
UNHASHED = frozenset({SIGNATURE_FILE, "registered_model_meta"})
#: Python's bytecode cache: written by the interpreter beside the model's code file when it is imported
#: (unless PYTHONDONTWRITEBYTECODE is set), so never part of a model. spendlab loads only copies
#: without it (:func:`spendlab.tracking.registry.verified_model_dir`), so no cached bytecode runs.
BYTECODE_CACHE = "__pycache__"


def is_bytecode_cache(rel: str) -> bool:
    """Tell whether the relative path ``rel`` lies in a bytecode cache folder (``__pycache__``)."""
    return BYTECODE_CACHE in rel.split("/")


def copy_without_bytecode(src: Path, dst: Path) -> Path:
    """Copy model directory ``src`` to ``dst`` without Python's bytecode caches; return ``dst``.

    spendlab verifies and loads only such a copy: a cached ``.pyc`` beside the verified code file would
    run instead of it, and loading never writes into a directory spendlab did not make.
    """
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(BYTECODE_CACHE))
    return dst


def drop_bytecode(root: Path) -> None:
    """Remove the bytecode caches under ``root``, a model directory spendlab made (a save or a download)."""
    for cache in [p for p in root.rglob(BYTECODE_CACHE) if p.is_dir()]:
        shutil.rmtree(cache)
_SCHEME = "hmac-sha256"


class UntrustedModelError(SpendlabError):
    """A model directory or candidate that nothing outside it vouches for (or that was changed)."""


def signing_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """Return the HMAC key from ``SPENDLAB_SIGNING_KEY`` (None when unset or empty).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; default ``os.environ``.

    Returns
    -------
    bytes or None
        The key's UTF-8 bytes.
    """
    value = (os.environ if environ is None else environ).get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def tree_digest(root: str | Path) -> str:
    """Return the SHA-256 over every file's relative path and SHA-256 (symbolic links refused).

    Parameters
    ----------
    root : str or Path
        The model directory.

    Returns
    -------
    str
        Hex digest; files in :data:`UNHASHED` are left out.

    Raises
    ------
    UntrustedModelError
        The tree holds a symbolic link (it could point anywhere after signing).
    """
    base = Path(root)
    h = hashlib.sha256()
    for path in sorted(base.rglob("*"), key=lambda p: p.relative_to(base).as_posix()):
        rel = path.relative_to(base).as_posix()
        if path.is_symlink():
            raise UntrustedModelError(f"{base}: {rel} is a symbolic link; not loading")
        if path.is_file() and rel not in UNHASHED and not is_bytecode_cache(rel):
            h.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, f"{_SCHEME}:{digest}".encode(), hashlib.sha256).hexdigest()


def sign_model_dir(root: str | Path, key: bytes) -> Path:
    """Write ``spendlab.sig``: the HMAC of the directory's tree digest under ``key``.

    Parameters
    ----------
    root : str or Path
        The model directory (complete: anything added later breaks the signature).
    key : bytes
        The signing key (never written anywhere).

    Returns
    -------
    Path
        The signature file.
    """
    digest = tree_digest(root)
    path = Path(root) / SIGNATURE_FILE
    path.write_text(json.dumps({"scheme": _SCHEME, TREE_TAG: digest, "hmac": _mac(key, digest)}) + "\n",
                    encoding="utf-8")
    return path


def signature_holds(root: str | Path, digest: str, key: bytes) -> bool:
    """Return whether ``spendlab.sig`` is a valid HMAC of ``digest`` under ``key``."""
    path = Path(root) / SIGNATURE_FILE
    if not path.is_file() or path.is_symlink():
        return False
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(sig, dict) or sig.get("scheme") != _SCHEME or not isinstance(sig.get("hmac"), str):
        return False
    return hmac.compare_digest(sig["hmac"], _mac(key, digest))


def authenticate(root: str | Path, *, key: bytes | None,
                 registered: Callable[[str, str], str | None] | None) -> str:
    """Return what vouches for a model directory, or refuse it.

    Parameters
    ----------
    root : str or Path
        The model directory (only hashed here; nothing is parsed or unpickled).
    key : bytes, optional
        The HMAC key; without it a signature is not checked.
    registered : callable, optional
        ``registered(tree_digest, mlmodel_sha256)`` -> the registered version recording either digest,
        or None; None when no tracking store is available.

    Returns
    -------
    str
        ``"signature"`` or ``"registered version N"``.

    Raises
    ------
    UntrustedModelError
        Neither anchor vouches for the directory.
    """
    base = Path(root)
    digest = tree_digest(base)
    if key is not None and signature_holds(base, digest, key):
        return "signature"
    mlmodel = base / "MLmodel"
    version = registered(digest, file_sha256(mlmodel)) if registered and mlmodel.is_file() else None
    if version is not None:
        return f"registered version {version}"
    why = ("its spendlab.sig does not match under SPENDLAB_SIGNING_KEY" if key is not None and
           (base / SIGNATURE_FILE).exists() else
           "it is not signed with SPENDLAB_SIGNING_KEY" if key is not None else "SPENDLAB_SIGNING_KEY is not set")
    raise UntrustedModelError(f"{base}: not a trusted model: no registered version records its digest and {why}; "
                              "nothing in it was loaded")


def candidate_digest(text: str) -> str:
    """Return the SHA-256 of a ``candidate.json`` as logged (its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_candidate(data: bytes, recorded: str | None, *, source: str) -> None:
    """Refuse a candidate whose bytes do not match the digest its run recorded.

    Parameters
    ----------
    data : bytes
        The downloaded ``candidate.json``.
    recorded : str, optional
        The run's ``candidate_sha256`` tag; None for runs that predate it, which are refused too.
    source : str
        Names the run and file in the message.

    Raises
    ------
    UntrustedModelError
        No digest recorded, or a different one.
    """
    if not recorded:
        raise UntrustedModelError(f"{source}: the run records no SHA-256 of its candidate (written by an older "
                                  "spendlab); re-run the experiment before promoting")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), recorded):
        raise UntrustedModelError(f"{source}: changed after the experiment wrote it (SHA-256 differs from the "
                                  "run's record); not promoting")


def registry_lookup(tracking_uri: str | None) -> Callable[[str, str], str | None]:
    """Return a look-up of registered versions by digest in the tracking store, if it exists.

    Parameters
    ----------
    tracking_uri : str, optional
        The store; a store that does not exist is not created (the look-up then finds nothing).

    Returns
    -------
    callable
        ``lookup(tree_digest, mlmodel_sha256)`` -> ``"name/version"`` or None.
    """

    def lookup(digest: str, mlmodel_sha: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            tracking.configure(tracking_uri, must_exist=True)
            client = tracking.client()
            for tag, value in ((TREE_TAG, digest), (MLMODEL_TAG, mlmodel_sha)):
                found = client.search_model_versions(f"tag.{tag} = '{value}'")
                if found:
                    return f"{found[0].name}/{found[0].version}"
        except (SpendlabError, MlflowException, OSError):  # no store or no server: no anchor, the caller refuses
            return None
        return None

    return lookup
