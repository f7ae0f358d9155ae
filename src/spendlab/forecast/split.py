"""The one time split: which earlier cutoffs train a forecast made at a cutoff.

For a cutoff ``c`` the model is trained on stacked examples (features at an earlier cutoff ``c_k``,
spend in the ``horizon`` periods after ``c_k``) for the most recent ``c_k`` whose target window ends on
or before ``c``: every label is known at ``c``. Backtests, tuning and promotion share these functions.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from spendlab.calendar import Freq, period_end, shift_period, target_window_end
from spendlab.errors import SpendlabError

if TYPE_CHECKING:
    from spendlab.features.store import FeatureStore


def training_origins(cutoff: dt.date, *, freq: Freq, horizon: int, n: int | str | dt.date,
                     first_cutoff: dt.date | None = None) -> list[dt.date]:
    """Return the ``n`` latest earlier cutoffs whose target window ends on or before ``cutoff``.

    Oldest first. ``first_cutoff`` (the end of the data's first period) bounds them below;
    ``n="all"`` takes every one down to it (``first_cutoff`` is then required); ``n`` = a date takes
    every one from that date on (the first cutoff by which the population exists).
    """
    if isinstance(n, dt.date):
        first_cutoff = n if first_cutoff is None else max(first_cutoff, n)
        n = "all"
    if n == "all":
        if first_cutoff is None:
            raise SpendlabError("train_origins: all needs the data's first cutoff")
        n = 10_000  # bounded by first_cutoff below
    out = []
    for j in range(horizon, horizon + int(n)):
        c_k = period_end(shift_period(cutoff, freq, -j), freq)
        if first_cutoff is not None and c_k < first_cutoff:
            break
        assert target_window_end(c_k, freq, horizon) <= cutoff  # the label is known at the cutoff
        out.append(c_k)
    return sorted(out)


def training_set(store: FeatureStore, cutoff: dt.date,
                 n_origins: int | str | dt.date) -> tuple[pd.DataFrame, np.ndarray]:
    """Stacked (features at c_k, target after c_k) for the ``n_origins`` training origins of ``cutoff``."""
    origins = training_origins(cutoff, freq=store.freq, horizon=store.horizon, n=n_origins,
                               first_cutoff=store.first_cutoff)
    if not origins:
        raise SpendlabError(f"origin {cutoff}: no earlier origin has a known target; "
                            "move the origins later or shorten the horizon")
    return store.stacked(origins)
