"""Every as-of feature as array arithmetic over the compact aggregates: one definition for every engine.

The engines (DuckDB in :mod:`spendlab.features.build`, Spark in :mod:`spendlab.spark.features`) reduce
the rows to one row of sums per user (:func:`~spendlab.features.sql.user_stats_sql`) and the user's
recent active periods (:func:`~spendlab.features.sql.window_cells_sql`); the :data:`FAMILIES` here
turn those into the features. Fill policy: a window longer than the user's history averages the
periods the user has; ratios with a zero denominator are 0. Why: ``docs/features.md``.
"""
# long: each feature column's declared inputs (Needs) sit beside its arithmetic, so a pruned build reads what the formula reads

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from spendlab.calendar import Freq, check_freq, period_end
from spendlab.features.btyd import BTYD_COLUMNS
from spendlab.features.config import (
    CALENDAR_COLUMNS,
    HAS_LAST_YEAR,
    PERIODS_PER_YEAR,
    SAME_PERIOD_LAST_YEAR,
    FeatureConfig,
    ewm_name,
    expanding_name,
    lag_name,
    rolling_name,
)

#: Users per block for the rolling statistics' temporaries (bounds memory, not results).
BLOCK = 1 << 17
_EPOCH = dt.date(1970, 1, 1)


def window_widths(config: FeatureConfig, freq: Freq) -> dict[str, int]:
    """Return the panel columns the windowed features read, each with the number of recent periods needed.

    What some features only read: :func:`feature_needs`.
    """
    spec = config.for_freq(freq)
    widths: dict[str, int] = {}
    for column, n in spec.lags.items():
        widths[column] = max(widths.get(column, 0), n)
    for r in spec.rolling:
        widths[r.column] = max(widths.get(r.column, 0), max(r.windows))
    if spec.trend_windows:
        widths["spend"] = max(widths.get("spend", 0), max(spec.trend_windows))
    if spec.ewm_alphas:
        widths["spend"] = max(widths.get("spend", 0), spec.ewm_window)
    return widths


def window_matrix(n_users: int, idx: np.ndarray, k: np.ndarray, values: np.ndarray, width: int) -> np.ndarray:
    """Return the ``n_users x width`` matrix with ``values`` at (``idx``, ``k``) for ``k < width``, else 0.

    (``idx``, ``k``) pairs are distinct: one aggregate row per user and period.
    """
    matrix = np.zeros((n_users, max(width, 1)), dtype=np.float64)
    keep = k < width
    matrix[idx[keep], k[keep]] = values[keep]
    return matrix


def _rolling(matrix: np.ndarray, n_periods: np.ndarray, w: int, stat: str) -> np.ndarray:
    """One rolling statistic over the ``w`` most recent periods (only those the user has)."""
    x = matrix[:, :w]
    if stat == "max":  # inactive periods are 0 and values are >= 0: zero-fill changes nothing
        return x.max(axis=1)
    n_w = np.minimum(w, n_periods)
    total = x.sum(axis=1)
    if stat == "mean":
        return total / n_w
    out = np.empty(len(x))
    steps = np.arange(x.shape[1])
    for lo in range(0, len(x), BLOCK):  # two-pass variance, in blocks of users
        hi = lo + BLOCK
        mean = total[lo:hi] / n_w[lo:hi]
        dev = np.where(steps < n_w[lo:hi, None], x[lo:hi] - mean[:, None], 0.0)
        out[lo:hi] = np.sqrt(np.einsum("ij,ij->i", dev, dev) / n_w[lo:hi])
    return out


