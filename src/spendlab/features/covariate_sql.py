"""SQL pieces shared by the covariate statements (:mod:`spendlab.features.covariates`, :mod:`spendlab.features.covscan`).

Quoting, the typed ratio, the window's as-of rows, the per-user sums' ratio columns and the user
table's as-of row with its encoding. Everything is DuckDB's dialect and kept transpilable to Spark SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from spendlab.calendar import Freq, period_start, shift_period
from spendlab.features.config import CovariateConfig
from spendlab.features.sql import cutoff_timestamp
from spendlab.io.users import users_view
from spendlab.sqltext import literal, quote

#: Typed literals: a bare ``1.0`` is a DECIMAL in both dialects, and Spark would keep it one.
ONE, ZERO = "CAST(1 AS DOUBLE)", "CAST(0 AS DOUBLE)"


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


def ratio(num: str, den: str) -> str:
    """Return SQL of ``num / den`` as a double, 0 when ``den`` is not positive."""
    return f"CASE WHEN {den} > 0 THEN CAST({num} AS DOUBLE) / CAST({den} AS DOUBLE) ELSE {ZERO} END"


def total_columns(cfg: CovariateConfig, tot: str) -> list[str]:
    """Return the amount-share and use-rate columns, read from the per-user sums in relation ``tot``."""
    w = cfg.window
    cols = [f"{ratio(f'{tot}.m_{a}', f'{tot}.spend')} AS {quote(f'cov_{a}_amount_share_window{w}')}"
            for a in cfg.amount_share]
    return cols + [f"{ratio(f'{tot}.n_{a}', f'{tot}.n')} AS {quote(f'cov_{a}_use_rate_window{w}')}" for a in cfg.use_rate]


def window_ctes(cfg: CovariateConfig, *, as_of: dt.date, freq: Freq, view: str) -> list[str]:
    """Return ``u`` (every user with a row by the cutoff) and ``w`` (the window's purchases with the attributes read)."""
    start = window_start(as_of, freq, cfg.window)
    read = ", ".join(quote(c) for c in ("user_id", "ts", "amount", *sorted(cfg.attributes())))
    # the as-of cut of asof_sql (ts before the cutoff's next midnight), with the line attributes the covariates read
    # u and w each read the view with their own filter: a shared as-of CTE would be materialised (every
    # line copied) to feed both, which costs more than the two scans
    cut = cutoff_timestamp(as_of)
    return [f"u AS (SELECT DISTINCT user_id FROM {quote(view)} WHERE ts < {cut})",
            f"w AS (SELECT {read} FROM {quote(view)} WHERE ts < {cut} AND amount > 0 "
            f"AND ts >= TIMESTAMP '{start.isoformat()} 00:00:00')"]


def _user_select(users: list[UserColumn]) -> list[str]:
    out = []
    for col in users:
        v = f"ua.{quote(col.name)}"
        feats = col.features()
        if col.kind == "number":
            out.append(f"COALESCE(CAST({v} AS DOUBLE), {ZERO}) AS {quote(feats[0][0])}")
        else:
            out += [f"CASE WHEN {v} = {literal(level)} THEN {ONE} ELSE {ZERO} END AS {quote(name)}"
                    for name, level in feats[:-1]]
        out.append(f"CASE WHEN {v} IS NULL THEN {ONE} ELSE {ZERO} END AS {quote(feats[-1][0])}")
    return out


def user_parts(users: list[UserColumn], *, as_of: dt.date, view: str) -> tuple[list[str], list[str], list[str]]:
    """Return the ``ua`` CTE (each user's row valid by the cutoff), its join and its encoded columns."""
    if not users:
        return [], [], []
    picked = ", ".join(quote(c.name) for c in users)
    cte = (f"ua AS (SELECT user_id, {picked} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id "
           f"ORDER BY valid_from DESC NULLS LAST) AS rn FROM {quote(users_view(view))} "
           f"WHERE valid_from IS NULL OR valid_from < {cutoff_timestamp(as_of)}) AS x WHERE rn = 1)")
    return [cte], ["LEFT JOIN ua ON CAST(u.user_id AS VARCHAR) = ua.user_id"], _user_select(users)
