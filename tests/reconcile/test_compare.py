"""Reconciliation on tiny hand-computed fixtures: catalogue rows 42-53 and the dollar decomposition.

The base fixture (worked out by hand):

    delta1.csv  a 100 b1 | b 200 b1 | c 300 b2
    delta2.csv  a 150 b5 | d  50 b5 | e  70 b10
    delta3.csv  b 260 b9 | c 330 b10 | e 90 b9

Rebuild (largest batch, numeric): a 150 (delta2), b 260, c 330 (delta3), d 50, e 70 (delta2: batch
10 beats 9 even though "9" > "10" as text). Total 860.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from spendlab.io.load import connect
from spendlab.reconcile.compare import CAUSES, ReconcileResult, reconcile_tables
from spendlab.reconcile.inputs import load_reconcile_inputs

HEADER = "user_id,total_spend,count_saved_items,loyalty_credits,batch_id"

Row = tuple  # (user_id, total_spend, count_saved_items, loyalty_credits, batch_id)

BASE = {
    "delta1.csv": [("a", 100, 1, 10, 1), ("b", 200, 2, 20, 1), ("c", 300, 3, 30, 2)],
    "delta2.csv": [("a", 150, 2, 15, 5), ("d", 50, 1, 5, 5), ("e", 70, 1, 7, 10)],
    "delta3.csv": [("b", 260, 3, 26, 9), ("c", 330, 4, 33, 10), ("e", 90, 1, 9, 9)],
}
REBUILT = [("a", 150, 2, 15, 5), ("b", 260, 3, 26, 9), ("c", 330, 4, 33, 10), ("d", 50, 1, 5, 5), ("e", 70, 1, 7, 10)]


def csv_text(rows: list[Row]) -> str:
    return HEADER + "\n" + "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in rows)


def run(tmp_path: Path, deltas: dict[str, list[Row]], platform: list[Row], source: list[Row], **kw) -> ReconcileResult:
    d = tmp_path / "deltas"
    d.mkdir(parents=True, exist_ok=True)
    for name, rows in deltas.items():
        (d / name).write_text(csv_text(rows), encoding="utf-8")
    (tmp_path / "platform.csv").write_text(csv_text(platform), encoding="utf-8")
    (tmp_path / "source.csv").write_text(csv_text(source), encoding="utf-8")
    con = connect()
    inputs = load_reconcile_inputs(con, str(d / "*.csv"), tmp_path / "platform.csv", tmp_path / "source.csv")
    return reconcile_tables(inputs, **kw)


def causes(res: ReconcileResult) -> set[tuple]:
    return {(c["cause"], c["side"], c["file"], c["users"], c["amount"]) for c in res.summary["causes"]}


def user(res: ReconcileResult, uid: str) -> dict:
    rows = res.users[res.users["user_id"] == uid]
    assert len(rows) == 1, f"{uid} should have exactly one primary cause"
    return rows.iloc[0].to_dict()


def rebuilt(res: ReconcileResult) -> list[tuple]:
    return [tuple(r) for r in res.con.execute(
        "SELECT user_id, r.s, r.c, r.l, r.b FROM rebuild ORDER BY user_id").fetchall()]


def test_identical_sides_give_no_difference_and_the_hand_computed_rebuild(tmp_path: Path) -> None:
    res = run(tmp_path, BASE, REBUILT, REBUILT)
    assert rebuilt(res) == [(u, float(s), c, float(lc), b) for u, s, c, lc, b in REBUILT]
    s = res.summary
    assert (s["source_total"], s["platform_total"], s["rebuilt_total"], s["gap"]) == (860, 860, 860, 0)
    assert s["causes"] == [] and res.users.empty
    assert s["classes"] == {"MATCH": 5, "MATCH_WITHIN_TOL": 0}


def test_batch_ids_compare_as_numbers_so_10_beats_9(tmp_path: Path) -> None:
    """Row 46: e's batch 10 (delta2) wins over batch 9 (delta3)."""
    res = run(tmp_path, BASE, REBUILT, REBUILT)
    assert res.con.execute("SELECT r.s, r.b, r.f FROM rebuild WHERE user_id = 'e'").fetchone() == (70.0, 10, 1)


