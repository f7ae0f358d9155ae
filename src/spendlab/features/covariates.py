"""Context covariates: what users bought (line attributes) and who they are (the user table), as of a cutoff.

Declared in the feature config's ``covariates:`` section (:class:`~spendlab.features.config.CovariateConfig`)
and generated here as one SQL statement in DuckDB's dialect, kept transpilable to Spark SQL (the Spark
engine runs the same text through :func:`spendlab.spark.transpile.to_spark_sql`); on DuckDB, text
categories with few levels take :func:`scan_covariates_sql`, the same values in one scan. Everything reads the
as-of rows (:func:`~spendlab.features.sql.asof_sql`) and the user rows valid on or before the cutoff,
so nothing after the cutoff changes a value (the same bound as :func:`~spendlab.features.sql.asof_sql`). Purchases only (``amount > 0``); money is summed in fixed
point (:data:`~spendlab.features.sql.MONEY`). Column names, over window ``w`` periods:

``cov_{a}_share_top{r}_window{w}``
    the user's spend in purchases of the category ranked ``r`` (by every user's spend in the window,
    ties by name) over the user's spend; an order counts for each category it holds.
``cov_{a}_amount_share_window{w}``
    the sum of ``|a|`` (a discount) over the user's spend.
``cov_{a}_use_rate_window{w}``
    purchases with ``a`` non-zero (a coupon) over purchases.
``cov_{a}_distinct_window{w}``
    distinct values of category ``a``.
``user_{c}__{level}``, ``user_{c}__missing``; ``user_{c}``, ``user_{c}__missing``
    a category column one-hot over its levels, or a number (0 when missing); a user without a row
    valid by the cutoff is missing, never dropped.

A ratio with a zero denominator is 0.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spendlab.calendar import Freq, period_start, shift_period
from spendlab.errors import ConfigError
from spendlab.features.config import CovariateConfig
from spendlab.features.sql import MONEY, cutoff_timestamp
from spendlab.io.users import users_view

_counter = itertools.count()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _slug(level: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", level.lower()).strip("_") or "x"


@dataclass(frozen=True)
class UserColumn:
    """One user-table column as the covariates encode it: its kind and (categories) its levels."""

    name: str
    kind: str  # "category" or "number"
    levels: tuple[str, ...] = ()

    def features(self) -> list[tuple[str, str]]:
        """``(feature name, level)`` pairs; the level is ``""`` for a number and None-like for missing."""
        if self.kind == "number":
            return [(f"user_{self.name}", ""), (f"user_{self.name}__missing", "")]
        names, out = set(), []
        for level in self.levels:
            name, i = f"user_{self.name}__{_slug(level)}", 2
            while name in names or name == f"user_{self.name}__missing":
                name, i = f"user_{self.name}__{_slug(level)}_{i}", i + 1
            names.add(name)
            out.append((name, level))
        return [*out, (f"user_{self.name}__missing", "")]


def window_start(as_of: dt.date, freq: Freq, window: int) -> dt.date:
    """Return the first day of the ``window`` periods ending with the period that holds ``as_of``."""
    return period_start(shift_period(as_of, freq, -(window - 1)), freq)


def covariate_names(cfg: CovariateConfig, users: list[UserColumn]) -> list[str]:
    """Return the covariate columns, in the order :func:`covariates_sql` returns them (after ``user_id``)."""
    w = cfg.window
    names = [f"cov_{a}_share_top{r}_window{w}" for a, k in cfg.category_share.items() for r in range(1, k + 1)]
    names += [f"cov_{a}_amount_share_window{w}" for a in cfg.amount_share]
    names += [f"cov_{a}_use_rate_window{w}" for a in cfg.use_rate]
    names += [f"cov_{a}_distinct_window{w}" for a in cfg.distinct]
    return names + [name for col in users for name, _ in col.features()]


#: Typed literals: a bare ``1.0`` is a DECIMAL in both dialects, and Spark would keep it one.
_ONE, _ZERO = "CAST(1 AS DOUBLE)", "CAST(0 AS DOUBLE)"


def _ratio(num: str, den: str) -> str:
    return f"CASE WHEN {den} > 0 THEN CAST({num} AS DOUBLE) / CAST({den} AS DOUBLE) ELSE {_ZERO} END"


def _one_pass_ctes(cfg: CovariateConfig, flat: list[str]) -> list[str]:
    """Return ``tot`` (per user: spend, purchases, the amount and use-rate sums) and ``g_{a}`` for each text category.

    The window's lines are aggregated once, per user and combination of the text categories (``fine``, a
    few rows per user); ``tot`` and each ``g_{a}`` roll that small table up. The sums are exact (fixed
    point, counts), so rolling up changes no value, and the lines are read once however many
    categories are declared.
    """
    # inside fine every computed name starts with "_", which no attribute name does (no clash with a category)
    sums = [(f"SUM(ABS(CAST({_q(a)} AS {MONEY})))", f"m_{a}") for a in cfg.amount_share]
    sums += [(f"COUNT(CASE WHEN {_q(a)} <> 0 THEN 1 END)", f"n_{a}") for a in cfg.use_rate]
    measures = [(f"SUM(CAST(amount AS {MONEY}))", "spend"), ("COUNT(*)", "n"), *sums]
    if not flat:
        return [f"tot AS (SELECT user_id, {', '.join(f'{e} AS {n}' for e, n in measures)} FROM w GROUP BY user_id)"]
    keys = ", ".join(["user_id", *(_q(a) for a in flat)])
    fine = f"fine AS (SELECT {keys}, {', '.join(f'{e} AS _{n}' for e, n in measures)} FROM w GROUP BY {keys})"
    tot = f"tot AS (SELECT user_id, {', '.join(f'SUM(_{n}) AS {n}' for _, n in measures)} FROM fine GROUP BY user_id)"
    if len(flat) == 1:  # fine is already per user and category
        return [fine, tot, f"g_{flat[0]} AS (SELECT user_id, {_q(flat[0])} AS cat, _spend AS amount FROM fine "
                           f"WHERE {_q(flat[0])} IS NOT NULL)"]
    return [fine, tot, *(f"g_{a} AS (SELECT user_id, {_q(a)} AS cat, SUM(_spend) AS amount FROM fine "
                         f"WHERE {_q(a)} IS NOT NULL GROUP BY user_id, {_q(a)})" for a in flat)]


def _category_ctes(a: str, k: int | None, listed: bool, distinct: bool) -> list[str]:
    """Return the per-user-and-category sums ``g_{a}`` of a list attribute, the ranking, and ``s_{a}``.

    An order's list is unnested (one line per category it holds) and summed once per user and category
    (``g_{a}``, a few rows per user; a text category's comes from the one pass); the ranking, the spend in
    each top-k category (``t1..tk``) and the distinct count (``n``) are read from those sums. The sums are exact (fixed point), so grouping first changes no value.
    """
    grouped: list[str] = []  # a text category's g_{a} comes from the one pass (_one_pass_ctes)
    if listed:
        grouped = [f"c_{a} AS (SELECT user_id, amount, cat FROM (SELECT user_id, CAST(amount AS {MONEY}) AS amount, "
                   f"UNNEST({_q(a)}) AS cat FROM w) AS x WHERE cat IS NOT NULL)",
                   f"g_{a} AS (SELECT user_id, cat, SUM(amount) AS amount FROM c_{a} GROUP BY user_id, cat)"]
    sums = ["COUNT(*) AS n"] if distinct else []
    if not k:
        return [*grouped, f"s_{a} AS (SELECT g.user_id, {', '.join(sums)} FROM g_{a} AS g GROUP BY g.user_id)"]
    sums += [f"SUM(CASE WHEN k.r = {r} THEN g.amount ELSE 0 END) AS t{r}" for r in range(1, k + 1)]
    rank = (f"r_{a} AS (SELECT cat, ROW_NUMBER() OVER (ORDER BY SUM(amount) DESC, cat) AS r "
            f"FROM g_{a} GROUP BY cat)")
    # every category joins (the ranking is small), so one pass gives the shares and the distinct count
    return [*grouped, rank, f"s_{a} AS (SELECT g.user_id, {', '.join(sums)} FROM g_{a} AS g JOIN r_{a} AS k "
                                  f"ON g.cat = k.cat GROUP BY g.user_id)"]


def _user_select(users: list[UserColumn]) -> list[str]:
    out = []
    for col in users:
        v = f"ua.{_q(col.name)}"
        feats = col.features()
        if col.kind == "number":
            out.append(f"COALESCE(CAST({v} AS DOUBLE), {_ZERO}) AS {_q(feats[0][0])}")
        else:
            out += [f"CASE WHEN {v} = {_lit(level)} THEN {_ONE} ELSE {_ZERO} END AS {_q(name)}"
                    for name, level in feats[:-1]]
        out.append(f"CASE WHEN {v} IS NULL THEN {_ONE} ELSE {_ZERO} END AS {_q(feats[-1][0])}")
    return out


def _window_ctes(cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str) -> list[str]:
    """Return ``u`` (every user with a row by the cutoff) and ``w`` (the window's purchases with the attributes read)."""
    start = window_start(as_of, freq, cfg.window)
    read = ", ".join(_q(c) for c in ("user_id", "ts", "amount", *sorted(cfg.attributes())))
    # the as-of cut of asof_sql (ts before the cutoff's next midnight), with the line attributes the covariates read
    # u and w each read the view with their own filter: a shared as-of CTE would be materialised (every
    # line copied) to feed both, which costs more than the two scans
    cut = cutoff_timestamp(as_of)
    return [f"u AS (SELECT DISTINCT user_id FROM {_q(view)} WHERE ts < {cut})",
            f"w AS (SELECT {read} FROM {_q(view)} WHERE ts < {cut} AND amount > 0 "
            f"AND ts >= TIMESTAMP '{start.isoformat()} 00:00:00')"]


def _user_parts(users: list[UserColumn], *, as_of: dt.date, view: str) -> tuple[list[str], list[str], list[str]]:
    """Return the ``ua`` CTE (each user's row valid by the cutoff), its join and its encoded columns."""
    if not users:
        return [], [], []
    picked = ", ".join(_q(c.name) for c in users)
    cte = (f"ua AS (SELECT user_id, {picked} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id "
           f"ORDER BY valid_from DESC NULLS LAST) AS rn FROM {_q(users_view(view))} "
           f"WHERE valid_from IS NULL OR valid_from < {cutoff_timestamp(as_of)}) AS x WHERE rn = 1)")
    return [cte], ["LEFT JOIN ua ON CAST(u.user_id AS VARCHAR) = ua.user_id"], _user_select(users)


def covariates_sql(cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str, users: list[UserColumn],
                   listed: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """One statement: ``user_id`` (every user with a row by the cutoff) and :func:`covariate_names`.

    Parameters
    ----------
    cfg : CovariateConfig
        The declaration.
    as_of : datetime.date
        The cutoff (inclusive).
    freq : str
        ``month`` or ``week``: the unit of ``cfg.window``.
    view : str
        The transactions view (canonical columns plus the line attributes); its user table is
        :func:`spendlab.io.users.users_view` of it.
    users : list of UserColumn
        The user-table columns to encode (:func:`user_columns`).
    listed : set of str
        Category attributes held as lists (orders: the set of their lines' categories).
    """
    ctes = _window_ctes(cfg, as_of=as_of, freq=freq, view=view)
    cats = sorted({*cfg.category_share, *cfg.distinct})
    ctes += _one_pass_ctes(cfg, [a for a in cats if a not in listed])
    for a in cats:
        ctes += _category_ctes(a, cfg.category_share.get(a), a in listed, a in cfg.distinct)
    cols, joins = [], ["LEFT JOIN tot ON u.user_id = tot.user_id"]
    joins += [f"LEFT JOIN s_{a} ON u.user_id = s_{a}.user_id" for a in cats]
    for a, k in cfg.category_share.items():
        cols += [f"{_ratio(f's_{a}.t{r}', 'tot.spend')} AS {_q(f'cov_{a}_share_top{r}_window{cfg.window}')}"
                 for r in range(1, k + 1)]
    cols += _total_columns(cfg, "tot")
    cols += [f"CAST(COALESCE(s_{a}.n, 0) AS DOUBLE) AS {_q(f'cov_{a}_distinct_window{cfg.window}')}"
             for a in cfg.distinct]
    user_ctes, user_joins, user_cols = _user_parts(users, as_of=as_of, view=view)
    select = ", ".join(["u.user_id AS user_id", *cols, *user_cols])
    return f"WITH {', '.join(ctes + user_ctes)} SELECT {select} FROM u {' '.join(joins + user_joins)}"


def _total_columns(cfg: CovariateConfig, tot: str) -> list[str]:
    """Return the amount-share and use-rate columns, read from the per-user sums in relation ``tot``."""
    w = cfg.window
    cols = [f"{_ratio(f'{tot}.m_{a}', f'{tot}.spend')} AS {_q(f'cov_{a}_amount_share_window{w}')}"
            for a in cfg.amount_share]
    return cols + [f"{_ratio(f'{tot}.n_{a}', f'{tot}.n')} AS {_q(f'cov_{a}_use_rate_window{w}')}" for a in cfg.use_rate]


#: The most levels a text category may have in the window for :func:`scan_covariates_sql` (a distinct
#: count is a bit per level in a BIGINT); with more, :func:`covariates_sql` computes the features.
SCAN_MAX_LEVELS = 62


def ranked_levels(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, as_of: dt.date, freq: Freq,
                  view: str) -> dict[str, tuple[str, ...]] | None:
    """Return each category attribute's levels in the window, ranked by every user's spend (ties by name).

    The ranking of :func:`covariates_sql` (spend summed in fixed point, so exactly the same order), read
    in one scan of the window.

    Returns
    -------
    dict or None
        Attribute -> its levels, most spend first; None when a category has more than
        :data:`SCAN_MAX_LEVELS` levels or is not text.
    """
    cats = sorted({*cfg.category_share, *cfg.distinct})
    if not cats:
        return {}
    ctes = _window_ctes(cfg, as_of=as_of, freq=freq, view=view)[1:]
    flags = ", ".join(f"GROUPING({_q(a)})" for a in cats)
    sets = ", ".join(f"({_q(a)})" for a in cats)
    rows = con.execute(f"WITH {ctes[0]} SELECT {flags}, {', '.join(_q(a) for a in cats)}, "
                       f"SUM(CAST(amount AS {MONEY})) FROM w GROUP BY GROUPING SETS ({sets})").fetchall()
    out: dict[str, tuple[str, ...]] = {}
    for i, a in enumerate(cats):
        mine = [(r[len(cats) + i], r[-1]) for r in rows if r[i] == 0 and r[len(cats) + i] is not None]
        if len(mine) > SCAN_MAX_LEVELS or any(not isinstance(cat, str) for cat, _ in mine):
            return None
        out[a] = tuple(cat for cat, _ in sorted(mine, key=lambda x: (-x[1], x[0])))
    return out


def scan_covariates_sql(cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str, users: list[UserColumn],
                        levels: dict[str, tuple[str, ...]], ids: str | None = None) -> str:
    """Return the statement of :func:`covariates_sql` for text categories with ranked levels, in one scan.

    The window's lines are aggregated once per user: spend, purchases, the amount and use-rate sums,
    the spend in each top-k level (``levels``, from :func:`ranked_levels`) and a bit per level bought
    (the distinct count). The same fixed-point sums and counts as :func:`covariates_sql`, so the same
    values, without the per-user-and-category table and its roll-ups. With ``ids`` (a relation of text
    ``user_id`` and ``pos``), its users in ``pos`` order take the place of every user with a row by the
    cutoff, and ``user_id`` is text.

    Parameters
    ----------
    levels : dict
        Each category attribute's ranked levels (:func:`ranked_levels`); text categories only.
    ids : str, optional
        The relation of the users to return, in order.
    """
    money = f"CAST(amount AS {MONEY})"
    sums = [f"SUM({money}) AS spend", "COUNT(*) AS n"]
    sums += [f"SUM(ABS(CAST({_q(a)} AS {MONEY}))) AS m_{a}" for a in cfg.amount_share]
    sums += [f"COUNT(CASE WHEN {_q(a)} <> 0 THEN 1 END) AS n_{a}" for a in cfg.use_rate]
    cols, w = [], cfg.window
    for a, k in cfg.category_share.items():
        top = levels[a][:k]
        sums += [f"SUM(CASE WHEN {_q(a)} = {_lit(cat)} THEN {money} ELSE 0 END) AS t_{a}_{r}"
                 for r, cat in enumerate(top, start=1)]
        cols += [f"{_ratio(f'p.t_{a}_{r}', 'p.spend') if r <= len(top) else _ZERO} AS {_q(f'cov_{a}_share_top{r}_window{w}')}"
                 for r in range(1, k + 1)]
    cols += _total_columns(cfg, "p")
    for a in cfg.distinct:
        bits = " ".join(f"WHEN {_lit(cat)} THEN CAST({1 << i} AS BIGINT)" for i, cat in enumerate(levels[a]))
        sums.append(f"BIT_OR(CASE {_q(a)} {bits} END) AS d_{a}" if bits else f"CAST(NULL AS BIGINT) AS d_{a}")
        cols.append(f"CAST(COALESCE(BIT_COUNT(p.d_{a}), 0) AS DOUBLE) AS {_q(f'cov_{a}_distinct_window{w}')}")
    key = "w.user_id" if ids is None else "CAST(w.user_id AS VARCHAR)"
    ctes = _window_ctes(cfg, as_of=as_of, freq=freq, view=view)
    if ids is not None:  # the caller's users (already known): no scan for them
        ctes[0] = f"u AS (SELECT user_id, pos FROM {_q(ids)})"
    ctes.append(f"p AS (SELECT {key} AS user_id, {', '.join(sums)} FROM w GROUP BY w.user_id)")
    user_ctes, user_joins, user_cols = _user_parts(users, as_of=as_of, view=view)
    select = ", ".join(["u.user_id AS user_id", *cols, *user_cols])
    joins = ["LEFT JOIN p ON u.user_id = p.user_id", *user_joins]
    order = "" if ids is None else " ORDER BY u.pos"
    return f"WITH {', '.join(ctes + user_ctes)} SELECT {select} FROM u {' '.join(joins)}{order}"


def user_columns(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, view: str) -> list[UserColumn]:
    """Return the declared user columns, their kinds from the user table's types, their levels (declared, or every level in the table.

    A vocabulary, not any user's value, so it cannot leak one).

    Raises
    ------
    ConfigError
        A declared user column the table lacks, or no user table beside ``view``.
    """
    if not cfg.user_attributes:
        return []
    table = users_view(view)
    try:
        types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {_q(table)}").fetchall()}
    except duckdb.CatalogException:
        raise ConfigError(f"covariates.user_attributes {list(cfg.user_attributes)} need a user table "
                          "(dataset.users), and there is none") from None
    out = []
    for name in cfg.user_attributes:
        if name not in types:
            raise ConfigError(f"covariates.user_attributes: the user table has no column {name!r}")
        if types[name] != "VARCHAR":
            out.append(UserColumn(name, "number"))
            continue
        levels = cfg.user_levels.get(name)
        if levels is None:
            rows = con.execute(f"SELECT DISTINCT {_q(name)} FROM {_q(table)} WHERE {_q(name)} IS NOT NULL "
                               f"ORDER BY 1").fetchall()
            levels = tuple(r[0] for r in rows)
        out.append(UserColumn(name, "category", tuple(levels)))
    return out


def listed_attributes(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, view: str) -> set[str]:
    """Return the category attributes ``view`` holds as lists; raises naming a declared attribute it lacks."""
    types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {_q(view)}").fetchall()}
    missing = sorted(a for a in cfg.attributes() if a not in types)
    if missing:
        raise ConfigError(f"covariates read line attribute(s) {missing} that the data does not have "
                          "(declare them in reader.generic.attributes)")
    return {a for a in cfg.attributes() if types[a].endswith("[]")}


def with_covariates(con: duckdb.DuckDBPyConnection, table: pa.Table, *, as_of: dt.date, freq: Freq,
                    cfg: CovariateConfig, view: str) -> pa.Table:
    """``table`` (features of the users with a row by the cutoff) with the covariate columns appended row for row.

    Text categories with few levels take one scan (:func:`scan_covariates_sql`, its rows in ``table``'s
    order); order-level category sets or many levels take :func:`covariates_sql`.
    """
    users = user_columns(con, cfg, view=view)
    listed = listed_attributes(con, cfg, view=view)
    levels = None if listed else ranked_levels(con, cfg, as_of=as_of, freq=freq, view=view)
    if levels is not None:
        ids = f"spendlab_cov_ids_{next(_counter)}"
        con.register(ids, pa.table({"user_id": table.column("user_id").cast(pa.string()),
                                    "pos": np.arange(table.num_rows, dtype=np.int64)}))
        try:
            extra = con.sql(scan_covariates_sql(cfg, as_of=as_of, freq=freq, view=view, users=users, levels=levels,
                                                ids=ids)).to_arrow_table()
        finally:
            con.unregister(ids)
        for name in covariate_names(cfg, users):
            table = table.append_column(name, pc.fill_null(extra.column(name).cast(pa.float64()), 0.0))
        return table
    # order-level category sets, or many levels: the per-user-and-category statement
    sql = covariates_sql(cfg, as_of=as_of, freq=freq, view=view, users=users, listed=listed)
    extra = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) FROM ({sql})").to_arrow_table()
    pos = pc.index_in(table.column("user_id").cast(pa.string()), value_set=extra.column("user_id"))
    for name in covariate_names(cfg, users):
        col = pc.take(extra.column(name), pos)
        table = table.append_column(name, pc.fill_null(col.cast(pa.float64()), 0.0))
    return table
