"""Drift before the actuals: the scored population against the reference profile of the training features.

The reference profile is logged with the model version at promotion (``reference.json``): for every
numeric feature that varies between users (a calendar count such as the target month's weekend days is
the same for everybody: its change is the calendar, not the population; nor a customer's age,
:data:`AGE_FEATURES`) its quantile bin edges (fixed at promotion, so every later period is binned alike),
the reference share in each bin and the zero share; the segment shares and the cold-start share.
A later population is compared bin by bin with the population stability index
``PSI = sum (a - e) ln(a / e)`` (shares floored at :data:`PSI_FLOOR`), segment by segment by the
change of its share. The coming period's estimate before the actuals is :mod:`spendlab.monitor.estimate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: Smallest share a bin is given in the PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4
#: Quantiles whose values are a feature's bin edges.
QUANTILES: tuple[float, ...] = tuple(round(q, 2) for q in np.linspace(0.1, 0.9, 9))
PROFILE_VERSION = 1
#: A customer's age: it grows by one period every period for everybody, so a closed cohort's PSI on it
#: measures the calendar (CDNOW: 5 after one month, 17 after three); the inflow of new customers shows
#: in the segment shares instead.
AGE_FEATURES: frozenset[str] = frozenset({"n_periods", "tenure_days", "bgnbd_T_days"})


def _bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index of each value: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")


def _shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    counts = np.bincount(_bins(values, edges), minlength=len(edges) + 1).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def reference_profile(features: pd.DataFrame, segments: np.ndarray, cold: np.ndarray) -> dict[str, Any]:
    """Profile the training population: quantile bins, zero shares, segment and cold-start shares.

    Parameters
    ----------
    features : pandas.DataFrame
        As-of features (``user_id`` and non-numeric columns are skipped).
    segments : numpy.ndarray
        Each row's segment.
    cold : numpy.ndarray
        Each row's cold-start flag.

    Returns
    -------
    dict
        JSON-ready: ``version``, ``n_users``, ``features`` (per feature ``edges``, ``shares``,
        ``quantiles``, ``zero_share``), ``segment_shares``, ``cold_start_share``.
    """
    feats: dict[str, Any] = {}
    for col in features.columns:
        if col == "user_id" or col in AGE_FEATURES or features[col].dtype.kind not in "biuf":
            continue
        v = features[col].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0 or v.min() == v.max():  # one value for everybody (a calendar count): no population
            continue
        qs = [float(x) for x in np.quantile(v, QUANTILES)]
        edges = sorted(set(qs))
        feats[col] = {"quantiles": dict(zip([f"q{int(q * 100):02d}" for q in QUANTILES], qs, strict=False)),
                      "edges": edges, "shares": [float(s) for s in _shares(v, edges)],
                      "zero_share": float(np.mean(v == 0))}
    seg = pd.Series(np.asarray(segments, dtype=str)).value_counts(normalize=True).sort_index()
    return {"version": PROFILE_VERSION, "n_users": len(features), "features": feats,
            "segment_shares": {str(k): float(v) for k, v in seg.items()},
            "cold_start_share": float(np.mean(cold)) if len(cold) else 0.0}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Return population stability index of two share vectors over the same bins.

    Parameters
    ----------
    expected, actual : numpy.ndarray
        Shares per bin (each sums to 1).

    Returns
    -------
    float
        ``sum (a - e) ln(a / e)`` with both floored at :data:`PSI_FLOOR`; 0 for equal shares.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(profile: dict[str, Any], features: pd.DataFrame | Mapping[str, np.ndarray]) -> pd.DataFrame:
    """PSI and zero-share change of every profiled feature in a new population.

    Parameters
    ----------
    profile : dict
        From :func:`reference_profile`.
    features : pandas.DataFrame or mapping of column name to array
        The new population's as-of features; a profiled feature missing here is skipped.

    Returns
    -------
    pandas.DataFrame
        ``feature, psi, zero_share_ref, zero_share``, largest PSI first.
    """
    rows = []
    frame = isinstance(features, pd.DataFrame)
    for name, spec in profile["features"].items():
        if name not in (features.columns if frame else features):
            continue
        v = features[name].to_numpy(dtype=np.float64) if frame else np.asarray(features[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        rows.append({"feature": name, "psi": psi(np.asarray(spec["shares"]), _shares(v, spec["edges"])),
                     "zero_share_ref": spec["zero_share"], "zero_share": float(np.mean(v == 0)) if len(v) else 0.0})
    out = pd.DataFrame(rows, columns=["feature", "psi", "zero_share_ref", "zero_share"])
    return out.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def segment_shift(profile: dict[str, Any], segments: np.ndarray) -> pd.DataFrame:
    """Each segment's share in the reference and now, and the change.

    Parameters
    ----------
    profile : dict
        From :func:`reference_profile`.
    segments : numpy.ndarray
        The new population's segments.

    Returns
    -------
    pandas.DataFrame
        ``segment, share_ref, share, shift`` (``share - share_ref``), one row per segment seen in either.
    """
    counts = pd.Series(np.asarray(segments, dtype=str)).value_counts()
    return segment_shift_counts(profile, {str(s): int(n) for s, n in counts.items()})


def segment_shift_counts(profile: dict[str, Any], counts: Mapping[str, int]) -> pd.DataFrame:
    """:func:`segment_shift` from each segment's count in the new population (no array of segments).

    A share is ``count / total`` in float64, as pandas' ``value_counts(normalize=True)`` divides.
    """
    total = sum(int(n) for n in counts.values())
    now = {s: float(np.float64(n) / np.float64(total)) for s, n in counts.items() if n > 0}
    ref = profile["segment_shares"]
    names = sorted(set(ref) | set(now))
    rows = [{"segment": s, "share_ref": float(ref.get(s, 0.0)), "share": float(now.get(s, 0.0))} for s in names]
    out = pd.DataFrame(rows, columns=["segment", "share_ref", "share"])
    out["shift"] = out["share"] - out["share_ref"]
    return out
