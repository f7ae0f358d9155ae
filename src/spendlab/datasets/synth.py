"""Embedded datasets and seeded synthetic generators."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spendlab.errors import SpendlabError
from spendlab.io.atomic import atomic_path

if TYPE_CHECKING:
    import numpy as np


# --- synthetic generator ---------------------------------------------------------------------

_WEEKDAY_WEIGHT = (0.9, 0.95, 1.0, 1.0, 1.15, 1.35, 1.1)  # Mon..Sun
_HOUR_WEIGHT = (
    0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.6, 0.9, 1.1, 1.3, 1.5,
    1.7, 1.6, 1.4, 1.3, 1.4, 1.6, 1.8, 1.9, 1.7, 1.3, 0.9, 0.5,
)


def _day_weights(days: np.ndarray, country: str = "US") -> np.ndarray:
    """Relative purchase intensity per day: weekday pattern, December ramp, holiday bumps."""
    import holidays
    import numpy as np
    import pandas as pd

    idx = pd.DatetimeIndex(days)
    w = np.asarray(_WEEKDAY_WEIGHT)[idx.weekday]
    w = w * np.where(idx.month == 12, 1.0 + 0.6 * (np.minimum(idx.day, 24) / 24.0), 1.0)
    w = w * np.where(idx.month == 11, 1.15, 1.0)
    years = sorted(set(idx.year))
    hol = holidays.country_holidays(country, years=years)
    for i, d in enumerate(idx):
        day = d.date()
        if day in hol:
            w[i] *= 0.6  # stores close, fewer purchases on the day itself
        if d.month == 11 and d.weekday() == 4 and 23 <= d.day <= 29:  # Black Friday
            w[i] *= 2.5
        if d.weekday() == 0 and ((d.month == 11 and 26 <= d.day <= 30) or (d.month == 12 and d.day <= 2)):
            w[i] *= 1.8  # Cyber Monday (Monday after Thanksgiving)
    return w


def synth_transactions(
    out: str | Path,
    *,
    users: int = 10_000,
    months: int = 18,
    fmt: str = "parquet",
    start: str = "2023-01-01",
    seed: int = 0,
    chunk_users: int = 50_000,
    refund_rate: float = 0.01,
    progress: bool = False,
) -> dict[str, int]:
    """Write seeded synthetic transactions, generated in chunks of users (bounded memory).

    Behaviour per user: an acquisition month spread over the first two thirds of the window, a
    gamma-distributed purchase rate (so counts are gamma-Poisson, i.e. negative binomial), a
    monthly churn probability from a beta distribution, lognormal basket sizes around a
    user-level mean, and calendar effects (weekday, November/December, Black Friday, Cyber
    Monday, quieter public holidays). ``fmt="parquet"`` writes canonical columns
    ``user_id, ts, amount`` (positive = spend); ``fmt="millions"`` writes the card CSV format.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq


    if fmt not in {"parquet", "millions"}:
        raise SpendlabError(f"unknown synthetic format {fmt!r}; choose parquet or millions")
    if users < 1 or months < 1:
        raise SpendlabError("--users and --months must be positive")
    first = pd.Timestamp(start).normalize()
    month_starts = pd.date_range(first, periods=months + 1, freq="MS") if first.day == 1 else \
        pd.date_range(first, periods=months + 1, freq="MS").insert(0, first)[: months + 1]
    days = pd.date_range(month_starts[0], month_starts[-1] - pd.Timedelta(days=1), freq="D")
    weights = _day_weights(days.values)
    month_of_day = np.searchsorted(month_starts.values, days.values, side="right") - 1
    cum = np.cumsum(weights)
    bounds = np.searchsorted(month_of_day, np.arange(months + 1))
    season = np.array([weights[bounds[m]:bounds[m + 1]].mean() for m in range(months)])
    season = season / season.mean()
    hour_p = np.asarray(_HOUR_WEIGHT) / sum(_HOUR_WEIGHT)
    day_ns = days.values.astype("datetime64[us]").astype(np.int64)

    rng_root = np.random.SeedSequence(seed)
    n_chunks = (users + chunk_users - 1) // chunk_users
    total = 0
    pad = max(7, len(str(users)))
    with atomic_path(out) as tmp:
        writer = None
        csv_fh = None
        if fmt == "millions":
            csv_fh = open(tmp, "w", encoding="utf-8", newline="")
            csv_fh.write("type,data,created_at,user_id\n")
        for c, child in enumerate(rng_root.spawn(n_chunks)):
            rng = np.random.default_rng(child)
            lo, hi = c * chunk_users, min(users, (c + 1) * chunk_users)
            n = hi - lo
            acq = rng.integers(0, max(1, (2 * months) // 3), size=n)
            rate = rng.gamma(shape=1.2, scale=2.6, size=n)
            churn = rng.beta(1.0, 14.0, size=n)
            life = acq + 1 + rng.geometric(np.clip(churn, 1e-3, 1.0), size=n)
            mu = rng.normal(3.3, 0.55, size=n)
            m_idx = np.arange(months)
            active = (m_idx[None, :] >= acq[:, None]) & (m_idx[None, :] < life[:, None])
            lam = rate[:, None] * season[None, :] * active
            counts = rng.poisson(lam)
            counts[np.arange(n), acq] = np.maximum(counts[np.arange(n), acq], 1)  # acquisition purchase
            u_rep = np.repeat(np.arange(n), counts.sum(axis=1))
            m_rep = np.repeat(np.tile(m_idx, n), counts.ravel())
            k = len(u_rep)
            lo_c = np.where(bounds[m_rep] > 0, cum[bounds[m_rep] - 1], 0.0)
            hi_c = cum[bounds[m_rep + 1] - 1]
            target = lo_c + rng.random(k) * (hi_c - lo_c)
            day_idx = np.minimum(np.searchsorted(cum, target), len(days) - 1)
            secs = rng.choice(24, size=k, p=hour_p) * 3600 + rng.integers(0, 3600, size=k)
            ts_us = day_ns[day_idx] + secs.astype(np.int64) * 1_000_000
            amount = np.round(np.exp(mu[u_rep] + 0.75 * rng.standard_normal(k)), 2)
            amount = np.maximum(amount, 0.5)
            refund = rng.random(k) < refund_rate
            amount = np.where(refund, -np.round(amount * rng.uniform(0.1, 1.0, k), 2), amount)
            order = np.lexsort((ts_us, u_rep))
            u_rep, ts_us, amount = u_rep[order], ts_us[order], amount[order]
            first = np.ones(k, dtype=bool)
            first[1:] = u_rep[1:] != u_rep[:-1]
            amount = np.where(first, np.abs(amount), amount)  # a refund needs an earlier purchase
            ids = np.char.add("u", np.char.zfill((u_rep + lo + 1).astype(str), pad))
            total += k
            if fmt == "parquet":
                table = pa.table({
                    "user_id": pa.array(ids, pa.string()),
                    "ts": pa.array(ts_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "amount": pa.array(amount, pa.float64()),
                })
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=1_000_000)
            else:
                stamp = pd.to_datetime(ts_us, unit="us")
                created = (stamp.strftime("%Y-%m-%d ") + pd.Index(stamp.hour.astype(str))
                           + stamp.strftime(":%M:%S"))
                money = np.char.mod("%.2f", -amount)
                numeric_ids = np.char.lstrip(np.char.lstrip(ids, "u"), "0")
                lines = np.char.add(np.char.add('auth,"{""amount"":""', money), '""}",')
                lines = np.char.add(np.char.add(lines, np.asarray(created, dtype=str)), ",")
                lines = np.char.add(lines, numeric_ids)
                csv_fh.write("\n".join(lines.tolist()) + "\n")  # type: ignore[union-attr]
            if progress:
                print(f"synth: chunk {c + 1}/{n_chunks}, {total:,} transactions", file=sys.stderr)
        if writer is not None:
            writer.close()
        if csv_fh is not None:
            csv_fh.close()
    return {"users": users, "transactions": total}