def test_missing_delta_explains_every_affected_user_and_names_the_file(tmp_path: Path) -> None:
    """Row 47: the platform never loaded delta3; b and c keep their delta1 rows; e is unaffected."""
    platform = [("a", 150, 2, 15, 5), ("b", 200, 2, 20, 1), ("c", 300, 3, 30, 2), ("d", 50, 1, 5, 5),
                ("e", 70, 1, 7, 10)]
    res = run(tmp_path, BASE, platform, REBUILT)
    assert causes(res) == {("file_not_loaded", "platform", "delta3.csv", 2, 90.0)}
    assert set(res.users["user_id"]) == {"b", "c"}
    assert all(res.users["class"] == "STALE_IN_PLATFORM")
    s = res.summary
    assert (s["gap"], s["explained"], s["unexplained"]) == (90, 90, 0)
    reflects = {f["name"]: (f["platform_reflects"], f["source_reflects"]) for f in s["files"]}
    # every delta1 row is superseded, so neither side can show whether it was loaded
    assert reflects == {"delta1.csv": ("n/a", "n/a"), "delta2.csv": ("yes", "yes"), "delta3.csv": ("no", "yes")}


def test_client_export_predating_the_last_delta_is_a_source_side_missing_file(tmp_path: Path) -> None:
    source = [("a", 150, 2, 15, 5), ("b", 200, 2, 20, 1), ("c", 300, 3, 30, 2), ("d", 50, 1, 5, 5),
              ("e", 70, 1, 7, 10)]
    res = run(tmp_path, BASE, REBUILT, source)
    assert causes(res) == {("file_not_loaded", "source", "delta3.csv", 2, -90.0)}
    assert set(res.users["class"]) == {"AHEAD_OF_CLIENT"}


def test_batch_gap_is_reported_when_batches_should_be_contiguous(tmp_path: Path) -> None:
    deltas = {"delta1.csv": [("a", 1, 1, 1, 1)], "delta2.csv": [("a", 2, 1, 1, 2)], "delta3.csv": [("a", 4, 1, 1, 4)]}
    res = run(tmp_path, deltas, [("a", 4, 1, 1, 4)], [("a", 4, 1, 1, 4)], expect_contiguous_batches=True)
    assert res.summary["batch_gaps"] == [[2, 4]]


def test_one_stale_user_is_stale_row_not_a_missing_file(tmp_path: Path) -> None:
    """b is behind, but c (also from delta3) is current: one file can't explain it."""
    platform = [("a", 150, 2, 15, 5), ("b", 200, 2, 20, 1), ("c", 330, 4, 33, 10), ("d", 50, 1, 5, 5),
                ("e", 70, 1, 7, 10)]
    res = run(tmp_path, BASE, platform, REBUILT)
    assert causes(res) == {("stale_row", "platform", None, 1, 60.0)}
    assert user(res, "b")["detail"] == "platform has batch 1 (delta1.csv), the rebuild batch 9 (delta3.csv)"


def test_same_user_twice_in_one_file_is_flagged_with_both_lines(tmp_path: Path) -> None:
    """Row 42: a appears on lines 2 and 4 of delta2 with the same batch; the rule keeps spend 160."""
    deltas = {**BASE, "delta2.csv": [("a", 150, 2, 15, 5), ("d", 50, 1, 5, 5), ("a", 160, 2, 15, 5),
                                     ("e", 70, 1, 7, 10)]}
    platform = [("a", 150, 2, 15, 5), *REBUILT[1:]]
    source = [("a", 160, 2, 15, 5), *REBUILT[1:]]
    res = run(tmp_path, deltas, platform, source)
    flags = res.flags[res.flags["class"] == "DUP_IN_FILE"]
    assert flags[["user_id", "files", "lines"]].to_dict("records") == [
        {"user_id": "a", "files": ["delta2.csv"], "lines": [2, 4]}]
    assert causes(res) == {("duplicate_in_file", "platform", "delta2.csv", 1, 10.0)}
    assert res.summary["flags"] == {"DUP_IN_FILE": 1}


