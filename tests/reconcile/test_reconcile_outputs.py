"""run_reconcile's files, escaping of hostile ids, atomic reruns, and the CLI's exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from spendlab.errors import InputFileError
from spendlab.jobs.reconcile import run_reconcile

HEADER = "user_id,total_spend,count_saved_items,loyalty_credits,batch_id"
SCRIPT_ID = "<script>alert(1)</script>"
FORMULA_ID = "=HYPERLINK(\"http://x\")"


def _csv_line(row: tuple) -> str:
    out = []
    for v in row:
        text = "" if v is None else str(v)
        out.append('"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"') else text)
    return ",".join(out)


def write_csv(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "".join(_csv_line(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def case(tmp_path: Path) -> dict:
    """Three deltas plus junk; the platform missed delta3 and lost the hostile users' rows."""
    d = tmp_path / "in" / "deltas"
    write_csv(d / "delta1.csv", [("a", 100, 1, 10, 1), ("b", 200, 2, 20, 1), (SCRIPT_ID, 30, 1, 1, 1),
                                 (FORMULA_ID, 40, 1, 1, 1), ("p|ipe", 5, 1, 1, 1)])
    write_csv(d / "delta2.csv", [("a", 150, 2, 15, 5)])
    write_csv(d / "delta10.csv", [("b", 260, 3, 26, 9), ("c", 12, 1, 1, 9)])
    (d / "delta11.csv").write_bytes(b"")
    (d / "delta12.csv").write_text(HEADER + "\n", encoding="utf-8")
    (d / "summary.csv").write_text("x\n", encoding="utf-8")
    (d / ".DS_Store").write_bytes(b"\x00\x01")
    rebuilt = [("a", 150, 2, 15, 5), ("b", 260, 3, 26, 9), ("c", 12, 1, 1, 9), (SCRIPT_ID, 30, 1, 1, 1),
               (FORMULA_ID, 40, 1, 1, 1), ("p|ipe", 5, 1, 1, 1)]
    platform = [("a", 150, 2, 15, 5), ("b", 200, 2, 20, 1), ("p|ipe", 5, 1, 1, 1)]
    return {"deltas": str(d / "*"), "platform": write_csv(tmp_path / "in" / "platform.csv", platform),
            "source": write_csv(tmp_path / "in" / "client.csv", rebuilt), "out": tmp_path / "out"}


def run(case: dict) -> dict:
    return run_reconcile(case["deltas"], case["platform"], case["source"], case["out"])


def test_summary_json_has_totals_files_and_causes(case: dict) -> None:
    s = run(case)
    on_disk = json.loads((case["out"] / "summary.json").read_text())
    assert on_disk["gap"] == s["gap"] == (150 + 260 + 12 + 30 + 40 + 5) - (150 + 200 + 5)
    assert (on_disk["source_total"], on_disk["platform_total"], on_disk["rebuilt_total"]) == (497, 355, 497)
    assert on_disk["explained"] == 142 and on_disk["unexplained"] == 0
    files = {f["name"]: f for f in on_disk["files"]}
    assert list(files) == ["delta1.csv", "delta2.csv", "delta10.csv", "delta11.csv", "delta12.csv"]
    assert (files["delta11.csv"]["status"], files["delta12.csv"]["status"]) == ("EMPTY_DELTA", "HEADER_ONLY")
    assert {"name", "status", "rows", "users", "batch_min", "batch_max", "rejected", "platform_reflects",
            "source_reflects"} <= set(files["delta10.csv"])
    assert (files["delta10.csv"]["rows"], files["delta10.csv"]["users"], files["delta10.csv"]["batch_min"],
            files["delta10.csv"]["batch_max"], files["delta10.csv"]["rejected"]) == (2, 2, 9, 9, 0)
    assert (files["delta10.csv"]["platform_reflects"], files["delta10.csv"]["source_reflects"]) == ("no", "yes")
    assert on_disk["ignored_files"] == [".DS_Store", "summary.csv"]
    assert {(c["cause"], c["side"], c["file"], c["users"], c["amount"]) for c in on_disk["causes"]} == {
        ("file_not_loaded", "platform", "delta10.csv", 2, 72.0),
        ("missing_user", "platform", None, 2, 70.0),
    }