def _trend(spend: np.ndarray, n_periods: np.ndarray, w: int) -> np.ndarray:
    """OLS slope of spend on t = -k over the user's last min(w, n_periods) periods; 0 below 2 periods.

    With t = 0, -1, .., -(n-1): slope = 12 ((n-1)/2 sum x - sum k x) / (n (n^2 - 1)).
    """
    x = spend[:, :w]
    n = np.minimum(w, n_periods)
    num = (n - 1) / 2 * x.sum(axis=1) - x @ np.arange(x.shape[1], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = 12 * num / (n * (n * n - 1))
    return np.where(n < 2, 0.0, slope)


def _ewm(matrix: np.ndarray, n_periods: np.ndarray, w: int, alpha: float) -> np.ndarray:
    """Return the exponentially weighted mean over the user's last min(w, n_periods) periods.

    Lag 1 is weighted 1, lag j+1 weighted (1 - alpha)^j, weights renormalised (pandas ``ewm(alpha, adjust=True)``).
    """
    x = matrix[:, :w]
    weights = (1.0 - alpha) ** np.arange(x.shape[1], dtype=np.float64)
    out = np.empty(len(x))
    for lo in range(0, len(x), BLOCK):
        hi = lo + BLOCK
        mine = np.where(np.arange(x.shape[1]) < np.minimum(w, n_periods[lo:hi])[:, None], weights, 0.0)
        out[lo:hi] = _ratio(np.einsum("ij,ij->i", x[lo:hi], mine), mine.sum(axis=1))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide ``num`` by ``den``, with 0 where ``den`` is 0."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 0.0)


@dataclass(frozen=True)
class FeatureInputs:
    """What a feature family computes from: one entry per user, all in the output's user order.

    Attributes
    ----------
    stats
        The columns of :func:`~spendlab.features.sql.user_stats_sql` (float64 sums, int day numbers
        since 1970-01-01).
    windows
        Per panel column of :func:`window_widths`: its :func:`window_matrix` (``k`` = 0 is the as-of period).
    n_periods
        The periods each user has existed by the cutoff (float64).
    as_of, freq, config
        The cutoff, the frequency and the feature declaration.
    calendar
        The ``asof_*`` / ``target_*`` covariates (:func:`~spendlab.features.sql.calendar_tables`).
    columns
        The features wanted (``None``: all). A family that declares its inputs computes only these,
        and ``stats`` and ``windows`` then hold only what they read (:func:`feature_needs`).
    """

    stats: Mapping[str, np.ndarray]
    windows: Mapping[str, np.ndarray]
    n_periods: np.ndarray
    as_of: dt.date
    freq: Freq
    config: FeatureConfig
    calendar: Mapping[str, float]
    columns: frozenset[str] | None = None

    def wants(self, name: str) -> bool:
        """Whether feature ``name`` is to be computed."""
        return self.columns is None or name in self.columns


@dataclass(frozen=True)
class Needs:
    """What one feature reads.

    Per-user stats (:func:`~spendlab.features.sql.user_stats_sql` columns) and recent periods of panel
    columns (``{column: periods}``). ``n_periods`` is always available.
    """

    stats: tuple[str, ...] = ()
    windows: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureFamily:
    """A group of features: the column names it declares and the function that computes them.

    ``columns(config, freq)`` names the columns in output order; ``compute(inputs)`` returns exactly
    those columns, one float per user, from :class:`FeatureInputs` only (so every engine computes it
    the same way, and nothing after the cutoff can reach it). ``inputs(config, freq)``, optional,
    declares what each column reads (:class:`Needs`); a family that declares it computes only the
    wanted columns (``inputs.columns``) from only what they read, so a build for a few columns
    aggregates only what those need (:func:`feature_needs`). A family without it reads everything
    whenever one of its columns is wanted.
    """

    columns: Callable[[FeatureConfig, Freq], list[str]]
    compute: Callable[[FeatureInputs], Mapping[str, np.ndarray]]
    inputs: Callable[[FeatureConfig, Freq], Mapping[str, Needs]] | None = None


def _window_inputs(config: FeatureConfig, freq: Freq) -> dict[str, Needs]:
    """Return what each window feature reads, in column order: lags, rolling, trend, expanding and ewm means."""
    spec = config.for_freq(freq)
    out = {lag_name(column, i): Needs(windows={column: i}) for column, k in spec.lags.items() for i in range(1, k + 1)}
    out.update({rolling_name(r.column, s, w): Needs(windows={r.column: w})
                for r in spec.rolling for s in r.stats for w in r.windows})
    out.update({f"trend_slope_window{w}": Needs(windows={"spend": w}) for w in spec.trend_windows})
    if spec.expanding_mean:
        out[expanding_name("spend")] = Needs(stats=("spend_total",))
    out.update({ewm_name("spend", a): Needs(windows={"spend": spec.ewm_window}) for a in spec.ewm_alphas})
    return out


def _window_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Compute lags, rolling statistics, trend slopes and the expanding and exponentially weighted means."""
    windows, n, spec = x.windows, x.n_periods, x.config.for_freq(x.freq)
    out: dict[str, np.ndarray] = {}
    for column, lags in spec.lags.items():
        for i in range(1, lags + 1):
            if x.wants(name := lag_name(column, i)):
                matrix = windows[column]
                out[name] = matrix[:, i - 1].copy() if i <= matrix.shape[1] else np.zeros(len(n))
    for r in spec.rolling:
        for stat in r.stats:
            for w in r.windows:
                if x.wants(name := rolling_name(r.column, stat, w)):
                    out[name] = _rolling(windows[r.column], n, w, stat)
    for w in spec.trend_windows:
        if x.wants(name := f"trend_slope_window{w}"):
            out[name] = _trend(windows["spend"], n, w)
    if spec.expanding_mean and x.wants(expanding_name("spend")):
        out[expanding_name("spend")] = _ratio(x.stats["spend_total"], n)
    for a in spec.ewm_alphas:
        if x.wants(name := ewm_name("spend", a)):
            out[name] = _ewm(windows["spend"], n, spec.ewm_window, a)
    return out


def _user_definitions(config: FeatureConfig, freq: Freq) -> dict[str, tuple[Needs, Callable[[FeatureInputs], np.ndarray]]]:
    """Totals, ratios, days and the BTYD summary, in column order: what each reads and its arithmetic."""

    def stat(name: str) -> tuple[Needs, Callable[[FeatureInputs], np.ndarray]]:
        return Needs(stats=(name,)), lambda x: x.stats[name]

    def days(x: FeatureInputs, name: str) -> np.ndarray:
        return np.asarray(x.stats[name], dtype=np.int64)

    def as_of_day(x: FeatureInputs) -> int:
        return (x.as_of - _EPOCH).days

    def week_end(x: FeatureInputs) -> int:
        return (period_end(x.as_of, "week") - _EPOCH).days

    def per_week(w: int) -> tuple[Needs, Callable[[FeatureInputs], np.ndarray]]:
        def compute(x: FeatureInputs) -> np.ndarray:
            weeks_available = (week_end(x) - days(x, "first_day")) // 7 + 1
            return x.stats[f"purchase_days_last{w}w"] / np.minimum(w, weeks_available)
        return Needs(stats=(f"purchase_days_last{w}w", "first_day")), compute

    def monetary(x: FeatureInputs) -> np.ndarray:
        purchase_days = x.stats["purchase_days"]
        repeat = purchase_days > 1
        return np.where(repeat, (x.stats["spend_total"] - x.stats["first_purchase_day_spend"])
                        / np.where(repeat, purchase_days - 1, 1.0), 0.0)

    out: dict[str, tuple[Needs, Callable[[FeatureInputs], np.ndarray]]] = {
        SAME_PERIOD_LAST_YEAR: stat("spend_same_period_last_year"),
        HAS_LAST_YEAR: (Needs(), lambda x: (x.n_periods >= PERIODS_PER_YEAR[x.freq]).astype(np.float64)),
        "spend_total": stat("spend_total"),
        "n_transactions_total": stat("n_transactions_total"),
        "mean_basket": (Needs(stats=("spend_total", "n_transactions_total")),
                        lambda x: _ratio(x.stats["spend_total"], x.stats["n_transactions_total"])),
        "n_active_periods": stat("n_active_periods"),
        "n_periods": (Needs(), lambda x: x.n_periods),
        "days_since_last_purchase": (Needs(stats=("last_seen_day",)),
                                     lambda x: (as_of_day(x) - days(x, "last_seen_day")).astype(np.float64)),
        "tenure_days": (Needs(stats=("first_day",)), lambda x: (as_of_day(x) - days(x, "first_day")).astype(np.float64)),
    }
    out.update({f"active_days_per_week_mean_last{w}": per_week(w) for w in config.weekly_activity_windows})
    out.update({
        "weeks_since_last_purchase": (Needs(stats=("last_seen_day",)),
                                      lambda x: ((week_end(x) - days(x, "last_seen_day")) // 7).astype(np.float64)),
        "holiday_spend_share": (Needs(stats=("event_spend", "spend_total")),
                                lambda x: _ratio(x.stats["event_spend"], x.stats["spend_total"])),
        "refund_amount_total": stat("refund_amount_total"),
        "refund_count_total": stat("refund_count_total"),
        "bgnbd_frequency": (Needs(stats=("purchase_days",)), lambda x: np.maximum(x.stats["purchase_days"] - 1, 0.0)),
        "bgnbd_recency_days": (Needs(stats=("recency_days",)),
                               lambda x: np.asarray(x.stats["recency_days"], dtype=np.float64)),
        "bgnbd_T_days": (Needs(stats=("first_seen_day",)),
                         lambda x: (as_of_day(x) - days(x, "first_seen_day")).astype(np.float64)),
        "bgnbd_monetary": (Needs(stats=("spend_total", "first_purchase_day_spend", "purchase_days")), monetary),
    })
    return out


def _user_inputs(config: FeatureConfig, freq: Freq) -> dict[str, Needs]:
    return {name: needs for name, (needs, _) in _user_definitions(config, freq).items()}


def _user_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Totals, ratios, days and the BTYD summary: arithmetic on the per-user sums."""
    return {name: compute(x) for name, (_, compute) in _user_definitions(x.config, x.freq).items() if x.wants(name)}


def _window_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    spec = config.for_freq(freq)
    cols = [lag_name(column, i) for column, k in spec.lags.items() for i in range(1, k + 1)]
    cols += [rolling_name(r.column, s, w) for r in spec.rolling for s in r.stats for w in r.windows]
    cols += [f"trend_slope_window{w}" for w in spec.trend_windows]
    cols += [expanding_name("spend")] if spec.expanding_mean else []
    return cols + [ewm_name("spend", a) for a in spec.ewm_alphas]


def _user_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    return list(_user_definitions(config, freq))


def _calendar_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    return [f"{when}_{c}" for when in ("asof", "target") for c in CALENDAR_COLUMNS]


def _calendar_inputs(config: FeatureConfig, freq: Freq) -> dict[str, Needs]:
    return {name: Needs() for name in _calendar_columns(config, freq)}


def _calendar_features(x: FeatureInputs) -> dict[str, np.ndarray]:
    """Broadcast the as-of and target periods' calendar covariates to every user."""
    n = len(x.n_periods)
    return {name: np.full(n, float(x.calendar[name])) for name in _calendar_columns(x.config, x.freq) if x.wants(name)}


#: The feature families, in column order: adding a family is one entry here (its columns and their
#: computation); :func:`feature_columns` and :func:`compute_features` read nothing else. The BTYD
#: statistics (``FeatureConfig.btyd``) come after them, from their own DuckDB query.
FAMILIES: dict[str, FeatureFamily] = {
    "windows": FeatureFamily(_window_columns, _window_features, _window_inputs),
    "user": FeatureFamily(_user_columns, _user_features, _user_inputs),
    "calendar": FeatureFamily(_calendar_columns, _calendar_features, _calendar_inputs),
}

#: Every column :func:`~spendlab.features.sql.user_stats_sql` gives (``n_periods`` first): what a family
#: that does not declare its inputs gets.
USER_STATS: tuple[str, ...] = (
    "n_periods", "n_transactions_total", "purchase_days", "n_active_periods", "refund_count_total",
    "spend_total", "refund_amount_total", "event_spend", "spend_same_period_last_year",
    "first_purchase_day_spend", "first_day", "first_seen_day", "last_seen_day", "recency_days",
)


@dataclass(frozen=True)
class FeatureNeeds:
    """What a build of some features must aggregate (:func:`feature_needs`).

    ``stats``: the per-user stats (:func:`~spendlab.features.sql.user_stats_sql` columns, ``n_periods``
    always, ``purchase_days_last{w}w`` included); ``widths``: the panel columns windowed, each with its
    recent periods (:func:`window_widths`); ``columns``: the family features wanted, in output order.
    """

    stats: frozenset[str]
    widths: dict[str, int]
    columns: tuple[str, ...]


def feature_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    """Return every feature column :func:`spendlab.features.build_features` returns, in order (``user_id`` first)."""
    check_freq(freq)
    cols = ["user_id"] + [c for family in FAMILIES.values() for c in family.columns(config, freq)]
    return cols + (list(BTYD_COLUMNS) if config.btyd else [])


def feature_needs(config: FeatureConfig, freq: Freq, columns: Collection[str] | None = None) -> FeatureNeeds:
    """Return the stats and windows the family features among ``columns`` read (default: every feature).

    Derived from the families' declared inputs (:attr:`FeatureFamily.inputs`): a build for a few
    columns aggregates only these (names other than family features, such as BTYD or covariate
    columns, are ignored here). A family that declares no inputs needs everything when any of its
    columns is wanted.
    """
    check_freq(freq)
    wanted = None if columns is None else set(columns)
    stats: set[str] = {"n_periods"}
    widths: dict[str, int] = {}
    names: list[str] = []
    full_widths = window_widths(config, freq)
    everything = Needs(stats=(*USER_STATS, *(f"purchase_days_last{w}w" for w in config.weekly_activity_windows)),
                       windows=full_widths)
    for family in FAMILIES.values():
        declared = family.inputs(config, freq) if family.inputs is not None else None
        for name in family.columns(config, freq):
            if wanted is not None and name not in wanted:
                continue
            names.append(name)
            needs = declared[name] if declared is not None else everything
            stats.update(needs.stats)
            for column, w in needs.windows.items():
                widths[column] = max(widths.get(column, 0), w)
    # in the full build's column order, so a build of every column is the full build
    return FeatureNeeds(frozenset(stats), {c: widths[c] for c in full_widths if c in widths}, tuple(names))


def whole_rows_columns(config: FeatureConfig, freq: Freq) -> list[str]:
    """Return the features whose values depend on how many users are computed together.

    The trend slopes' matrix-vector product goes to BLAS, whose kernels take rows in blocks (and
    threads in ranges), so a user's last bit can depend on where the rows start and end: computed
    over a part of the users, a slope can differ from the whole build's. Every other feature is
    NumPy arithmetic row by row and equals the whole build's on any part of the rows.
    """
    return [f"trend_slope_window{w}" for w in config.for_freq(check_freq(freq)).trend_windows]


def compute_features(stats: Mapping[str, np.ndarray], windows: Mapping[str, np.ndarray], *, as_of: dt.date,
                     freq: Freq, config: FeatureConfig, calendar: Mapping[str, float],
                     columns: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Compute every feature of :func:`feature_columns` (``user_id`` aside), float64, family by family.

    Parameters
    ----------
    stats
        The columns of :func:`~spendlab.features.sql.user_stats_sql`, one entry per user (float64
        sums, int day numbers since 1970-01-01), all in the output's user order.
    windows
        Per panel column of :func:`window_widths`: its :func:`window_matrix` (rows in the same order).
    calendar
        The ``asof_*`` / ``target_*`` covariates (:func:`~spendlab.features.sql.calendar_tables`).
    columns
        Compute only these features (default: all), in the same order; ``stats`` and ``windows`` need
        hold only what they read (:func:`feature_needs`). Each value equals the full build's.
    """
    check_freq(freq)
    wanted = None if columns is None else frozenset(columns)
    x = FeatureInputs(stats, windows, np.asarray(stats["n_periods"], dtype=np.float64), as_of, freq, config, calendar,
                      wanted)
    out: dict[str, np.ndarray] = {}
    for key, family in FAMILIES.items():
        declared = family.columns(config, freq)
        if wanted is not None and wanted.isdisjoint(declared):
            continue
        values = family.compute(x)
        if family.inputs is None and wanted is not None:  # computes all its columns; keep the wanted
            values = {n: v for n, v in values.items() if n in wanted or n not in declared}
        expect = declared if wanted is None else [c for c in declared if c in wanted]
        if sorted(values) != sorted(expect):  # the declaration and the definitions must agree
            raise AssertionError(f"feature family {key!r} defined {sorted(set(values) ^ set(expect))} "
                                 "differently from its declared columns")
        out.update(values)
    names = [c for c in feature_columns(config, freq)[1:] if c not in BTYD_COLUMNS]  # joined after: build.py
    return {name: np.asarray(out[name], dtype=np.float64) for name in names if wanted is None or name in wanted}