def _tie_files(swap: bool) -> dict[str, list[Row]]:
    x = [("t", 500, 5, 50, 7), ("u", 10, 1, 1, 1)]
    y = [("t", 480, 9, 40, 7), ("v", 20, 1, 1, 2)]
    return {"delta1.csv": y if swap else x, "delta2.csv": x if swap else y}


@pytest.mark.parametrize("swap", [False, True])
def test_equal_batch_in_two_files_is_a_tie_with_the_same_result_under_either_order(tmp_path: Path,
                                                                                  swap: bool) -> None:
    """Row 43: t has batch 7 in both files with different values; the rule keeps spend 500 either way."""
    summary = [("t", 500, 5, 50, 7), ("u", 10, 1, 1, 1), ("v", 20, 1, 1, 2)]
    res = run(tmp_path, _tie_files(swap), [("t", 480, 9, 40, 7), *summary[1:]], summary)
    assert rebuilt(res)[0] == ("t", 500.0, 5, 50.0, 7)
    tie = res.flags[res.flags["class"] == "TIE_BATCH"].to_dict("records")
    assert [(r["user_id"], r["files"]) for r in tie] == [("t", ["delta1.csv", "delta2.csv"])]
    assert causes(res) == {("batch_tie", "platform", None, 1, 20.0)}
    assert user(res, "t")["class"] == "TIE_BATCH"


def test_equal_batch_with_identical_values_is_info_only(tmp_path: Path) -> None:
    """Row 44."""
    deltas = {"delta1.csv": [("t", 500, 5, 50, 7)], "delta2.csv": [("t", 500, 5, 50, 7)]}
    res = run(tmp_path, deltas, [("t", 500, 5, 50, 7)], [("t", 500, 5, 50, 7)])
    assert res.flags["class"].tolist() == ["DUP_IDENTICAL"]
    assert res.users.empty and res.summary["flags"] == {"DUP_IDENTICAL": 1}


def test_user_in_no_delta_is_missing_in_platform_with_its_sub_cause(tmp_path: Path) -> None:
    """Row 48: z is only in the client export; y's only delta row was rejected."""
    deltas = {**BASE, "delta3.csv": [*BASE["delta3.csv"], ("y", 5, 1, 1, "12a")]}
    source = [*REBUILT, ("z", 40, 1, 1, 3), ("y", 5, 1, 1, 12)]
    res = run(tmp_path, deltas, REBUILT, source)
    z, y = user(res, "z"), user(res, "y")
    assert (z["cause"], z["side"], z["class"]) == ("extra_user", "source", "MISSING_IN_PLATFORM")
    assert "no delta contains this user" in z["detail"]
    assert (y["cause"], y["class"]) == ("rejected_row", "REJECTED_INPUT")
    assert "delta3.csv line 5 (INVALID_BATCH_ID)" in y["detail"]
    assert res.summary["gap"] == 45 and res.summary["explained"] == 45


def test_platform_user_absent_from_client_names_delta_and_batch_of_origin(tmp_path: Path) -> None:
    """Row 49."""
    source = [r for r in REBUILT if r[0] != "d"]
    res = run(tmp_path, BASE, REBUILT, source)
    d = user(res, "d")
    assert (d["cause"], d["side"], d["class"]) == ("missing_user", "source", "MISSING_IN_CLIENT")
    assert d["detail"] == "in the rebuild (delta2.csv line 3, batch 5) but not in the source summary"
    assert causes(res) == {("missing_user", "source", None, 1, -50.0)}


