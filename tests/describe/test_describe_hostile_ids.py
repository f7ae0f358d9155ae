"""Catalogue rows 31-32: formula-like and markup user ids are data, never code, in every output."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from spendlab.io import load_transactions
from spendlab.io.rejects import neutralise_formula
from spendlab.jobs.describe import run_describe

HOSTILE = {
    "script": "<script>alert(1)</script>",  # the top spender, so it reaches the takeaway and every table
    "hyperlink": '=HYPERLINK("http://evil.example","x")',
    "at": "@SUM(A1)",
    "minus_formula": "-2+3*cmd|' /C calc'!A0",
    "attr": '"><img src=x onerror=alert(1)>',
    "mathtext": "$x^2$ \\frac",
    "plus_number": "+1",  # a plain number is data (neutralise_formula semantics)
}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile_out(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    src = base / "hostile.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "ts", "amount"])
        for i, uid in enumerate(HOSTILE.values()):
            amount = 900.0 if uid.startswith("<script>") else 10.0 + i
            w.writerow([uid, f"2022-01-{3 + i:02d}T10:00:00Z", f"{amount:.2f}"])
            w.writerow([uid, f"2022-02-{3 + i:02d}T10:00:00Z", f"{amount + 1:.2f}"])
    tx = load_transactions(str(src), "generic")
    assert tx.report.rejected == 0
    out = base / "out"
    run_describe(tx, out, top_n=10)
    return out


@pytest.mark.parametrize("name", ["avg_transaction_value_per_user.csv", "monthly_spend_per_user.csv",
                                  "days_spent_per_week.csv", "insights/mom_change_per_user.csv",
                                  "insights/top_spenders.csv", "insights/bottom_spenders.csv",
                                  "insights/mom_top_movers.csv"])
def test_csv_user_ids_are_neutralised_like_neutralise_formula(hostile_out: Path, name: str) -> None:
    with open(hostile_out / name, newline="", encoding="utf-8") as fh:
        ids = {row["user_id"] for row in csv.DictReader(fh)}
    assert ids <= {neutralise_formula(u) for u in HOSTILE.values()}
    assert ids, name
    for uid in ids:
        if uid[:1] in ("=", "@") or uid.startswith("-2+"):
            pytest.fail(f"{name}: formula cell {uid!r} was written raw")
    if name == "avg_transaction_value_per_user.csv":
        for key in ("hyperlink", "at", "minus_formula"):
            assert "'" + HOSTILE[key] in ids
        assert HOSTILE["plus_number"] in ids and HOSTILE["script"] in ids


def test_html_escapes_ids_and_contains_no_injected_markup(hostile_out: Path) -> None:
    html = (hostile_out / "report.html").read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(html)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags
    assert all("onerror" not in attrs for _, attrs in parser.tags)
    assert all(attrs.get("src", "").startswith("data:image/png;base64,") for t, attrs in parser.tags if t == "img")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = "".join(parser.text)
    assert "The top spender, user <script>alert(1)</script>, spent 1,801.00" in text  # shown as text, escaped


def test_summary_is_valid_json_with_hostile_ids(hostile_out: Path) -> None:
    s = json.loads((hostile_out / "summary.json").read_text())
    assert s["n_users"] == len(HOSTILE)
    assert s["n_transactions"] == 2 * len(HOSTILE)
