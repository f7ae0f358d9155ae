"""The feature build's array arithmetic, in two halves of the users on two threads.

:func:`arithmetic` turns the per-user stats and the fetched window cells into the feature columns
(:func:`~spendlab.features.arrays.window_matrix`, :func:`~spendlab.features.arrays.compute_features`).
From :data:`PARALLEL_MIN_USERS` users and with two usable cores it fills the matrices and computes
the features in two halves of the users, each on its own thread: NumPy releases the GIL on large
arrays, and every feature is computed row by row, so each half gives the values the whole would,
bit for bit (the Spark build computes per bucket of users too). The exception is
:func:`~spendlab.features.arrays.whole_rows_columns` (a BLAS product), computed over every row at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pyarrow as pa

from spendlab.calendar import Freq
from spendlab.features.arrays import compute_features, feature_columns, whole_rows_columns, window_matrix
from spendlab.features.config import FeatureConfig
from spendlab.settings import usable_cores
from spendlab.threads import map_in_context, submit

#: Users from which the arithmetic runs in two halves on two threads (below it, threads cost more than they save).
PARALLEL_MIN_USERS = 100_000

Rows = tuple[int, int]


def row_parts(n_users: int) -> list[Rows]:
    """Return the row ranges the arithmetic runs on: two halves from :data:`PARALLEL_MIN_USERS` users and two cores, else one."""
    parts = 2 if usable_cores() >= 2 and n_users >= PARALLEL_MIN_USERS else 1
    return [(n_users * i // parts, n_users * (i + 1) // parts) for i in range(parts)]


def arithmetic(cells: dict[str, np.ndarray] | None, stats: Mapping[str, np.ndarray], n_users: int,
               widths: dict[str, int], *, as_of: dt.date, freq: Freq, config: FeatureConfig,
               calendar: Mapping[str, float], columns: Sequence[str] | None) -> dict[str, np.ndarray | pa.ChunkedArray]:
    """Return the feature columns of the users (``stats`` rows) from their window ``cells`` (consumed).

    ``cells``: ``idx`` (the user's row), ``k`` and one array per windowed panel column (``widths``), or
    None without windows. One part of the rows: NumPy arrays; two: Arrow columns of a chunk per half.
    """
    parts = row_parts(n_users)
    kwargs = {"as_of": as_of, "freq": freq, "config": config, "calendar": calendar, "columns": columns}
    if len(parts) < 2:
        windows = {} if cells is None else windows_of(cells, n_users, widths)
        return dict(compute_features(stats, windows, **kwargs))  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="spendlab-features") as pool:
        windows = {} if cells is None else windows_of(cells, n_users, widths, parts=parts, pool=pool)
        return _features_in_parts(pool, parts, stats, windows, **kwargs)  # type: ignore[arg-type]


def windows_of(cells: dict[str, np.ndarray], n_users: int, widths: dict[str, int], *,
               parts: Sequence[Rows] = (), pool: ThreadPoolExecutor | None = None) -> dict[str, np.ndarray]:
    """Return the recent-period matrices (users x width) from the fetched window cells (consumed).

    With two or more ``parts`` (row ranges) on ``pool``, each part's rows are filled on its own thread
    (the first touch of the zeroed matrices is most of the cost); the cells are the same either way.
    """
    idx, k = cells.pop("idx"), cells.pop("k")
    if pool is None or len(parts) < 2:
        return {c: window_matrix(n_users, idx, k, cells.pop(c), w) for c, w in widths.items()}
    mine = map_in_context(pool, lambda p: (idx >= p[0]) & (idx < p[1]), parts)
    out = {}
    for c, w in widths.items():
        matrix, values = np.zeros((n_users, max(w, 1)), dtype=np.float64), cells.pop(c)

        def fill(sel: np.ndarray, matrix: np.ndarray = matrix, values: np.ndarray = values, w: int = w) -> None:
            keep = sel & (k < w)
            matrix[idx[keep], k[keep]] = values[keep]

        map_in_context(pool, fill, mine)  # raises the first part's error, if any
        out[c] = matrix
    return out


def _features_in_parts(pool: ThreadPoolExecutor, parts: Sequence[Rows], stats: Mapping[str, np.ndarray],
                       windows: Mapping[str, np.ndarray], *, config: FeatureConfig, freq: Freq,
                       columns: Sequence[str] | None, **kwargs: object) -> dict[str, np.ndarray | pa.ChunkedArray]:
    """:func:`~spendlab.features.arrays.compute_features` of each part of the rows on ``pool``, joined without a copy.

    One Arrow column per feature, a chunk per part (no concatenation), except the
    :func:`~spendlab.features.arrays.whole_rows_columns`, computed over every row at once on this thread
    (as with one part: the same bits), beside the parts. Columns in the builder's order.
    """
    wanted = [c for c in feature_columns(config, freq)[1:] if columns is None or c in columns]
    whole = [c for c in whole_rows_columns(config, freq) if c in wanted]
    rest = [c for c in wanted if c not in whole]

    def part(rows: Rows) -> dict[str, np.ndarray]:
        lo, hi = rows
        return compute_features({c: v[lo:hi] for c, v in stats.items()}, {c: m[lo:hi] for c, m in windows.items()},
                                config=config, freq=freq, columns=rest, **kwargs)  # type: ignore[arg-type]

    pending = [submit(pool, part, p) for p in parts] if rest else []
    try:
        out: dict[str, np.ndarray | pa.ChunkedArray] = dict(
            compute_features(stats, windows, config=config, freq=freq, columns=whole, **kwargs)  # type: ignore[arg-type]
            if whole else {})
    except BaseException:
        wait(pending)  # no part left running on the arrays; this thread's error is the one raised
        raise
    results = [f.result() for f in pending]  # raises the first part's error, as one thread would
    out.update({c: pa.chunked_array([r[c] for r in results]) for c in rest})
    return {c: out[c] for c in wanted if c in out}
