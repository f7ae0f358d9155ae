"""Context covariates: what users bought (line attributes) and who they are (the user table), as of a cutoff.

Declared in the feature config's ``covariates:`` section (:class:`~spendlab.features.config.CovariateConfig`)
and generated here as one SQL statement in DuckDB's dialect, kept transpilable to Spark SQL (the Spark
engine runs the same text through :func:`spendlab.spark.transpile.to_spark_sql`); on DuckDB, categories
with few levels take :func:`spendlab.features.covscan.scan_covariates_sql`, the same values in one scan. Everything reads the
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

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spendlab.calendar import Freq
from spendlab.errors import ConfigError
from spendlab.features.config import CovariateConfig
from spendlab.features.covariate_sql import (
    UserColumn,
    ratio,
    total_columns,
    user_parts,
    window_ctes,
    window_start,
)
from spendlab.features.covscan import enum_types, ranked_levels, scan_covariates_sql
from spendlab.features.sql import MONEY
from spendlab.io.users import users_view
from spendlab.sqltext import quote

__all__ = ["UserColumn", "covariate_names", "covariates_sql", "listed_attributes", "user_columns", "window_start",
           "with_covariates"]

_counter = itertools.count()


def covariate_names(cfg: CovariateConfig, users: list[UserColumn]) -> list[str]:
    """Return the covariate columns, in the order :func:`covariates_sql` returns them (after ``user_id``)."""
    w = cfg.window
    names = [f"cov_{a}_share_top{r}_window{w}" for a, k in cfg.category_share.items() for r in range(1, k + 1)]
    names += [f"cov_{a}_amount_share_window{w}" for a in cfg.amount_share]
    names += [f"cov_{a}_use_rate_window{w}" for a in cfg.use_rate]
    names += [f"cov_{a}_distinct_window{w}" for a in cfg.distinct]
    return names + [name for col in users for name, _ in col.features()]


def _one_pass_ctes(cfg: CovariateConfig, flat: list[str]) -> list[str]:
    """Return ``tot`` (per user: spend, purchases, the amount and use-rate sums) and ``g_{a}`` for each text category.

    The window's lines are aggregated once, per user and combination of the text categories (``fine``, a
    few rows per user); ``tot`` and each ``g_{a}`` roll that small table up. The sums are exact (fixed
    point, counts), so rolling up changes no value, and the lines are read once however many
    categories are declared.
    """
    # inside fine every computed name starts with "_", which no attribute name does (no clash with a category)
    sums = [(f"SUM(ABS(CAST({quote(a)} AS {MONEY})))", f"m_{a}") for a in cfg.amount_share]
    sums += [(f"COUNT(CASE WHEN {quote(a)} <> 0 THEN 1 END)", f"n_{a}") for a in cfg.use_rate]
    measures = [(f"SUM(CAST(amount AS {MONEY}))", "spend"), ("COUNT(*)", "n"), *sums]
    if not flat:
        return [f"tot AS (SELECT user_id, {', '.join(f'{e} AS {n}' for e, n in measures)} FROM w GROUP BY user_id)"]
    keys = ", ".join(["user_id", *(quote(a) for a in flat)])
    fine = f"fine AS (SELECT {keys}, {', '.join(f'{e} AS _{n}' for e, n in measures)} FROM w GROUP BY {keys})"
    tot = f"tot AS (SELECT user_id, {', '.join(f'SUM(_{n}) AS {n}' for _, n in measures)} FROM fine GROUP BY user_id)"
    if len(flat) == 1:  # fine is already per user and category
        return [fine, tot, f"g_{flat[0]} AS (SELECT user_id, {quote(flat[0])} AS cat, _spend AS amount FROM fine "
                           f"WHERE {quote(flat[0])} IS NOT NULL)"]
    return [fine, tot, *(f"g_{a} AS (SELECT user_id, {quote(a)} AS cat, SUM(_spend) AS amount FROM fine "
                         f"WHERE {quote(a)} IS NOT NULL GROUP BY user_id, {quote(a)})" for a in flat)]


def _category_ctes(a: str, k: int | None, listed: bool, distinct: bool) -> list[str]:
    """Return the per-user-and-category sums ``g_{a}`` of a list attribute, the ranking, and ``s_{a}``.

    An order's list is unnested (one line per category it holds) and summed once per user and category
    (``g_{a}``, a few rows per user; a text category's comes from the one pass); the ranking, the spend in
    each top-k category (``t1..tk``) and the distinct count (``n``) are read from those sums. The sums are exact (fixed point), so grouping first changes no value.
    """
    grouped: list[str] = []  # a text category's g_{a} comes from the one pass (_one_pass_ctes)
    if listed:
        grouped = [f"c_{a} AS (SELECT user_id, amount, cat FROM (SELECT user_id, CAST(amount AS {MONEY}) AS amount, "
                   f"UNNEST({quote(a)}) AS cat FROM w) AS x WHERE cat IS NOT NULL)",
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
    ctes = window_ctes(cfg, as_of=as_of, freq=freq, view=view)
    cats = sorted({*cfg.category_share, *cfg.distinct})
    ctes += _one_pass_ctes(cfg, [a for a in cats if a not in listed])
    for a in cats:
        ctes += _category_ctes(a, cfg.category_share.get(a), a in listed, a in cfg.distinct)
    cols, joins = [], ["LEFT JOIN tot ON u.user_id = tot.user_id"]
    joins += [f"LEFT JOIN s_{a} ON u.user_id = s_{a}.user_id" for a in cats]
    for a, k in cfg.category_share.items():
        cols += [f"{ratio(f's_{a}.t{r}', 'tot.spend')} AS {quote(f'cov_{a}_share_top{r}_window{cfg.window}')}"
                 for r in range(1, k + 1)]
    cols += total_columns(cfg, "tot")
    cols += [f"CAST(COALESCE(s_{a}.n, 0) AS DOUBLE) AS {quote(f'cov_{a}_distinct_window{cfg.window}')}"
             for a in cfg.distinct]
    user_ctes, user_joins, user_cols = user_parts(users, as_of=as_of, view=view)
    select = ", ".join(["u.user_id AS user_id", *cols, *user_cols])
    return f"WITH {', '.join(ctes + user_ctes)} SELECT {select} FROM u {' '.join(joins + user_joins)}"


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
        types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {quote(table)}").fetchall()}
    except duckdb.CatalogException:
        raise ConfigError(f"covariates.user_attributes {list(cfg.user_attributes)} need a user table "
                          "(an experiment's dataset.users, or users: in the --config file), and there is none") from None
    out = []
    for name in cfg.user_attributes:
        if name not in types:
            raise ConfigError(f"covariates.user_attributes: the user table has no column {name!r}")
        if types[name] != "VARCHAR":
            out.append(UserColumn(name, "number"))
            continue
        levels = cfg.user_levels.get(name)
        if levels is None:
            rows = con.execute(f"SELECT DISTINCT {quote(name)} FROM {quote(table)} WHERE {quote(name)} IS NOT NULL "
                               f"ORDER BY 1").fetchall()
            levels = tuple(r[0] for r in rows)
        out.append(UserColumn(name, "category", tuple(levels)))
    return out


def listed_attributes(con: duckdb.DuckDBPyConnection, cfg: CovariateConfig, *, view: str) -> set[str]:
    """Return the category attributes ``view`` holds as lists; raises naming a declared attribute it lacks."""
    types = {n: t for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()}
    missing = sorted(a for a in cfg.attributes() if a not in types)
    if missing:
        raise ConfigError(f"covariates read line attribute(s) {missing} that the data does not have "
                          "(declare them in reader.generic.attributes)")
    return {a for a in cfg.attributes() if types[a].endswith("[]")}


def with_covariates(con: duckdb.DuckDBPyConnection, table: pa.Table, *, as_of: dt.date, freq: Freq,
                    cfg: CovariateConfig, view: str) -> pa.Table:
    """``table`` (features of the users with a row by the cutoff) with the covariate columns appended row for row.

    Categories with few levels, text or an order's set, take one scan
    (:func:`~spendlab.features.covscan.scan_covariates_sql`, its rows placed by ``table``'s positions); many levels
    take :func:`covariates_sql`.
    """
    users = user_columns(con, cfg, view=view)
    listed = listed_attributes(con, cfg, view=view)
    levels = ranked_levels(con, cfg, as_of=as_of, freq=freq, view=view, listed=listed)
    if levels is not None:
        ids = f"spendlab_cov_ids_{next(_counter)}"
        con.register(ids, pa.table({"user_id": table.column("user_id").cast(pa.string()),
                                    "pos": np.arange(table.num_rows, dtype=np.int64)}))
        try:
            extra = con.sql(scan_covariates_sql(cfg, as_of=as_of, freq=freq, view=view, users=users, levels=levels,
                                                ids=ids, listed=listed,
                                                typed=enum_types(con, cfg, view=view))).to_arrow_table()
        finally:
            con.unregister(ids)
        rows = np.empty(table.num_rows, dtype=np.int64)  # row of extra holding table's i-th user
        rows[extra.column("pos").to_numpy()] = np.arange(extra.num_rows, dtype=np.int64)
        for name in covariate_names(cfg, users):
            table = table.append_column(name, pc.fill_null(pc.take(extra.column(name), rows).cast(pa.float64()), 0.0))
        return table
    # many levels: the per-user-and-category statement
    sql = covariates_sql(cfg, as_of=as_of, freq=freq, view=view, users=users, listed=listed)
    extra = con.sql(f"SELECT CAST(user_id AS VARCHAR) AS user_id, * EXCLUDE (user_id) FROM ({sql})").to_arrow_table()
    pos = pc.index_in(table.column("user_id").cast(pa.string()), value_set=extra.column("user_id"))
    for name in covariate_names(cfg, users):
        col = pc.take(extra.column(name), pos)
        table = table.append_column(name, pc.fill_null(col.cast(pa.float64()), 0.0))
    return table