@pytest.mark.parametrize(("platform_spend", "expected"), [
    ("10.0999999", "MATCH_WITHIN_TOL"),
    ("10.095", "MATCH_WITHIN_TOL"),  # exactly on the boundary: money is exact decimals, so <= holds
    ("10.105", "MATCH_WITHIN_TOL"),
    ("10.095001", "MATCH_WITHIN_TOL"),
    ("10.104999", "MATCH_WITHIN_TOL"),
    ("10.094999", "VALUE_MISMATCH"),
    ("10.105001", "VALUE_MISMATCH"),
    ("10.094999999999", "VALUE_MISMATCH"),
])
def test_money_tolerance_boundary(tmp_path: Path, platform_spend: str, expected: str) -> None:
    """Row 50: |a - b| <= 0.005 matches (datacompy's formula with rel_tol 0); just above does not."""
    from decimal import Decimal

    deltas = {"delta1.csv": [("m", 10.1, 1, 0, 3)]}
    res = run(tmp_path, deltas, [("m", platform_spend, 1, 0, 3)], [("m", 10.1, 1, 0, 3)])
    assert expected in res.summary["classes"] and res.summary["classes"][expected] == 1
    if expected == "VALUE_MISMATCH":
        assert causes(res) == {("value_mismatch_same_batch", "platform", None, 1,
                                float(Decimal("10.1") - Decimal(platform_spend)))}
    else:
        assert res.users.empty and res.summary["tolerance"]["abs"] == 0.005


def test_null_is_not_zero(tmp_path: Path) -> None:
    """Row 51: the client's NULL total_spend against 0 is NULL_VS_VALUE, not a match."""
    deltas = {"delta1.csv": [("n", 0, 1, 0, 3)]}
    res = run(tmp_path, deltas, [("n", 0, 1, 0, 3)], [("n", None, 1, 0, 3)])
    n = user(res, "n")
    assert (n["cause"], n["side"], n["class"]) == ("value_mismatch_same_batch", "source", "NULL_VS_VALUE")
    assert res.summary["classes"].get("MATCH", 0) == 0


def test_user_twice_in_client_export_is_nonunique_and_never_a_match(tmp_path: Path) -> None:
    """Row 52: no value comparison for k; its dollars are the sum of its two rows."""
    res = run(tmp_path, BASE, REBUILT, [*REBUILT, ("a", 150, 2, 15, 5)])
    a = user(res, "a")
    assert (a["cause"], a["side"], a["class"], a["file"]) == ("duplicate_in_file", "source",
                                                             "NONUNIQUE_KEY_CLIENT", "source.csv")
    assert res.summary["classes"]["MATCH"] == 4
    diffs = res.con.execute("SELECT \"column\", platform, source FROM user_diffs WHERE user_id = 'a'").fetchall()
    assert diffs == [("rows", "1", "2")]
    assert res.summary["gap"] == 150 and a["amount"] == 150


def test_keys_differing_only_in_format_are_suspects_never_joined(tmp_path: Path) -> None:
    """Row 53: the deltas and the platform say "7", the client "007"."""
    deltas = {"delta1.csv": [("7", 10, 1, 0, 1)]}
    res = run(tmp_path, deltas, [("7", 10, 1, 0, 1)], [("007", 10, 1, 0, 1)])
    assert set(res.users["class"]) == {"KEY_FORMAT_SUSPECT"}
    assert {(r["user_id"], r["cause"], r["side"]) for _, r in res.users.iterrows()} == {
        ("7", "missing_user", "source"), ("007", "extra_user", "source")}
    assert res.summary["users"]["union"] == 2 and res.summary["gap"] == 0


