"""The feature-set declaration: what ``configs/features.yaml`` may say, and the column names it derives.

Features are declared as data (lags per panel column, rolling statistics per column and window, trend
and weekly-activity windows); every output column name is derived from the declaration, the way
mlforecast names its lag transforms (``spend_rolling_mean_lag1_window3``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator, model_validator

from spendlab.calendar import CalendarConfig, Freq, check_freq
from spendlab.config import ReaderConfig, StrictModel, UserTableSpec, parse_config
from spendlab.errors import ConfigError
from spendlab.io.attributes import declared_attributes

if TYPE_CHECKING:
    import pandas as pd

#: Panel columns that lags and rolling statistics may be declared on (all are >= 0 by construction).
PANEL_COLUMNS: tuple[str, ...] = ("spend", "n_transactions", "active_days", "refund_amount")
RollingStat = Literal["mean", "std", "max"]
PanelColumn = Literal["spend", "n_transactions", "active_days", "refund_amount"]

#: Periods in a year per frequency: ``spend_same_period_last_year`` looks this far back from the target.
PERIODS_PER_YEAR: dict[str, int] = {"month": 12, "week": 52}

CALENDAR_COLUMNS: tuple[str, ...] = ("n_holidays", "n_retail_events", "weekend_days", "days_in_period")

#: Index level of stacked training rows (``FeatureStore.stacked``): the cutoff a row's features were taken at.
ORIGIN_LEVEL = "origin"


def at_origin(X: pd.DataFrame, cutoff: dt.date | str) -> pd.DataFrame:
    """Index ``X`` (the features at one cutoff) by (``origin``, ``row``) like stacked training rows.

    A model that needs the forecast's date (``bgnbd_seasonal``) can then read it; the index is never a
    feature.
    """
    import numpy as np
    import pandas as pd

    out = X.copy(deep=False)
    n = len(X)
    if n == 0:
        out.index = pd.MultiIndex.from_arrays([np.repeat(pd.Timestamp(cutoff), 0), np.arange(0)],
                                              names=[ORIGIN_LEVEL, "row"])
        return out
    # the levels from_arrays would find (one origin; rows 0..n-1), without factorizing n Timestamps
    origin = pd.MultiIndex.from_arrays([[pd.Timestamp(cutoff)], [0]]).levels[0]
    out.index = pd.MultiIndex(levels=[origin, pd.Index(np.arange(n))], codes=[np.zeros(n, dtype=np.intp), np.arange(n)],
                              names=[ORIGIN_LEVEL, "row"], verify_integrity=False)
    return out


def lag_name(column: str, lag: int) -> str:
    """``spend_lag1``: the column's value ``lag`` periods back (lag 1 = the as-of period)."""
    return f"{column}_lag{lag}"


#: Column names every feature set has (the models read them by these names, never retyped).
SAME_PERIOD_LAST_YEAR = "spend_same_period_last_year"
HAS_LAST_YEAR = "has_last_year"


def rolling_name(column: str, stat: str, window: int) -> str:
    """``spend_rolling_mean_lag1_window3``: the statistic over the ``window`` periods ending at lag 1."""
    return f"{column}_rolling_{stat}_lag1_window{window}"


def expanding_name(column: str) -> str:
    """``spend_expanding_mean_lag1``: the mean over every period of the user's history up to lag 1."""
    return f"{column}_expanding_mean_lag1"


def ewm_name(column: str, alpha: float) -> str:
    """``spend_ewm_mean_lag1_alpha50``: the exponentially weighted mean, smoothing ``alpha`` in percent."""
    return f"{column}_ewm_mean_lag1_alpha{round(alpha * 100)}"


def _positive_sorted(values: tuple[int, ...], what: str) -> tuple[int, ...]:
    if any(v < 1 for v in values):
        raise ValueError(f"{what} must be positive integers, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} has duplicates: {list(values)}")
    return tuple(sorted(values))


class RollingSpec(StrictModel):
    """Rolling statistics of one panel column over the last ``w`` periods (the as-of period included)."""

    column: PanelColumn = "spend"
    stats: tuple[RollingStat, ...] = ("mean", "std", "max")
    windows: tuple[int, ...] = (3, 6, 12)

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _positive_sorted(v, "rolling windows")

    @field_validator("stats")
    @classmethod
    def _stats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"rolling stats has duplicates: {list(v)}")
        return v


