"""The covariates of :func:`~spendlab.features.covariates.covariates_sql` in one scan of the window (DuckDB).

When every category has at most :data:`SCAN_MAX_LEVELS` levels in the window, the window's rows are
aggregated once per user: spend, purchases, the amount and use-rate sums, the spend in each top-k
level and the levels bought. A text category compares its value with each level; an order-level
category set (a list, with ``order_col``) tests membership, and an order counts for each category it
holds, as in :func:`~spendlab.features.covariates.covariates_sql`. The sums are the same fixed-point
sums (:data:`~spendlab.features.sql.MONEY`) and counts, so the values are the same doubles.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass

import duckdb

from spendlab.calendar import Freq
from spendlab.features.config import CovariateConfig
from spendlab.features.covariate_sql import (
    ZERO,
    UserColumn,
    ratio,
    total_columns,
    user_parts,
    window_ctes,
)
from spendlab.features.sql import MONEY
from spendlab.sqltext import literal, quote

#: The most levels a category may have in the window for the scan (a distinct count is a bit per level
#: in a BIGINT); with more, :func:`~spendlab.features.covariates.covariates_sql` computes the features.
SCAN_MAX_LEVELS = 62


@dataclass(frozen=True)
class Levels:
    """Each category attribute's levels in the window, most spend first, and whether every purchase has money.

    ``positive`` holds when every purchase in the window is at least one unit of
    :data:`~spendlab.features.sql.MONEY`: then a level was bought exactly when its spend is positive.
    """

    ranked: dict[str, tuple[str, ...]]
    positive: bool


def _level_spend(con: duckdb.DuckDBPyConnection, w: str, a: str, listed: bool) -> dict[str, decimal.Decimal] | None:
    """Sum the window's spend per level of ``a`` (an order's set adds its spend to each level); None if not text.

    A set is unnested and its levels grouped as text: hashing short strings costs less than hashing
    whole lists, and the sums are the same exact fixed-point sums, so the ranking is the same. A row
    whose value is missing holds no level; a missing level inside a set is not text.
    """
    level = f"UNNEST({quote(a)})" if listed else quote(a)
    rows = con.execute(f"WITH {w} SELECT level, SUM(m) FROM (SELECT {level} AS level, CAST(amount AS {MONEY}) AS m "
                       f"FROM w) AS x GROUP BY level").fetchall()
    out: dict[str, decimal.Decimal] = {}
    for cat, spend in rows:
        if cat is None and not listed:
            continue
        if not isinstance(cat, str):
            return None
        out[cat] = spend
    return out


def ranked_levels(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str,
                  listed: frozenset[str] | set[str] = frozenset()) -> Levels | None:
    """Return each category attribute's levels in the window, ranked by every user's spend (ties by name).

    The ranking of :func:`~spendlab.features.covariates.covariates_sql` (spend summed in fixed point, so
    exactly the same order), one small aggregate per attribute; a ``listed`` attribute (an order's set of
    categories) is unnested, so each order's spend is added to each of its levels.

    Returns
    -------
    Levels or None
        None when a category has more than :data:`SCAN_MAX_LEVELS` levels or is not text.
    """
    cats = sorted({*cfg.category_share, *cfg.distinct})
    if not cats:
        return Levels({}, True)
    w = window_ctes(cfg, as_of=as_of, freq=freq, view=view)[1]
    out: dict[str, tuple[str, ...]] = {}
    for a in cats:
        spend = _level_spend(con, w, a, a in listed)
        if spend is None or len(spend) > SCAN_MAX_LEVELS:
            return None
        out[a] = tuple(cat for cat, _ in sorted(spend.items(), key=lambda x: (-x[1], x[0])))
    least = con.execute(f"WITH {w} SELECT MIN(CAST(amount AS {MONEY})) FROM w").fetchall()[0][0]
    return Levels(out, least is None or least > 0)


def _has(a: str, level: str, listed: bool, typed: str | None = None) -> str:
    """Return SQL of "the row holds category ``level`` of attribute ``a``".

    ``typed`` (the attribute's ENUM type) casts the level to it, so the test compares integers; a bare
    text literal would make DuckDB cast every row's ENUM to text instead.
    """
    level = literal(level) if typed is None else f"CAST({literal(level)} AS {typed})"
    return f"list_contains({quote(a)}, {level})" if listed else f"{quote(a)} = {level}"


def enum_types(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, view: str) -> dict[str, str]:
    """Return the ENUM type of each category attribute of ``view`` held as one (or as a list of one).

    Materialised Parquet rows hold categories with few values so
    (:meth:`~spendlab.io.load.Transactions.register`); anything else is text and absent here.
    """
    cats = {*cfg.category_share, *cfg.distinct}
    types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()}
    out = {}
    for a in cats:
        t = types.get(a, "")
        t = t[:-2] if t.endswith("[]") else t
        if t.startswith("ENUM("):
            out[a] = t
    return out


def _level_sums(cfg: CovariateConfig, levels: Levels, listed: frozenset[str] | set[str],
                typed: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return the per-user aggregates of the categories (``p``) and the feature columns read from them.

    Each top-k level's spend is a conditional sum. The distinct count reads those sums when they cover
    every level and every purchase has money (a level bought has positive spend); otherwise a bit per level
    is or-ed over the rows (an order's set or-ed first).
    """
    money, w = f"CAST(amount AS {MONEY})", cfg.window
    sums: list[str] = []
    cols: list[str] = []
    for a, k in cfg.category_share.items():
        top = levels.ranked[a][:k]
        sums += [f"SUM(CASE WHEN {_has(a, cat, a in listed, typed.get(a))} THEN {money} ELSE 0 END) AS t_{a}_{r}"
                 for r, cat in enumerate(top, start=1)]
        cols += [f"{ratio(f'p.t_{a}_{r}', 'p.spend') if r <= len(top) else ZERO} "
                 f"AS {quote(f'cov_{a}_share_top{r}_window{w}')}" for r in range(1, k + 1)]
    for a in cfg.distinct:
        name, every = quote(f"cov_{a}_distinct_window{w}"), levels.ranked[a]
        if levels.positive and len(every) <= cfg.category_share.get(a, 0):
            bought = " + ".join(f"CASE WHEN p.t_{a}_{r} > 0 THEN 1 ELSE 0 END" for r in range(1, len(every) + 1))
            cols.append(f"CAST({bought or '0'} AS DOUBLE) AS {name}")
            continue
        bits = " ".join(f"WHEN {literal(cat)} THEN CAST({1 << i} AS BIGINT)" for i, cat in enumerate(every))
        if not bits:
            sums.append(f"CAST(NULL AS BIGINT) AS d_{a}")
        elif a in listed:
            sums.append(f"BIT_OR(list_bit_or(list_transform({quote(a)}, lambda x: CASE x {bits} END))) AS d_{a}")
        else:
            sums.append(f"BIT_OR(CASE {quote(a)} {bits} END) AS d_{a}")
        cols.append(f"CAST(COALESCE(BIT_COUNT(p.d_{a}), 0) AS DOUBLE) AS {name}")
    return sums, cols


def scan_covariates_sql(cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str, users: list[UserColumn],
                        levels: Levels, ids: str | None = None,
                        listed: frozenset[str] | set[str] = frozenset(), typed: dict[str, str] | None = None) -> str:
    """Return the statement of :func:`~spendlab.features.covariates.covariates_sql` in one scan of the window.

    With ``ids`` (a relation of text ``user_id`` and ``pos``), its users take the place of every user with
    a row by the cutoff, ``user_id`` is text, and each row carries its user's ``pos`` last (rows in no
    particular order: the caller places them, which costs less than a sort).

    Parameters
    ----------
    cfg : CovariateConfig
        The declaration.
    as_of, freq, view, users
        As for :func:`~spendlab.features.covariates.covariates_sql`.
    levels : Levels
        Each category attribute's ranked levels (:func:`ranked_levels`).
    ids : str, optional
        The relation of the users to return, with their positions.
    listed : set of str
        Category attributes held as lists (an order's set of categories).
    typed : dict, optional
        Category attributes held as ENUMs, with their types (:func:`enum_types`): the membership tests compare integers.
    """
    sums = [f"SUM(CAST(amount AS {MONEY})) AS spend", "COUNT(*) AS n"]
    # |a| cast, not the cast made absolute: the same value (the cast rounds half away from zero, so it commutes
    # with the sign), but DuckDB keeps the cast's bounds and sums it in an int64, not an int128 (10% less scan CPU)
    sums += [f"SUM(CAST(ABS({quote(a)}) AS {MONEY})) AS m_{a}" for a in cfg.amount_share]
    sums += [f"COUNT(CASE WHEN {quote(a)} <> 0 THEN 1 END) AS n_{a}" for a in cfg.use_rate]
    level_sums, level_cols = _level_sums(cfg, levels, listed, typed or {})
    n_shares = sum(cfg.category_share.values())
    cols = [*level_cols[:n_shares], *total_columns(cfg, "p"), *level_cols[n_shares:]]
    key = "w.user_id" if ids is None else "CAST(w.user_id AS VARCHAR)"
    ctes = window_ctes(cfg, as_of=as_of, freq=freq, view=view)
    if ids is not None:  # the caller's users (already known): no scan for them
        ctes[0] = f"u AS (SELECT user_id, pos FROM {quote(ids)})"
    ctes.append(f"p AS (SELECT {key} AS user_id, {', '.join([*sums, *level_sums])} FROM w GROUP BY w.user_id)")
    user_ctes, user_joins, user_cols = user_parts(users, as_of=as_of, view=view)
    select = ", ".join(["u.user_id AS user_id", *cols, *user_cols, *([] if ids is None else ["u.pos AS pos"])])
    joins = ["LEFT JOIN p ON u.user_id = p.user_id", *user_joins]
    return f"WITH {', '.join(ctes + user_ctes)} SELECT {select} FROM u {' '.join(joins)}"
