"""Reconcile tells the client the truth: rejected rows are their own cause, compressed exports are
refused by name, keys follow the transaction readers' rule, and the client reply and the engineer
note come from one decision (every cause checked against both texts)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from spendlab.reconcile.compare import CAUSES, SIDES
from spendlab.reconcile.decision import action, decide
from spendlab.reconcile.render import client_reply, engineer_note
from tests.reconcile.test_compare import BASE, REBUILT, csv_text, run, user
from tests.reliability.cli_harness import run_cli


@pytest.mark.parametrize("bad", ["5O", "-5", "1.2.3", "1e3", "5\x00"])
def test_a_rejected_client_summary_row_is_its_own_cause_in_totals_and_both_texts(tmp_path: Path, bad: str) -> None:
    source = [r if r[0] != "d" else ("d", bad, 1, 5, 5) for r in REBUILT]
    res = run(tmp_path, BASE, REBUILT, source)
    d = user(res, "d")
    assert (d["cause"], d["side"], d["class"]) == ("rejected_row", "source", "REJECTED_INPUT")
    assert [(c["cause"], c["side"], c["users"]) for c in res.summary["causes"]] == [("rejected_row", "source", 1)]
    assert res.summary["users"]["unexplained"] == 0
    reply, note = client_reply(res.summary), engineer_note(res.summary)
    assert "missing from your summary" not in reply and "could not be read" in reply
    assert "Please re-export the rows we could not read" in reply and "We correct our side" not in reply
    assert "Ask the client to re-export" in note and "Backfill" not in note


def test_rejected_delta_rows_are_their_own_cause_not_an_extra_user(tmp_path: Path) -> None:
    deltas = {**BASE, "delta3.csv": [*BASE["delta3.csv"], ("y", 5, 1, 1, "12a")]}
    res = run(tmp_path, deltas, REBUILT, [*REBUILT, ("y", 5, 1, 1, 12)])
    assert user(res, "y")["cause"] == "rejected_row"
    reply = client_reply(res.summary)
    assert "could not be read" in reply and "in none of the exports" not in reply
    assert "Please re-export the rows we could not read" in reply


@pytest.mark.parametrize("key", ["a\x00", "\x00", "b\x1b[31m", "c\u200b", "d\u202e", "e\x7f", "f\u2028g"])
@pytest.mark.parametrize("where", ["delta", "platform", "source"])
def test_keys_the_transaction_readers_reject_are_rejected_rows_with_file_and_line(tmp_path: Path, key: str,
                                                                                  where: str) -> None:
    row = (key, 10, 1, 1, 3)
    deltas = {**BASE, "delta3.csv": [*BASE["delta3.csv"], row]} if where == "delta" else BASE
    res = run(tmp_path, deltas, [*REBUILT, row] if where == "platform" else REBUILT,
              [*REBUILT, row] if where == "source" else REBUILT)
    rejects = res.con.execute("SELECT dataset, file, line, error_type FROM rejects").fetchall()
    name = {"delta": "delta3.csv", "platform": "platform.csv", "source": "source.csv"}[where]
    line = 5 if where == "delta" else 7
    assert [(r[0], Path(r[1]).name, r[2], r[3]) for r in rejects] == [(where, name, line, "INVALID_KEY")]
    reported = res.con.execute("SELECT count(*) FROM user_causes WHERE user_id = ?", [key]).fetchall()[0][0]
    assert reported == 0 or where != "delta"  # a rejected delta key never becomes a user of the rebuild
    assert key not in set(res.con.execute("SELECT user_id FROM deltas").df()["user_id"])


@pytest.mark.parametrize("suffix", [".gz", ".zst", ".bz2", ".zip", ".xz", ".GZ"])
@pytest.mark.parametrize("given", ["glob", "folder"])
def test_a_compressed_delta_export_is_refused_by_name_never_ignored(tmp_path: Path, suffix: str, given: str) -> None:
    d = tmp_path / "deltas"
    d.mkdir()
    for name, rows in BASE.items():
        (d / name).write_text(csv_text(rows))
    (d / "delta4.csv").unlink(missing_ok=True)
    (d / f"delta4.csv{suffix}").write_bytes(gzip.compress(csv_text([("z", 1, 1, 1, 20)]).encode()))
    (tmp_path / "p.csv").write_text(csv_text(REBUILT))
    res = run_cli(["reconcile", "--deltas", str(d / "*") if given == "glob" else str(d), "--platform", str(tmp_path / "p.csv"), "--source",
                   str(tmp_path / "p.csv"), "--out", str(tmp_path / "out")])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.code == 2 and len(lines) == 1 and f"delta4.csv{suffix}" in lines[0] and "compressed" in lines[0]
    assert not (tmp_path / "out").exists()


def test_differences_of_1e14_and_more_are_exact(tmp_path: Path) -> None:
    big = 123456789012345678  # 18 digits: above 1e14 and beyond float64's exact integers
    res = run(tmp_path, {"delta1.csv": [("a", big, 1, 1, 1)]}, [("a", 0, 1, 1, 1)], [("a", big, 1, 1, 1)])
    assert res.summary["gap"] == big and res.summary["platform_total"] == 0
    assert [(c["cause"], c["amount"]) for c in res.summary["causes"]] == [("value_mismatch_same_batch", big)]


PAIRS = [(c, s) for c in CAUSES for s in SIDES]


def _summary(pairs: list[tuple[str, str]]) -> dict:
    causes = [{"cause": c, "side": s, "file": "delta2.csv", "users": 3, "amount": 10.0} for c, s in pairs]
    return {"causes": causes, "users": {"unexplained": sum(3 for c, _ in pairs if c == "unexplained")},
            "gap": 10.0 * len(pairs), "source_total": 100.0, "platform_total": 90.0, "rebuilt_total": 100.0,
            "explained": 10.0, "unexplained": 0.0, "files": [], "flags": {}, "tie_rule": "largest"}


@pytest.mark.parametrize("pairs", [[p] for p in PAIRS] + [list(c) for c in itertools.combinations(PAIRS, 2)],
                         ids=lambda ps: "+".join(f"{c}@{s}" for c, s in ps))
def test_every_cause_says_the_same_thing_to_the_client_and_to_the_engineer(pairs: list[tuple[str, str]]) -> None:
    summary = _summary(pairs)
    reply, note = client_reply(summary), engineer_note(summary)
    owners = {action(c, s).owner for c, s in pairs}
    assert decide(summary).owners == owners
    for c, s in pairs:
        a = action(c, s)
        assert a.client_text.format(users="3", file="delta2.csv") in reply
        assert a.fix in note
    # who acts, stated alike in both texts
    assert ("We correct our side" in reply) == ("platform" in owners) == ("Backfill" in note)
    assert ("Please re-export" in reply) == ("client" in owners) == ("Ask the client to re-export" in note)
    assert ("You don't need to send anything" in reply) == ("client" not in owners)
    assert ("keep investigating" in reply) == ("investigate" in owners)
    if owners == {"client"}:
        assert "The difference is on our side" not in reply and "reload" not in reply
    if owners == {"platform"}:
        assert "your summary differs" not in reply
