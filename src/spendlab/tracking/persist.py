"""Write and read a fitted estimator in the safest format that holds it.

``skops`` first: scikit-learn estimators, spendlab's own estimators (the baselines, the feature
wrapper, ensembles, the hurdle and customer-base models) and LightGBM's scikit-learn models. skops
stores an object as a zip of JSON plus ``.npy`` arrays and rebuilds only the types it is told to
trust, so nothing in the file can run code; a LightGBM booster inside it is stored as its own text
model (``Booster.model_to_string``), which is what ``Booster.__getstate__`` hands skops. Loading
passes :data:`SKOPS_TRUSTED`, an explicit list of the types spendlab's registry needs; a file holding
any other type is refused by skops before it is built.

``joblib`` (a pickle) only for what skops cannot hold at all (a pandas frame, a fitted lifetimes or
statsmodels results object) or would need a type outside that list; no registry model needs it today. The manifest :func:`save_estimator`
returns records the format, the file name and its SHA-256; :func:`load_estimator` refuses a file
whose name, content or digest does not match that record before anything is read from it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from spendlab.errors import SpendlabError
from spendlab.io.hashing import file_sha256

__all__ = ["FORMATS", "SKOPS_TRUSTED", "EstimatorFormatError", "check_estimator_file", "load_estimator", "save_estimator",
           "skops_verdict"]

#: File name per format; the format is also told apart by content (a skops file is a zip archive).
FORMATS: dict[str, str] = {"skops": "estimator.skops", "joblib": "estimator.joblib"}

#: Every type outside skops' defaults (builtins, numpy, scipy and scikit-learn's own default-trusted
#: types) that spendlab's registry models contain. Nothing more: a file naming another type is refused.
SKOPS_TRUSTED: tuple[str, ...] = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "sklearn._loss.loss.HalfTweedieLoss",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.KFold",
    "sklearn.tree._tree.Tree",
    "spendlab.models.baselines.LastPeriod",
    "spendlab.models.baselines.MovingAverage",
    "spendlab.models.baselines.PerUserLinear",
    "spendlab.models.baselines.SeasonalNaive",
    "spendlab.models.baselines.ZeroForecaster",
    "spendlab.models.customer_base.BgNbdGammaGamma",
    "spendlab.models.customer_base.ClvBoostedRegressor",
    "spendlab.models.ensemble.EnsembleRegressor",
    "spendlab.models.ensemble.SegmentStackRegressor",
    "spendlab.models.hurdle.HurdleRegressor",
    "spendlab.models.learned.FeatureRegressor",
    "spendlab.models.statsmodels_glm.StatsmodelsTweedieGLM",
)

_ZIP_MAGIC = b"PK\x03\x04"


class EstimatorFormatError(SpendlabError):
    """An estimator file does not match the format, name or digest recorded when it was written."""


def skops_verdict(estimator: Any) -> tuple[bytes | None, str]:
    """Serialise ``estimator`` with skops if every type it needs is trusted.

    Parameters
    ----------
    estimator : object
        A fitted estimator.

    Returns
    -------
    tuple of (bytes or None, str)
        The skops archive and ``""``; or ``None`` and why skops cannot hold the estimator (an
        unsupported object, or the types outside :data:`SKOPS_TRUSTED`).
    """
    import skops.io as sio

    try:
        data = sio.dumps(estimator)
    except (TypeError, ValueError, NotImplementedError) as exc:  # skops: "no default __reduce__ ..."
        return None, f"skops cannot hold it ({type(exc).__name__}: {exc})"
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED))
    if untrusted:
        return None, f"it contains types outside the trusted list: {', '.join(untrusted)}"
    return data, ""


def save_estimator(estimator: Any, directory: str | Path) -> dict[str, str]:
    """Write ``estimator`` into ``directory`` as skops if possible, else joblib.

    Parameters
    ----------
    estimator : object
        A fitted estimator.
    directory : str or Path
        An existing directory; the estimator file is written inside it.

    Returns
    -------
    dict of str to str
        The manifest: ``format`` (``skops`` or ``joblib``), ``file`` (its name), ``sha256`` and
        ``reason`` (why joblib was needed; empty for skops). Store it where the loader reads it.
    """
    data, reason = skops_verdict(estimator)
    fmt = "skops" if data is not None else "joblib"
    path = Path(directory) / FORMATS[fmt]
    if data is not None:
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()  # the bytes in hand: no second read of the file
    else:
        import joblib

        joblib.dump(estimator, path)
        digest = file_sha256(str(path))
    return {"format": fmt, "file": path.name, "sha256": digest, "reason": reason}


def check_estimator_file(path: str | Path, manifest: dict[str, str]) -> str:
    """Check ``path`` against its recorded ``manifest`` without reading it as an estimator.

    Parameters
    ----------
    path : str or Path
        The estimator file.
    manifest : dict
        What :func:`save_estimator` returned when the file was written.

    Returns
    -------
    str
        The recorded format.

    Raises
    ------
    EstimatorFormatError
        Unknown format; file name not the recorded one; content not of the recorded format; SHA-256
        not the recorded one.
    """
    where = Path(path)
    fmt = str(manifest.get("format", ""))
    if fmt not in FORMATS:
        raise EstimatorFormatError(f"{where}: unknown estimator format {fmt!r} (known: {', '.join(FORMATS)})")
    if where.name != FORMATS[fmt] or manifest.get("file") != where.name:
        raise EstimatorFormatError(f"{where}: recorded as {fmt} in {manifest.get('file')!r}; refusing a file "
                                   f"named {where.name!r}")
    with open(where, "rb") as fh:
        is_zip = fh.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if is_zip != (fmt == "skops"):
        raise EstimatorFormatError(f"{where}: recorded as {fmt}, but its content is "
                                   f"{'a zip archive' if is_zip else 'not a skops archive'}; not loading")
    if file_sha256(str(where)) != manifest.get("sha256"):
        raise EstimatorFormatError(f"{where}: SHA-256 does not match the one recorded (altered after registration); "
                                   "not loading")
    return fmt


def load_estimator(directory: str | Path, manifest: dict[str, str]) -> Any:
    """Load the estimator :func:`save_estimator` wrote into ``directory``, as its manifest records it.

    Parameters
    ----------
    directory : str or Path
        The directory holding the estimator file (or the file itself).
    manifest : dict
        What :func:`save_estimator` returned (kept outside the file, e.g. in the model's config).

    Returns
    -------
    object
        The fitted estimator.

    Raises
    ------
    EstimatorFormatError
        The file fails :func:`check_estimator_file`, or a skops file names a type outside
        :data:`SKOPS_TRUSTED`.
    """
    where = Path(directory)
    if where.is_dir():
        where = where / str(manifest.get("file", ""))
    fmt = check_estimator_file(where, manifest)
    if fmt == "joblib":
        import joblib

        return joblib.load(where)
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return sio.load(where, trusted=list(SKOPS_TRUSTED))
    except UntrustedTypesFoundException as exc:
        raise EstimatorFormatError(f"{where}: holds types outside the trusted list ({exc}); not loading") from None
