"""Shared pieces of the forecasters: feature-frame checks and lag-column discovery.

Every forecaster takes ``X`` = the as-of feature frame (one row per user, float64 feature
columns, ``user_id`` either dropped or kept as the index) and ``y`` = next-period spend.
Baselines read named columns; learned models use every numeric column.
"""

from __future__ import annotations

import re
import threading
import types
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.features.config import lag_name

_LAG = re.compile(re.escape(lag_name("spend", 0))[:-1] + r"(\d+)$")  # spend_lag<k>, named in one place
#: Threads ``predict`` may use (``None``: each model's own setting); see :func:`predict_threads`.
_PREDICT_THREADS: ContextVar[int | None] = ContextVar("spendlab_predict_threads", default=None)
ID_COLUMNS: tuple[str, ...] = ("user_id",)


class FeatureFrameError(SpendlabError, ValueError):
    """The feature frame given to a forecaster lacks a column it needs."""


def as_frame(X: object) -> pd.DataFrame:
    """``X`` as a DataFrame without id columns (never modifies the caller's frame)."""
    if not isinstance(X, pd.DataFrame):
        raise FeatureFrameError(f"forecasters take a pandas DataFrame of features, got {type(X).__name__}")
    drop = [c for c in ID_COLUMNS if c in X.columns]
    return X.drop(columns=drop) if drop else X


def require(X: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    """Raise naming every column ``who`` needs that ``X`` lacks."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise FeatureFrameError(f"{who} needs feature column(s) {', '.join(missing)}; the frame has none of them")


def lag_columns(X: pd.DataFrame, max_lag: int | None = None) -> list[str]:
    """``spend_lag1 .. spend_lagK`` present in ``X``, in lag order (lag1 = the as-of period)."""
    found = sorted((int(m.group(1)), c) for c in X.columns if (m := _LAG.match(c)))
    cols = [c for k, c in found if max_lag is None or k <= max_lag]
    if not cols:
        raise FeatureFrameError("the feature frame has no spend_lag<k> columns")
    return cols


def non_negative(pred: np.ndarray) -> np.ndarray:
    """Predictions as finite non-negative float64 (spend cannot be negative)."""
    out = np.asarray(pred, dtype=np.float64).reshape(-1)
    out = np.where(np.isfinite(out), out, 0.0)
    return np.clip(out, 0.0, None)


@contextmanager
def predict_threads(n: int | None) -> Iterator[None]:
    """Let every ``predict`` inside the block use ``n`` threads (``None`` or 0: the model's own setting).

    Models are fitted single-threaded (LightGBM's OpenMP workers spin while they wait, which on a
    shared 2-core machine made training slower; see docs/models-and-selection.md), but one large ``predict``
    per scoring chunk is a single parallel loop over rows, which ``n`` threads shorten about n-fold.
    Batch scoring sets this; fitted models are not changed.
    """
    token = _PREDICT_THREADS.set(int(n) if n else None)
    try:
        yield
    finally:
        _PREDICT_THREADS.reset(token)


def current_predict_threads() -> int | None:
    """Return the thread count set by the innermost :func:`predict_threads` block, if any."""
    return _PREDICT_THREADS.get()


_LIBRARY_QUIET = threading.Lock()


def _drop(*args: Any, **kwargs: Any) -> None:
    """Print nothing (a ``print`` replacement)."""


@contextmanager
def quiet_library_fit(module: types.ModuleType) -> Iterator[None]:
    """Silence ``module``'s own prints and RuntimeWarnings during one fit, safely across threads.

    Parameters
    ----------
    module : module
        The library module that prints (lifetimes prints a failed optimiser's report from
        ``lifetimes.fitters``).

    Notes
    -----
    ``sys.stdout`` is left alone: replacing it (``contextlib.redirect_stdout``) would swap it for the
    whole process, so a backtest fitting on one thread would swallow the CLI's output on another.
    Instead the module's global name ``print`` is shadowed for the duration of the call. That, and the
    warning filters (process-wide state too), are changed under a lock, so fits that need them take turns.
    """
    with _LIBRARY_QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        module.print = _drop  # type: ignore[attr-defined]
        try:
            yield
        finally:
            del module.print  # type: ignore[attr-defined]
