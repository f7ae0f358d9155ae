"""How ``report.html`` writes values: days, percentages, money with a currency, one caption per table."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spendlab.describe.formats import check_currency, format_date, format_share, money_formatter
from spendlab.describe.insights import cohort_matrix
from spendlab.errors import ConfigError
from spendlab.io import load_transactions
from spendlab.jobs.describe import run_describe

FIXTURE = Path(__file__).parent / "fixtures" / "describe_small.csv"


def test_shares_are_percentages_with_enough_digits_to_be_non_zero() -> None:
    assert format_share(3.1192e-05) == "0.0031%"
    assert format_share(0.15876) == "15.9%"
    assert format_share(0.0) == "0%"
    assert format_share(2.98735, signed=True) == "+298.7%"


def test_dates_are_days_unless_there_is_a_time_of_day() -> None:
    assert format_date(pd.Timestamp("1997-01-01T00:00:00")) == "1997-01-01"
    assert format_date(pd.Timestamp("2022-01-03 08:00", tz="UTC")) == "2022-01-03 08:00 UTC"


def test_money_takes_the_currency_symbol_or_code() -> None:
    assert money_formatter(None)(1234.5) == "1,234.50"
    assert money_formatter("usd")(-5.005) == "-$5.01"
    assert money_formatter("CHF")(10) == "CHF\u00a010.00"
    with pytest.raises(ConfigError, match="ISO 4217"):
        check_currency("dollars")


def test_cohort_matrix_writes_zero_for_a_cohort_that_never_came_back() -> None:
    months = ["2022-01", "2022-01", "2022-01", "2022-02", "2022-03", "2022-03", "2022-04"]
    cohorts = pd.DataFrame({"cohort_month": months,
                            "months_since_first": [0, 1, 3, 0, 0, 1, 0],
                            "active_users": [10, 5, 2, 1, 4, 1, 3], "cohort_size": [10, 10, 10, 1, 4, 4, 3],
                            "retention": [1.0, 0.5, 0.2, 1.0, 1.0, 0.25, 1.0]})
    mat = cohort_matrix(cohorts)
    # data ends 2022-04: 2022-02 has months 1-2 observed (zeros), 2022-04 has none (left out)
    assert list(mat.index) == ["2022-01", "2022-02", "2022-03"]
    np.testing.assert_array_equal(mat.to_numpy(), [[0.5, 0.0, 0.2], [0.0, 0.0, np.nan], [0.25, np.nan, np.nan]])


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("fmt") / "out"
    run_describe(load_transactions(str(FIXTURE), "generic"), out, top_n=5, currency="USD")
    return (out / "report.html").read_text(encoding="utf-8")


def test_report_writes_period_as_days_money_in_dollars_and_shares_in_percent(html: str) -> None:
    assert "<dd>2021-12-27 to 2022-02-15</dd>" in html
    assert "T00:00:00" not in html and "T10:00:00" not in html
    assert "<dd>$190.00</dd>" in html and "Money is in USD" in html
    assert re.search(r"<td class=\"num\">52\.6%</td>", html)  # u2's share of spend, 100 / 190


def test_every_table_has_its_caption_and_the_bottom_spenders_are_shown(html: str) -> None:
    tables = re.findall(r"<table>\s*<caption>([^<]+)</caption>", html)
    assert len(tables) == html.count("<table>")
    assert tables.index("Top 5 spenders") + 1 == tables.index("Bottom 5 spenders (lowest positive gross spend)")
    bottom = html.split("Bottom 5 spenders")[1].split("</table>")[0]
    assert [u for u in re.findall(r'title="(u\d)"', bottom)] == ["u3", "u1", "u2"]  # lowest gross spend first
