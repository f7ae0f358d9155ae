"""Weighted thinning of a stacked training set's zero-target rows.

On CDNOW the largest training set stacks 329,980 (user, origin) rows, nine in ten of them users who
spend nothing in the target month, most long dormant. Keeping a seeded ``fraction`` of the
zero-target rows, with weight ``n / k`` on each kept row (``k`` kept of a stratum's ``n``), gives a
weighted loss that estimates the full set's loss without bias at a fraction of the fit's CPU. Rows
that spent are all kept, with weight 1.

The strata are (origin, recency bucket): each origin's zero rows and each bucket of days since the
last purchase keep their exact total weight, so the weighted training set has the same number of
zero rows per origin and recency as the full one. Most zero rows are dormant users', so they are
what is thinned. The draw of one origin's rows depends only on the seed and that origin's cutoff,
so an origin stacked into several training sets keeps the same rows in each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from spendlab.models.registry import WEIGHTED_FIT

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Recency column of the as-of features: days from the last purchase to the cutoff (NaN: none yet).
RECENCY_COLUMN = "days_since_last_purchase"
#: Recency bucket edges in days: bought in the last month, quarter, half year, year, or before.
RECENCY_EDGES_DAYS: tuple[float, ...] = (31.0, 92.0, 183.0, 366.0)


def recency_bucket(days: np.ndarray, edges: Sequence[float] = RECENCY_EDGES_DAYS) -> np.ndarray:
    """Return the recency bucket of each row: 0 .. len(edges) by ``edges``, len(edges) + 1 for NaN."""
    days = np.asarray(days, dtype=np.float64)
    out = np.searchsorted(np.asarray(edges, dtype=np.float64), days, side="right")
    return np.where(np.isnan(days), len(edges) + 1, out)


def _origin_codes(X: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Each row's origin as a code into the sorted origins, and those origins as ordinal days ([0]: none)."""
    if "origin" not in (X.index.names or []):
        return np.zeros(len(X), dtype=np.int64), [0]
    codes, uniques = pd.factorize(pd.DatetimeIndex(X.index.get_level_values("origin")), sort=True)
    return codes, [int(d.toordinal()) for d in uniques]


def thin_zero_targets(X: pd.DataFrame, y: np.ndarray, *, fraction: float, seed: int = 0,
                      recency_col: str = RECENCY_COLUMN, edges: Sequence[float] = RECENCY_EDGES_DAYS,
                      ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Keep every spending row and a seeded ``fraction`` of the zero-target rows, weighted to stand for all.

    Parameters
    ----------
    X : pandas.DataFrame
        Stacked training features; an ``origin`` index level (``FeatureStore.stacked``) names each
        row's cutoff (without one the frame is one origin). ``recency_col`` is required.
    y : numpy.ndarray
        The targets, one per row of ``X``.
    fraction : float
        Share of each stratum's zero-target rows to keep, in (0, 1]; 1 returns the inputs unchanged.
    seed : int
        Seed of the draw (with each origin's date, so an origin draws the same rows wherever it is stacked).

    Returns
    -------
    X_kept, y_kept, weight
        The kept rows in their original order, their targets and their sample weights (1 for a
        spending row; ``n / k`` for a zero row of a stratum with ``n`` zero rows of which ``k =
        max(1, round(fraction * n))`` are kept, so each stratum's weights sum to ``n`` exactly).
        ``weight`` is None when ``fraction`` is 1 (no thinning, an unweighted fit).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y = np.asarray(y, dtype=np.float64)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if fraction == 1.0:
        return X, y, None
    if recency_col not in X.columns:
        raise ValueError(f"thin_zero_targets needs the feature column {recency_col!r}")
    codes, days = _origin_codes(X)
    n_buckets = len(edges) + 2
    stratum = codes.astype(np.int64) * n_buckets + recency_bucket(X[recency_col].to_numpy(), edges)
    zero = y == 0
    # One uniform draw per row from a generator per origin: an origin's draw is the same in every stack.
    u = np.empty(len(y))
    for j, day in enumerate(days):
        at = codes == j
        u[at] = np.random.default_rng([seed, day]).random(int(at.sum()))
    keep = ~zero
    weight = np.ones(len(y))
    z = np.flatnonzero(zero)
    order = z[np.lexsort((u[z], stratum[z]))]  # zero rows, by stratum then draw
    s = stratum[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, len(s)])
    k = np.maximum(1, np.rint(fraction * sizes).astype(np.int64))
    rank = np.arange(len(s)) - np.repeat(starts, sizes)
    kept = rank < np.repeat(k, sizes)
    keep[order[kept]] = True
    weight[order] = np.repeat(sizes / k, sizes)
    idx = np.flatnonzero(keep)
    return X.iloc[idx], y[idx], weight[idx]


def weight_kwargs(weight: np.ndarray | None) -> dict[str, np.ndarray]:
    """Return the ``fit`` keywords of :func:`training_rows`' weights: none for an unweighted fit."""
    return {} if weight is None else {"sample_weight": weight}


def training_rows(model_key: str, X: pd.DataFrame, y: np.ndarray, *, zero_fraction: float, seed: int = 0,
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Return the rows (and sample weights) ``model_key`` is fitted on out of a stacked training set.

    The models of :data:`~spendlab.models.registry.WEIGHTED_FIT` (fitted on the pooled rows, with
    sample weights) get :func:`thin_zero_targets`; every other model (the baselines and the
    customer-base models, which read each user's own history) gets the full set and no weights.
    """
    if model_key not in WEIGHTED_FIT:
        return X, np.asarray(y, dtype=np.float64), None
    return thin_zero_targets(X, y, fraction=zero_fraction, seed=seed)
