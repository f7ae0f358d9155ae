"""Features and targets per cutoff on one DuckDB connection, each computed once per run."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from spendlab.calendar import Freq, period_end, target_window_end
from spendlab.errors import NoDataError, SpendlabError
from spendlab.features import FeatureConfig, build_features, build_target
from spendlab.features.config import ORIGIN_LEVEL
from spendlab.io.load import connect
from spendlab.timing import timed

if TYPE_CHECKING:
    import duckdb

    from spendlab.features import FeatureConfig
    from spendlab.io.load import Transactions


class FrameCache(Protocol):
    """Frames kept across runs, by kind (``features``, ``targets``) and cutoff (see ``spendlab.jobs.feature_cache``)."""

    def get(self, kind: str, cutoff: dt.date) -> pd.DataFrame | None:
        """Return the kept frame of ``kind`` at ``cutoff``, or ``None``."""

    def put(self, kind: str, cutoff: dt.date, frame: pd.DataFrame) -> None:
        """Keep ``frame`` as the frame of ``kind`` at ``cutoff``."""


class FeatureStore:
    """Features and targets per cutoff on one DuckDB connection, each computed once per run."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, freq: Freq, horizon: int,
                 feature_config: FeatureConfig | None = None, view: str = "transactions",
                 cache: FrameCache | None = None) -> None:
        self.con, self.freq, self.horizon, self.view = con, freq, horizon, view
        self.feature_config, self.cache = feature_config, cache
        self._lock = threading.RLock()
        self._features: dict[dt.date, pd.DataFrame] = {}
        self._targets: dict[dt.date, pd.DataFrame] = {}
        lo, hi = con.execute(f'SELECT MIN(ts), MAX(ts) FROM "{view}"').fetchall()[0]
        if lo is None:
            raise NoDataError(f"view {view!r} holds no transactions")
        self.first_day: dt.date = pd.Timestamp(lo).date()
        self.last_day: dt.date = pd.Timestamp(hi).date()

    @classmethod
    def from_source(cls, source: Transactions | duckdb.DuckDBPyConnection | FeatureStore, *, freq: Freq,
                    horizon: int, feature_config: FeatureConfig | None = None,
                    cache: FrameCache | None = None) -> FeatureStore:
        """Make a store over a ``Transactions``, a connection with a ``transactions`` view, or a store.

        A store is reused as it is; it is refused if it was built for another ``freq``/``horizon``, or
        for another feature config when ``feature_config`` is given. ``cache`` (a new store only) keeps
        frames across runs; it must be keyed by everything the frames depend on. A ``Transactions``
        is registered materialised (:meth:`~spendlab.io.load.Transactions.register`): its files are
        read once however many cutoffs the store builds.
        """
        if isinstance(source, FeatureStore):
            if (source.freq, source.horizon) != (freq, horizon):
                raise ValueError("the FeatureStore was built for another freq/horizon")

            if feature_config is not None and (source.feature_config or FeatureConfig()) != feature_config:
                raise ValueError("the FeatureStore was built with another feature config")
            return source
        import duckdb

        if not isinstance(source, duckdb.DuckDBPyConnection):  # Transactions (a connection has .register too)
            con = connect()
            # every cutoff reads the rows: a Parquet input is scanned (its orders grouped) once, here
            source.register(con, materialise=True)  # type: ignore[union-attr]
            return cls(con, freq=freq, horizon=horizon, feature_config=feature_config, cache=cache)
        return cls(source, freq=freq, horizon=horizon, feature_config=feature_config,  # type: ignore[arg-type]
                   cache=cache)

    @property
    def first_cutoff(self) -> dt.date:
        """Return the first cutoff with data: the end of the first day's period."""
        return period_end(self.first_day, self.freq)

    def features(self, cutoff: dt.date) -> pd.DataFrame:
        """Return the features at ``cutoff``, computed once and cached (one query at a time)."""
        with self._lock:  # one DuckDB query at a time: backtests may share the store across threads
            if cutoff not in self._features:
                self._features[cutoff] = self._cached("features", cutoff, lambda: build_features(
                    self.con, freq=self.freq, as_of=cutoff, config=self.feature_config, view=self.view,
                    horizon=self.horizon))
            return self._features[cutoff]

    def _cached(self, kind: str, cutoff: dt.date, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """Return ``build()``'s frame, from the cache when it holds one (then into it when it did not)."""
        frame = self.cache.get(kind, cutoff) if self.cache is not None else None
        if frame is None:
            with timed(kind, "", cutoff):
                frame = build()
            if self.cache is not None:
                self.cache.put(kind, cutoff, frame)
        return frame

    def target(self, cutoff: dt.date) -> np.ndarray:
        """Target aligned row for row with :meth:`features` (READS PAST ``cutoff``)."""
        with self._lock:
            if cutoff not in self._targets:
                self._targets[cutoff] = self._cached("targets", cutoff, lambda: build_target(
                    self.con, freq=self.freq, as_of=cutoff, horizon=self.horizon, view=self.view))
        feats, tgt = self.features(cutoff), self._targets[cutoff]
        if not feats["user_id"].equals(tgt["user_id"]):
            aligned = feats[["user_id"]].merge(tgt, on="user_id", how="left")
            return aligned["target"].fillna(0.0).to_numpy(dtype=np.float64)
        return tgt["target"].to_numpy(dtype=np.float64)

    def check_cutoff(self, cutoff: dt.date) -> None:
        """Check that the cutoff's target window lies inside the data."""
        end = target_window_end(cutoff, self.freq, self.horizon)
        if end > self.last_day:
            raise SpendlabError(f"origin {cutoff}: its target window ends {end}, after the data ends "
                                f"({self.last_day}); drop the origin or use more data")
        if cutoff < self.first_cutoff:
            raise SpendlabError(f"origin {cutoff} is before the data's first period ends ({self.first_cutoff})")

    def stacked(self, cutoffs: list[dt.date]) -> tuple[pd.DataFrame, np.ndarray]:
        """Stacked (features at c_k, target after c_k) for the given cutoffs, oldest first.

        Which cutoffs may train a forecast is :func:`spendlab.forecast.split.training_set`'s call.
        The rows are indexed by (``origin``, ``row``): the cutoff each row's features were taken at and
        its position there. The index is not a feature; a model that must tell the origins apart
        (``bgnbd_gg`` fits on the latest cross-section only) reads its ``origin`` level.
        """
        frames = [self.features(c) for c in cutoffs]
        X = pd.concat(frames, ignore_index=True)
        sizes = [len(f) for f in frames]
        X.index = pd.MultiIndex.from_arrays(
            [np.repeat(pd.to_datetime(list(cutoffs)), sizes), np.concatenate([np.arange(n) for n in sizes])],
            names=[ORIGIN_LEVEL, "row"])
        y = np.concatenate([self.target(c) for c in cutoffs])
        return X, y