def test_every_differing_user_has_one_cause_and_amounts_sum_to_the_gap(tmp_path: Path) -> None:
    """A mix: missing file (b, c), a corrupted row (a), a dropped user (d), an extra one (z)."""
    platform = [("a", 999, 2, 15, 5), ("b", 200, 2, 20, 1), ("c", 300, 3, 30, 2), ("e", 70, 1, 7, 10),
                ("z", 5, 1, 1, 1)]
    res = run(tmp_path, BASE, platform, REBUILT)
    assert causes(res) == {
        ("file_not_loaded", "platform", "delta3.csv", 2, 90.0),
        ("missing_user", "platform", None, 1, 50.0),
        ("extra_user", "platform", None, 1, -5.0),
        ("value_mismatch_same_batch", "platform", None, 1, -849.0),
    }
    s = res.summary
    assert set(res.users["cause"]) <= set(CAUSES)
    assert res.users["user_id"].is_unique
    assert math.isclose(sum(c["amount"] for c in s["causes"]), s["gap"], abs_tol=1e-9)
    assert math.isclose(s["explained"] + s["unexplained"] + s["within_tolerance"], s["gap"], abs_tol=1e-9)
    assert s["gap"] == 860 - (999 + 200 + 300 + 70 + 5)
    n_classes = sum(s["classes"].values())
    assert n_classes == s["users"]["union"] == 6  # a-e plus z


def test_user_diffs_lists_every_differing_value(tmp_path: Path) -> None:
    platform = [("a", 150, 2, 15, 5), ("b", 200, 2, 20, 1), ("c", 330, 4, 33, 10), ("d", 50, 1, 5, 5),
                ("e", 70, 1, 7, 10)]
    res = run(tmp_path, BASE, platform, REBUILT)
    rows = res.con.execute("SELECT * EXCLUDE (o) FROM user_diffs ORDER BY user_id, o").fetchall()
    assert rows == [
        ("b", "total_spend", "200", "260", "260", "stale_row", "delta3.csv"),
        ("b", "count_saved_items", "2", "3", "3", "stale_row", "delta3.csv"),
        ("b", "loyalty_credits", "20", "26", "26", "stale_row", "delta3.csv"),
        ("b", "batch_id", "1", "9", "9", "stale_row", "delta3.csv"),
    ]


def test_rebuild_equals_a_pandas_oracle_under_shuffled_rows_and_file_names(tmp_path: Path) -> None:
    """Ties, in-file duplicates and numeric batches: the SQL rebuild equals plain pandas, whatever the order."""
    from spendlab.datasets.deltas import rebuild_oracle
    from spendlab.jobs.datasets import generate_deltas

    key = generate_deltas(tmp_path / "g", scenario=["tie", "duplicate"], users=150, files=4, seed=11)
    src = tmp_path / "g" / "inputs" / "deltas"
    frames = {p.name: pd.read_csv(p, dtype={"user_id": str}) for p in sorted(src.glob("*.csv"))}
    oracle = rebuild_oracle(pd.concat(frames.values(), ignore_index=True))
    results = []
    for variant, perm in enumerate([[0, 1, 2, 3], [3, 1, 0, 2]]):
        d = {}
        for new_idx, old in enumerate(perm):
            df = frames[key["delta_files"][old]].sample(frac=1.0, random_state=variant)
            d[f"delta{new_idx + 1}.csv"] = list(df.itertuples(index=False, name=None))
        res = run(tmp_path / f"v{variant}", d, [], [])
        got = rebuilt(res)
        results.append(got)
        assert [g[0] for g in got] == list(oracle.index)
        assert [g[1:] for g in got] == [(float(r.total_spend), r.count_saved_items, float(r.loyalty_credits),
                                         r.batch_id) for r in oracle.itertuples()]
        assert res.summary["flags"]["TIE_BATCH"] == len(next(f for f in key["faults"] if f["cause"] == "batch_tie")
                                                        ["users"])
    assert results[0] == results[1]


