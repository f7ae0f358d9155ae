"""Format describe's numbers for the CSVs and the report alike.

Money to cents (with an optional currency), shares as percentages, dates as dates, counts with
thousands separators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from spendlab.errors import ConfigError
from spendlab.io.rejects import neutralise_formula

#: Columns written rounded to cents, wherever they appear.
MONEY_COLUMNS = frozenset({
    "spend", "total_spend", "avg_transaction_value", "refunds", "net_spend", "prev_spend", "change",
    "total_increase", "total_decrease", "net_change", "spend_per_active_user", "mean_spend_per_active_user",
    "median_spend_per_active_user", "amount",
})


def cents(value: float) -> Decimal:
    """Round money to cents, ties away from zero, as DuckDB rounds the exact decimal sums.

    Sums arrive from DuckDB as exact decimals converted to float; ``repr`` gives back their decimal
    digits, so ``1.005`` becomes ``1.01`` here as it does in the DuckDB-written CSVs.
    """
    return Decimal(repr(float(value))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _fmt_cell(col: str, value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if col in MONEY_COLUMNS:
        return str(cents(float(value)))
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.2f}"
    return str(value)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Strings as they are written: money to cents, dates ISO, formula-like text neutralised."""
    out = pd.DataFrame({col: [neutralise_formula(_fmt_cell(col, v)) for v in df[col]] for col in df.columns},
                       columns=list(df.columns))
    return out


#: Shares (0..1) shown as percentages in the HTML (the CSVs keep the fraction).
SHARE_COLUMNS = frozenset({"share_of_spend", "retention", "returning_share", "top_share_of_users", "user_share",
                           "spend_share", "pct_change"})


#: Integer columns that are labels, not counts: no thousands separator.
LABEL_COLUMNS = frozenset({"iso_year", "iso_week", "weekday", "hour", "rank", "days_with_spend",
                           "months_since_first"})


#: Column headers in the HTML (anything else: underscores become spaces).
LABELS = {
    "n_transactions": "transactions", "n_spend_transactions": "spend transactions", "n_refunds": "refunds (n)",
    "refunds": "refunds", "avg_transaction_value": "avg transaction", "total_spend": "total spend",
    "mean_spend_per_active_user": "mean spend per active user",
    "median_spend_per_active_user": "median spend per active user", "spend_per_active_user": "spend per active user",
    "share_of_spend": "share of spend", "top_share_of_users": "top share of users", "prev_spend": "previous spend",
    "pct_change": "change (%)", "user_id": "user", "weekday_name": "day", "period_start": "period",
    "days_with_spend": "days with spend", "user_weeks": "user-weeks", "net_spend": "net spend",
}


#: Symbols written before amounts for the common currencies; other ISO codes are written before the number.
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5", "CNY": "\u00a5", "INR": "\u20b9",
                    "KRW": "\u20a9", "BRL": "R$", "CAD": "CA$", "AUD": "A$"}


def check_currency(currency: str | None) -> str | None:
    """Check an ISO 4217 code (three letters, upper-cased) or None; anything else is an error."""
    if currency is None or currency == "":
        return None
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ConfigError(f"currency must be a three-letter ISO 4217 code such as USD or EUR, got {currency!r}")
    return code


def money_formatter(currency: str | None) -> Callable[[float], str]:
    """``1234.5 -> "1,234.50"``, with ``currency="USD"`` ``"$1,234.50"`` (``"CHF 1,234.50"`` without a symbol)."""
    code = check_currency(currency)
    prefix = "" if code is None else CURRENCY_SYMBOLS.get(code, code + "\u00a0")

    def fmt(value: float) -> str:
        amount = cents(float(value))
        return f"{'-' if amount < 0 else ''}{prefix}{abs(amount):,.2f}"

    return fmt


def format_date(value: object) -> str:
    """Format a day as ``YYYY-MM-DD``; a time of day only when there is one (``YYYY-MM-DD HH:MM UTC``)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def format_share(value: float, *, signed: bool = False) -> str:
    """Format a fraction as a percentage with enough digits to be non-zero: 0.0000312 -> ``0.0031%``."""
    pct = 100 * float(value)
    sign = "+" if signed and pct > 0 else ""
    if pct == 0:
        return "0%"
    if abs(pct) < 0.1:
        return f"{sign}{pct:.2g}%"
    return f"{sign}{pct:,.1f}%"


def display_cell(col: str, value: object, money: Callable[[float], str]) -> str:
    """One table cell as shown in a report: a dash for missing, dates, shares, money and counts formatted.

    Parameters
    ----------
    col : str
        The column's name (share and money columns are recognised by it).
    value : object
        The cell's value.
    money : callable
        Formats an amount of money.

    Returns
    -------
    str
        The displayed text.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "\u2013"
    if isinstance(value, (pd.Timestamp, dt.date, dt.datetime)):
        return format_date(value)
    if isinstance(value, str):
        return value
    if col in MONEY_COLUMNS:
        return money(float(value))  # type: ignore[arg-type]
    if col in SHARE_COLUMNS:
        return format_share(float(value), signed=(col == "pct_change"))  # type: ignore[arg-type]
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value)) if col in LABEL_COLUMNS else f"{int(value):,}"
    if isinstance(value, (float, np.floating)):  # counts summed in DuckDB arrive as floats
        x = float(value)
        if x.is_integer() or abs(x) >= 1000:
            return f"{x:.0f}" if col in LABEL_COLUMNS else f"{x:,.0f}"
        return f"{x:.4g}"
    return str(value)


def rounded_summary(summary: dict[str, object]) -> dict[str, object]:
    """``summary.json`` content: money rounded to cents, everything else as computed."""
    money = {"total_spend", "avg_transaction_value", "refund_amount", "net_spend"}
    return {k: (float(cents(v)) if k in money and isinstance(v, float) else v) for k, v in summary.items()}