class FreqFeatures(StrictModel):
    """The features of one frequency (``month`` or ``week``)."""

    lags: dict[PanelColumn, int] = {"spend": 12}
    rolling: tuple[RollingSpec, ...] = (RollingSpec(),)
    trend_windows: tuple[int, ...] = (6, 12)
    #: ``spend_expanding_mean_lag1``: mean spend per period over the user's whole history (mlforecast's
    #: ExpandingMean). Off by default: measured on validation only (docs/features.md).
    expanding_mean: bool = False
    #: Exponentially weighted means of spend (mlforecast's ExponentiallyWeightedMean), one per smoothing
    #: factor, over the user's last ``ewm_window`` periods (weights renormalised, pandas' ``adjust=True``).
    ewm_alphas: tuple[float, ...] = ()
    ewm_window: int = 12

    @field_validator("ewm_alphas")
    @classmethod
    def _alphas(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < a < 1.0 for a in v):
            raise ValueError(f"ewm_alphas must lie strictly between 0 and 1, got {list(v)}")
        if len({round(a * 100) for a in v}) != len(v):
            raise ValueError(f"ewm_alphas must differ in whole percent (they name the columns), got {list(v)}")
        return tuple(v)

    @field_validator("ewm_window")
    @classmethod
    def _ewm_window(cls, v: int) -> int:
        if v < 1:
            raise ValueError("ewm_window must be at least 1")
        return v

    @field_validator("lags")
    @classmethod
    def _lags(cls, v: dict[str, int]) -> dict[str, int]:
        if "spend" not in v:
            raise ValueError("lags must declare spend (the models read spend_lag1..)")
        if any(k < 1 for k in v.values()):
            raise ValueError(f"lag counts must be >= 1, got {v}")
        return v

    @field_validator("trend_windows")
    @classmethod
    def _trend(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        v = _positive_sorted(v, "trend windows")
        if any(w < 2 for w in v):
            raise ValueError(f"trend windows need at least 2 periods, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _distinct_rolling(self) -> FreqFeatures:
        names = [rolling_name(r.column, s, w) for r in self.rolling for s in r.stats for w in r.windows]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rolling features declared twice: {dupes}")
        return self


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")


def _names(values: Any, what: str) -> Any:
    for name in values:
        if not _NAME.match(name):
            raise ValueError(f"{what} {name!r} must be lower-case letters, digits and _ (an attribute name)")
    return values


class CovariateConfig(StrictModel):
    """Context covariates from line attributes and the user table (:mod:`spendlab.features.covariates`).

    Over the last ``window`` periods (the as-of period included), per user: the spend share of each of
    the ``k`` categories with the most spend (``category_share: {department: 5}``; ranked over every
    user's spend in the window), the share of an amount attribute in spend (``amount_share``: a
    discount's absolute value over spend), the share of purchases where it is non-zero (``use_rate``:
    coupon use), the number of distinct values of a category (``distinct``); and the user-table columns
    (``user_attributes``) encoded as of the cutoff. ``user_levels`` fixes a category column's levels
    (default: every level the table holds).
    """

    window: int = 6
    category_share: dict[str, int] = {}
    amount_share: tuple[str, ...] = ()
    use_rate: tuple[str, ...] = ()
    distinct: tuple[str, ...] = ()
    user_attributes: tuple[str, ...] = ()
    user_levels: dict[str, tuple[str, ...]] = {}

    @field_validator("window")
    @classmethod
    def _window(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"window must be >= 1 period, got {v}")
        return v

    @field_validator("category_share")
    @classmethod
    def _top_k(cls, v: dict[str, int]) -> dict[str, int]:
        if any(k < 1 for k in v.values()):
            raise ValueError(f"top-k counts must be >= 1, got {v}")
        return _names(v, "attribute")

    @field_validator("amount_share", "use_rate", "distinct", "user_attributes")
    @classmethod
    def _attribute_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicates in {list(v)}")
        return _names(v, "attribute")

    @model_validator(mode="after")
    def _levels_declared(self) -> CovariateConfig:
        extra = sorted(set(self.user_levels) - set(self.user_attributes))
        if extra:
            raise ValueError(f"user_levels for {extra}, which are not in user_attributes")
        return self

    def attributes(self) -> set[str]:
        """Return the line attributes the covariates read."""
        return {*self.category_share, *self.amount_share, *self.use_rate, *self.distinct}

    def undeclared(self, line: Mapping[str, str], users: Iterable[str] | None) -> list[str]:
        """Return what the covariates read that the configs do not declare, one problem a string (empty: none).

        ``line`` maps each declared line attribute to its type (``category`` or ``amount``; a lookup's
        columns are categories); ``users`` names the user table's columns, None without a table. Checked
        when a job resolves its configs, before any data is read: the same mistakes otherwise surface
        after the load, or as a database error on the wrong type.
        """
        problems = []
        wanted = {**{a: "category" for a in (*self.category_share, *self.distinct)},
                  **{a: "amount" for a in (*self.amount_share, *self.use_rate)}}
        missing = sorted(a for a in wanted if a not in line)
        if missing:
            problems.append(f"covariates read line attribute(s) {missing} that reader.generic does not declare "
                            f"(declared: {sorted(line) or 'none'}; declare them in reader.generic.attributes "
                            "or a lookup's columns)")
        wrong = sorted(f"{a} ({line[a]}; {t} wanted)" for a, t in wanted.items() if a in line and line[a] != t)
        if wrong:
            problems.append(f"covariates read attribute(s) of the wrong type: {', '.join(wrong)} (category_share "
                            "and distinct read categories; amount_share and use_rate read amounts)")
        if self.user_attributes and users is None:
            problems.append(f"covariates.user_attributes {list(self.user_attributes)} need a user table "
                            "(dataset.users or users:), and there is none")
        elif self.user_attributes:
            have = set(users)  # type: ignore[arg-type]
            lacking = [a for a in self.user_attributes if a not in have]
            if lacking:
                problems.append(f"covariates.user_attributes {lacking} are not columns of the user table "
                                f"(its columns: {sorted(have)})")
        return problems


class FeatureConfig(StrictModel):
    """The ``features:`` section of a config file (see ``configs/features.yaml``)."""

    calendar: CalendarConfig = CalendarConfig()
    weekly_activity_windows: tuple[int, ...] = (4, 13)
    month: FreqFeatures = FreqFeatures(
        lags={"spend": 12, "n_transactions": 3, "active_days": 3},
        rolling=(RollingSpec(column="spend", stats=("mean", "std", "max"), windows=(3, 6, 12)),),
        trend_windows=(6, 12),
    )
    week: FreqFeatures = FreqFeatures(
        lags={"spend": 13, "n_transactions": 4, "active_days": 4},
        rolling=(RollingSpec(column="spend", stats=("mean", "std", "max"), windows=(4, 13, 26)),),
        trend_windows=(13, 26),
    )

    #: Append the BTYD statistics in days (:mod:`spendlab.features.btyd`) to every DuckDB feature build.
    #: Off by default: mixed on CDNOW validation (docs/features.md). DuckDB only: the Spark
    #: engine refuses a feature set that asks for them.
    btyd: bool = False

    #: Context covariates (line attributes, the user table), appended after the other columns; none by
    #: default. The BTYD models read their own columns only; the learned models use every column.
    covariates: CovariateConfig | None = None

    @field_validator("weekly_activity_windows")
    @classmethod
    def _weekly(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _positive_sorted(v, "weekly_activity_windows")

    def for_freq(self, freq: Freq) -> FreqFeatures:
        """Return the per-frequency declaration."""
        return self.month if check_freq(freq) == "month" else self.week


def feature_config_from_dict(data: dict, source: str) -> FeatureConfig:
    """Build a feature config from a parsed YAML mapping.

    Either a whole spendlab config with a ``features:`` section (beside ``reader:`` and others; without
    one, the defaults apply) or just the section's content (recognised by its keys, then validated
    strictly). ``source`` names the file in errors.
    """
    if set(data) & set(FeatureConfig.model_fields):
        return parse_config(FeatureConfig, data, source)
    return parse_config(FeatureConfig, data.get("features") or {}, f"{source} (features)")


def check_covariates(features: FeatureConfig, reader: ReaderConfig, *, fmt: str, users: UserTableSpec | None,
                     where: str) -> None:
    """Check that what the feature set's covariates read is declared, before any data is read.

    The line attributes must be declared in ``reader.generic`` (the other formats carry none) with the
    type each covariate reads, and the user attributes must be columns of the user table.

    Raises
    ------
    ConfigError
        Naming ``where`` (the config file) and every problem found.
    """
    if features.covariates is None:
        return
    line = {name: spec.type for name, spec in declared_attributes(reader.generic).items()} if fmt == "generic" else {}
    problems = features.covariates.undeclared(line, None if users is None else users.columns)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