def test_batch_zero_users_are_reconciled_and_counted_in_the_totals(tmp_path: Path) -> None:
    """A delta export that starts at batch 0: its users are in the rebuild and both totals, nothing differs."""
    deltas = {"delta0.csv": [("a", 10, 1, 1, 0), ("b", 20, 2, 2, 0)], "delta1.csv": [("a", 15, 1, 1, 1)]}
    summary = [("a", 15, 1, 1, 1), ("b", 20, 2, 2, 0)]
    res = run(tmp_path, deltas, summary, summary)
    assert res.summary["rebuilt_total"] == res.summary["source_total"] == res.summary["platform_total"] == 35
    assert res.summary["causes"] == [] and res.summary["gap"] == 0


def test_a_rejected_client_summary_row_is_reported_as_rejected_not_missing(tmp_path: Path) -> None:
    d = tmp_path / "deltas"
    d.mkdir()
    (d / "delta1.csv").write_text(csv_text(REBUILT), encoding="utf-8")
    (tmp_path / "platform.csv").write_text(csv_text(REBUILT), encoding="utf-8")
    bad = csv_text(REBUILT).replace("d,50,1,5,5", "d,5O,1,5,5")  # letter O: INVALID_NUMBER
    (tmp_path / "source.csv").write_text(bad, encoding="utf-8")
    res = reconcile_tables(load_reconcile_inputs(connect(), str(d / "*.csv"), tmp_path / "platform.csv",
                                                 tmp_path / "source.csv"))
    row = user(res, "d")
    assert (row["side"], row["class"]) == ("source", "REJECTED_INPUT")
    assert "source.csv line 5 (INVALID_NUMBER)" in row["detail"]
    assert "missing from" not in row["detail"]


def test_the_client_reply_says_which_side_lacks_a_user(tmp_path: Path) -> None:
    from spendlab.reconcile.render import client_reply, engineer_note

    only_client_lacks = run(tmp_path / "a", BASE, REBUILT, [r for r in REBUILT if r[0] != "d"])
    reply = client_reply(only_client_lacks.summary)
    assert "missing from our table" not in reply
    assert "missing from your summary" in reply
    assert "(source)" in engineer_note(only_client_lacks.summary)
    only_platform_lacks = run(tmp_path / "b", BASE, [r for r in REBUILT if r[0] != "d"], REBUILT)
    assert "missing from our table" in client_reply(only_platform_lacks.summary)


def test_totals_of_17_and_more_digits_compare_exactly(tmp_path: Path) -> None:
    """10000000000000001 and 10000000000000000 differ by one cent-free dollar; doubles call them equal."""
    deltas = {"delta1.csv": [("a", 10000000000000001, 1, 1, 1)]}
    res = run(tmp_path, deltas, [("a", 10000000000000000, 1, 1, 1)], [("a", 10000000000000001, 1, 1, 1)])
    assert res.summary["source_total"] == 10000000000000001
    assert res.summary["platform_total"] == 10000000000000000
    assert res.summary["gap"] == 1
    assert [(c["cause"], c["side"], c["amount"]) for c in res.summary["causes"]] == [
        ("value_mismatch_same_batch", "platform", 1)]


@pytest.mark.parametrize("value", ["9" * 21, "1" + "0" * 400, "1.1234567890123"])
def test_money_beyond_the_exact_range_is_rejected_not_rounded(tmp_path: Path, value: str) -> None:
    d = tmp_path / "deltas"
    d.mkdir()
    (d / "delta1.csv").write_text(f"{HEADER}\na,{value},1,1,1\nb,5,1,1,1\n", encoding="utf-8")
    for name in ("platform.csv", "source.csv"):
        (tmp_path / name).write_text(f"{HEADER}\nb,5,1,1,1\n", encoding="utf-8")
    con = connect()
    inputs = load_reconcile_inputs(con, str(d / "*.csv"), tmp_path / "platform.csv", tmp_path / "source.csv")
    assert (inputs.deltas[0].report.accepted, inputs.deltas[0].report.rejected) == (1, 1)
    res = reconcile_tables(inputs)
    assert res.summary["rebuilt_total"] == 5 and all(math.isfinite(res.summary[k]) for k in ("gap", "source_total"))
