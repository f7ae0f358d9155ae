"""Every generated scenario and every two-fault combination, checked against its answer key.

Acceptance (issue 8): the injected causes are recovered with 0 unexplained dollars, and no cause is
claimed that was not injected. The generator's answer key lives beside, never inside, the inputs.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from spendlab.datasets.deltas import SCENARIOS
from spendlab.jobs.datasets import generate_deltas
from spendlab.jobs.reconcile import run_reconcile

FAULTS = [s for s in SCENARIOS if s != "clean"]
CASES = [[s] for s in SCENARIOS] + [list(pair) for pair in itertools.combinations(FAULTS, 2)]


def _run(tmp_path: Path, scenario: list[str], seed: int) -> tuple[dict, dict, list[dict]]:
    out = tmp_path / "scenario"
    key = generate_deltas(out, scenario=scenario, users=150, files=4, seed=seed)
    inputs = out / "inputs"
    assert not list(inputs.rglob("answer_key*")), "the job must never see the answer key"
    summary = run_reconcile(str(inputs / "deltas" / "*.csv"), inputs / "platform_summary.csv",
                            inputs / "client_summary.csv", tmp_path / "report")
    with open(tmp_path / "report" / "user_causes.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return key, summary, rows


@pytest.mark.parametrize("scenario", CASES, ids=["+".join(c) for c in CASES])
def test_diagnosis_matches_the_answer_key(tmp_path: Path, scenario: list[str]) -> None:
    seed = 1000 + CASES.index(scenario)
    key, summary, rows = _run(tmp_path, scenario, seed)
    expected = {(f["cause"], f["side"], f["file"]): f for f in key["faults"]}
    assert all(f["users"] for f in key["faults"]), "every injected fault touches at least one user"
    got = {(c["cause"], c["side"], c["file"]): c for c in summary["causes"]}
    assert set(got) == set(expected), "causes claimed must be exactly the injected ones"
    for k, fault in expected.items():
        assert got[k]["users"] == len(fault["users"]), k
        assert got[k]["amount"] == pytest.approx(fault["amount"]), k
        claimed = sorted(r["user_id"] for r in rows if (r["cause"], r["side"], r["file"] or None) == k)
        assert claimed == fault["users"], k
    assert summary["unexplained"] == 0 and summary["users"]["unexplained"] == 0
    assert summary["gap"] == key["gap"]
    assert summary["source_total"] == key["source_total"] and summary["platform_total"] == key["platform_total"]
    assert summary["explained"] == pytest.approx(key["gap"])


def test_generator_is_deterministic_and_keeps_the_key_apart(tmp_path: Path) -> None:
    a = generate_deltas(tmp_path / "a", scenario=["missing_file", "tie"], users=80, files=3, seed=5)
    b = generate_deltas(tmp_path / "b", scenario=["missing_file", "tie"], users=80, files=3, seed=5)
    assert a == b
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert [str(p) for p in files_a] == ["answer_key.json", "inputs/client_summary.csv", "inputs/deltas/delta1.csv",
                                         "inputs/deltas/delta2.csv", "inputs/deltas/delta3.csv",
                                         "inputs/platform_summary.csv"]
    for p in files_a:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
    assert json.loads((tmp_path / "a" / "answer_key.json").read_text())["faults"][0]["cause"] in {
        "batch_tie", "file_not_loaded"}


def test_generator_refuses_a_fault_it_cannot_place() -> None:
    from spendlab.errors import ConfigError

    with pytest.raises(ConfigError, match="leaves no user for batch_tie"):
        generate_deltas("/nonexistent/never-written", scenario=["missing_file", "tie"], users=60, files=2, seed=0)