def test_user_diffs_csv_has_the_documented_columns_and_neutralised_formulas(case: dict) -> None:
    run(case)
    with open(case["out"] / "user_diffs.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["user_id", "column", "platform", "source", "rebuilt", "cause", "file"]
    ids = {r[0] for r in rows[1:]}
    assert ids == {"b", "c", SCRIPT_ID, "'" + FORMULA_ID}
    assert ["c", "total_spend", "", "12", "12", "file_not_loaded", "delta10.csv"] in rows


def test_reports_escape_hostile_ids(case: dict) -> None:
    run(case)
    html = (case["out"] / "report.html").read_text(encoding="utf-8")
    assert SCRIPT_ID not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.tags.append(tag)

    parser = Tags()
    parser.feed(html)
    assert "script" not in parser.tags and parser.tags.count("table") >= 3
    md = (case["out"] / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_reports_carry_headline_tables_and_both_messages(case: dict) -> None:
    run(case)
    md = (case["out"] / "report.md").read_text(encoding="utf-8")
    for text in ("Gap (source - platform) | 142.00", "## Delta files", "## Causes", "## Worked examples",
                 "Message for the platform's backend engineer", "Reply to the client's marketing lead",
                 "delta10.csv has 2 rows, batches 9-9", "Your figures are right"):
        assert text in md, text


def test_rerun_is_idempotent_and_byte_identical(case: dict) -> None:
    run(case)
    first = {p.name: p.read_bytes() for p in case["out"].iterdir()}
    run(case)
    assert {p.name: p.read_bytes() for p in case["out"].iterdir()} == first
    assert not [p for p in case["out"].parent.iterdir() if p.name.startswith(".out")]


def test_failed_run_leaves_the_previous_outputs_untouched(case: dict) -> None:
    run(case)
    before = (case["out"] / "summary.json").read_bytes()
    case["platform"].write_bytes(b"")
    with pytest.raises(InputFileError, match="platform.csv"):
        run(case)
    assert (case["out"] / "summary.json").read_bytes() == before


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spendlab.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.slow
def test_cli_exit_codes(case: dict, tmp_path: Path) -> None:
    base = ["reconcile", "--deltas", case["deltas"], "--platform", str(case["platform"]),
            "--source", str(case["source"]), "--out", str(case["out"])]
    ran = _cli(*base)
    assert ran.returncode == 0, ran.stderr
    assert "file_not_loaded" in ran.stdout
    assert _cli(*base, "--fail-on-diff").returncode == 3
    clean = [*base[:4], str(case["source"]), *base[5:]]
    assert _cli(*clean, "--fail-on-diff").returncode == 0
    missing = _cli("reconcile", "--deltas", str(tmp_path / "none" / "*"), "--platform", "p", "--source", "s",
                   "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no delta file matches" in missing.stderr


@pytest.mark.slow
def test_cli_datasets_deltas_writes_inputs_and_key(tmp_path: Path) -> None:
    ran = _cli("datasets", "deltas", "--scenario", "missing_file+corrupt", "--users", "60", "--files", "3",
               "--seed", "4", "--out", str(tmp_path / "g"))
    assert ran.returncode == 0, ran.stderr
    key = json.loads((tmp_path / "g" / "answer_key.json").read_text())
    assert {f["cause"] for f in key["faults"]} == {"file_not_loaded", "value_mismatch_same_batch"}
    assert sorted(p.name for p in (tmp_path / "g" / "inputs" / "deltas").iterdir()) == [
        "delta1.csv", "delta2.csv", "delta3.csv"]
