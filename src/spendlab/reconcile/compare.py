"""Reconcile a platform's user summary and a client's export against the delta files they came from.

The pure part of ``spendlab reconcile``: from the tables :mod:`spendlab.reconcile.inputs` loaded, rebuild
the expected summary (the largest ``batch_id`` per user, ties broken by value and reported), compare it
with both sides per user and column, and give every differing user exactly one primary cause from a
closed list, with ``explained + unexplained + within_tolerance == gap``. Rendering and writing live in
:mod:`spendlab.reconcile.render`. The rules and their reasons: ``docs/reconcile.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import duckdb
import pandas as pd

from spendlab.errors import SpendlabError
from spendlab.reconcile.causes import SIDE_KEY, find_missing_files, side_causes
from spendlab.reconcile.inputs import ReconcileInputs
from spendlab.reconcile.validate import MONEY_SQL_TYPE, VALUE_COLUMNS

CAUSES: tuple[str, ...] = (
    "file_not_loaded",
    "stale_row",
    "missing_user",
    "extra_user",
    "rejected_row",
    "batch_tie",
    "duplicate_in_file",
    "value_mismatch_same_batch",
    "unexplained",
)
SIDES: tuple[str, ...] = ("platform", "source")


@dataclass
class ReconcileResult:
    """What the comparison found.

    ``summary`` is the JSON-able headline (totals, gap, files, causes, flags); ``flags`` lists
    delta-level findings (``class, user_id, files, lines, detail``). The per-user tables stay in
    DuckDB on ``con`` (they can hold millions of rows): ``user_causes`` (one row per differing user:
    ``user_id, cause, side, file, class, detail, amount, p_spend, s_spend, r_spend, secondary``),
    ``user_diffs`` and ``rejects``; :attr:`users` reads ``user_causes`` into pandas for small runs.
    """

    summary: dict
    flags: pd.DataFrame
    con: duckdb.DuckDBPyConnection
    file_names: list[str] = field(default_factory=list)

    @property
    def users(self) -> pd.DataFrame:
        """Return one row per user with a difference, and its cause."""
        return self.con.execute("SELECT * EXCLUDE (file_idx, r_file) FROM user_causes ORDER BY user_id").df()


def _macros(con: duckdb.DuckDBPyConnection, tolerance: float, rel_tolerance: float) -> None:
    # exact decimal arithmetic: the tolerances are DECIMAL literals, never a float's repr pasted into SQL
    # the relative term is DECIMAL(18, 6): its product with a DECIMAL(38, 12) keeps 20 integer digits
    # (every value the readers accept); a wider scale would overflow from 10^14 on
    tol = f"CAST('{Decimal(str(tolerance)):f}' AS {MONEY_SQL_TYPE})"
    rel_dec = Decimal(str(rel_tolerance))
    if rel_dec != rel_dec.quantize(Decimal("0.000001")):
        raise SpendlabError(f"rel_tolerance {rel_tolerance} has more than 6 decimals")
    rel_term = f" + CAST('{rel_dec:f}' AS DECIMAL(18, 6)) * abs(y)" if rel_dec else ""
    con.execute(f"CREATE OR REPLACE TEMP MACRO eqm(x, y) AS coalesce((x IS NULL AND y IS NULL) "
                f"OR abs(x - y) <= {tol}{rel_term}, false)")
    con.execute("CREATE OR REPLACE TEMP MACRO eqc(x, y) AS coalesce((x IS NULL AND y IS NULL) OR x = y, false)")
    con.execute("CREATE OR REPLACE TEMP MACRO roweq(a, b) AS CASE WHEN a IS NULL OR b IS NULL "
                "THEN a IS NULL AND b IS NULL ELSE eqm(a.s, b.s) AND eqc(a.c, b.c) AND eqm(a.l, b.l) "
                "AND eqc(a.b, b.b) END")
    con.execute("CREATE OR REPLACE TEMP MACRO exact(a, b) AS CASE WHEN a IS NULL OR b IS NULL "
                "THEN a IS NULL AND b IS NULL ELSE a.s IS NOT DISTINCT FROM b.s AND a.c IS NOT DISTINCT FROM b.c "
                "AND a.l IS NOT DISTINCT FROM b.l AND a.b IS NOT DISTINCT FROM b.b END")
    con.execute("CREATE OR REPLACE TEMP MACRO fmt(x) AS CASE WHEN x IS NULL THEN NULL WHEN x = trunc(x) "
                "THEN CAST(CAST(x AS HUGEINT) AS VARCHAR) ELSE rtrim(rtrim(CAST(x AS VARCHAR), '0'), '.') END")
    con.execute("CREATE OR REPLACE TEMP MACRO normkey(k) AS CASE WHEN ltrim(lower(trim(k)), '0') = '' "
                "THEN '0' ELSE ltrim(lower(trim(k)), '0') END")


_ROW = "{'b': batch_id, 's': total_spend, 'c': count_saved_items, 'l': loyalty_credits}"
_FULL = "{'b': batch_id, 's': total_spend, 'c': count_saved_items, 'l': loyalty_credits, 'f': file_idx, 'n': line}"


def _rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Per-file best rows, the rebuild, and the delta-level flags (ties and duplicates)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE bpf AS SELECT user_id, file_idx, max({_FULL}) AS r, count(*) AS n, "
                f"min({_ROW}) <> max({_ROW}) AS differ FROM deltas GROUP BY user_id, file_idx")
    con.execute("CREATE OR REPLACE TEMP TABLE rebuild AS SELECT user_id, max(r) AS r FROM bpf GROUP BY user_id")
    # rows of users that appear more than once in one file
    con.execute(f"CREATE OR REPLACE TEMP TABLE dup_rows AS SELECT d.user_id, d.file_idx, d.line, {_ROW} AS v, "
                "b.differ FROM deltas d JOIN bpf b ON b.user_id = d.user_id AND b.file_idx = d.file_idx "
                "WHERE b.n > 1")
    # rows at the user's largest batch, for users with more than one such row
    con.execute(f"CREATE OR REPLACE TEMP TABLE top_rows AS WITH t AS (SELECT d.user_id, d.file_idx, d.line, "
                f"{_ROW} AS v FROM deltas d JOIN rebuild r ON r.user_id = d.user_id AND d.batch_id = r.r.b) "
                "SELECT * FROM t WHERE user_id IN (SELECT user_id FROM t GROUP BY user_id HAVING count(*) > 1)")
    con.execute("CREATE OR REPLACE TEMP TABLE ties AS SELECT user_id, count(DISTINCT file_idx) AS n_files, "
                "min(v) <> max(v) AS differ FROM top_rows GROUP BY user_id")


def _summaries(con: duckdb.DuckDBPyConnection) -> None:
    for side, k in SIDE_KEY.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {k}1 AS SELECT user_id, count(*) AS k, "
                    f"sum(coalesce(total_spend, 0)) AS spend, arg_min({_ROW}, line) AS v, min(line) AS line "
                    f"FROM {side} GROUP BY user_id")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cmp AS SELECT coalesce(r.user_id, p.user_id, s.user_id) AS user_id, r.r, "
        "p.k AS pk, p.v AS pv, coalesce(p.spend, 0) AS p_spend, s.k AS sk, s.v AS sv, coalesce(s.spend, 0) AS s_spend "
        "FROM rebuild r FULL JOIN p1 p ON p.user_id = r.user_id "
        "FULL JOIN s1 s ON s.user_id = coalesce(r.user_id, p.user_id)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE suspects AS WITH k AS (SELECT user_id, normkey(user_id) AS nk FROM cmp) "
                "SELECT user_id FROM k WHERE nk IN (SELECT nk FROM k GROUP BY nk HAVING count(*) > 1)")
    con.execute("CREATE OR REPLACE TEMP TABLE cmp2 AS SELECT *, "
                "NOT (coalesce(pk = 1, r IS NULL) AND roweq(pv, r)) AS p_bad, "
                "NOT (coalesce(sk = 1, r IS NULL) AND roweq(sv, r)) AS s_bad FROM cmp")


def _user_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
    CREATE OR REPLACE TEMP TABLE user_causes AS
    SELECT c.user_id,
      CASE WHEN p.user_id IS NOT NULL THEN p.cause ELSE s.cause END AS cause,
      CASE WHEN p.user_id IS NOT NULL THEN 'platform' ELSE 'source' END AS side,
      CASE WHEN p.user_id IS NOT NULL THEN p.file_idx ELSE s.file_idx END AS file_idx,
      CASE WHEN p.user_id IS NOT NULL THEN p.class ELSE s.class END AS class,
      CASE WHEN p.user_id IS NOT NULL THEN p.detail ELSE s.detail END AS detail,
      CASE WHEN p.user_id IS NOT NULL AND s.user_id IS NOT NULL
           THEN 'source: ' || s.cause || ' (' || s.class || ')' END AS secondary,
      c.s_spend - c.p_spend AS amount, c.p_spend, c.s_spend, c.r.s AS r_spend, c.r.f AS r_file
    FROM cmp2 c LEFT JOIN cause_p p USING (user_id) LEFT JOIN cause_s s USING (user_id)
    WHERE c.p_bad OR c.s_bad
    """)
    con.execute("ALTER TABLE user_causes ADD COLUMN file VARCHAR")
    con.execute("UPDATE user_causes SET file = n.name FROM file_names n WHERE n.file_idx = user_causes.file_idx")


def _user_diffs(con: duckdb.DuckDBPyConnection, names: dict[int, str]) -> None:
    """One row per differing value: ``user_id, column, platform, source, rebuilt, cause, file, o``.

    ``file`` is the delta file the cause names (the missing file, the duplicated file, the summary
    with a repeated key) or else the file the rebuilt row comes from; ``o`` orders a user's columns.
    One pass over the differing users (a list of per-column structs, filtered and unnested) keeps
    this cheap for millions of users; the writer sorts by ``user_id, o``.
    """
    fields = {"total_spend": "s", "count_saved_items": "c", "loyalty_credits": "l", "batch_id": "b"}
    items = []
    for o, col in enumerate(VALUE_COLUMNS):
        f = fields[col]
        eq = "eqm" if col in ("total_spend", "loyalty_credits") else "eqc"

        def same(a: str, b: str, f: str = f, eq: str = eq) -> str:  # bound now, not at call time
            return f"(({a} IS NULL) = ({b} IS NULL) AND {eq}({a}.{f}, {b}.{f}))"

        items.append(
            f"{{'col': '{col}', 'platform': fmt(c.pv.{f}), 'source': fmt(c.sv.{f}), 'rebuilt': fmt(c.r.{f}), "
            f"'o': {o}, 'd': NOT ({same('c.pv', 'c.r')} AND {same('c.sv', 'c.r')} AND {same('c.pv', 'c.sv')})}}"
        )
    values = (
        "SELECT user_id, x.col, x.platform, x.source, x.rebuilt, cause, file_idx, r_file, x.o FROM ("
        "SELECT c.user_id, u.cause, u.file_idx, c.r.f AS r_file, "
        f"unnest([{', '.join(items)}]) AS x "
        "FROM cmp2 c JOIN user_causes u USING (user_id) WHERE coalesce(c.pk, 0) <= 1 AND coalesce(c.sk, 0) <= 1) "
        "WHERE x.d"
    )
    rows = (
        "SELECT c.user_id, 'rows', CAST(coalesce(c.pk, 0) AS VARCHAR), CAST(coalesce(c.sk, 0) AS VARCHAR), "
        "CASE WHEN c.r IS NULL THEN '0' ELSE '1' END, u.cause, u.file_idx, c.r.f, 9 "
        "FROM cmp2 c JOIN user_causes u USING (user_id) WHERE coalesce(c.pk, 0) > 1 OR coalesce(c.sk, 0) > 1"
    )
    con.execute(
        'CREATE OR REPLACE TEMP TABLE user_diffs AS SELECT d.user_id, d.col AS "column", d.platform, d.source, '
        f"d.rebuilt, d.cause, coalesce(n1.name, n2.name) AS file, d.o FROM ({values} UNION ALL {rows}) d "
        "LEFT JOIN file_names n1 ON n1.file_idx = d.file_idx LEFT JOIN file_names n2 ON n2.file_idx = d.r_file"
    )


def _dsum(con: duckdb.DuckDBPyConnection, sql: str) -> Decimal:
    """Sum exactly (a DECIMAL sum; 0 for no rows)."""
    v = con.execute(sql).fetchall()[0][0]
    return Decimal(v) if v is not None else Decimal(0)


def _num(v: Decimal | int | float | None) -> int | float | None:
    """Convert an exact decimal to a JSON number.

    An int when it is whole (exact at any size), else a float (a display value; every comparison was
    made on the decimals).
    """
    if v is None:
        return None
    d = Decimal(v)
    return int(d) if d == d.to_integral_value() else float(d)


def _flags(con: duckdb.DuckDBPyConnection, names: dict[int, str]) -> pd.DataFrame:
    df = con.execute("""
        SELECT CASE WHEN bool_or(differ) THEN 'DUP_IN_FILE' ELSE 'DUP_IDENTICAL' END AS class, user_id,
               list(DISTINCT file_idx) AS files, list(line ORDER BY line) AS lines, count(*) AS n
        FROM dup_rows GROUP BY user_id, file_idx
        UNION ALL
        SELECT CASE WHEN t.differ THEN 'TIE_BATCH' ELSE 'DUP_IDENTICAL' END, user_id,
               list(DISTINCT file_idx ORDER BY file_idx), list(line ORDER BY file_idx, line), count(*)
        FROM top_rows JOIN ties t USING (user_id) WHERE t.n_files > 1 GROUP BY user_id, t.differ
        ORDER BY 1, 2
    """).df()
    if df.empty:
        return pd.DataFrame(columns=["class", "user_id", "files", "lines", "detail"])
    df["files"] = df["files"].map(lambda fs: [names[int(f)] for f in sorted(fs)])
    df["lines"] = df["lines"].map(lambda ls: [int(x) for x in ls])
    df["detail"] = [
        f"{n} rows" + (f" in {files[0]}" if len(files) == 1 else f" with the same batch in {', '.join(files)}")
        for n, files in zip(df["n"], df["files"], strict=True)
    ]
    return df.drop(columns=["n"])


def reconcile_tables(
    inputs: ReconcileInputs,
    *,
    tolerance: float = 0.005,
    rel_tolerance: float = 0.0,
    pair_limit: int = 6,
    file_match_share: float = 0.9,
    expect_contiguous_batches: bool = False,
) -> ReconcileResult:
    """Rebuild, compare and explain. Pure apart from temp tables on ``inputs.con``.

    Parameters
    ----------
    tolerance, rel_tolerance
        Money columns match when ``|a - b| <= tolerance + rel_tolerance * |b|``.
    pair_limit
        Pairs of missing files are tried only when there are at most this many delta files.
    file_match_share
        The share of a file's affected users whose row must equal the rebuild without it before
        "file not loaded" is claimed (the rest are explained one by one).
    expect_contiguous_batches
        Report gaps in the sequence of batch ids (a batch no file contains).
    """
    con = inputs.con
    names = {f.idx: f.name for f in inputs.deltas}
    names[-1], names[-2] = inputs.platform.name, inputs.source.name
    _macros(con, tolerance, rel_tolerance)
    con.execute("CREATE OR REPLACE TEMP TABLE file_names (file_idx INTEGER, name VARCHAR)")
    con.executemany("INSERT INTO file_names VALUES (?, ?)", list(names.items()))
    con.execute("CREATE OR REPLACE TEMP MACRO fname(i) AS (SELECT name FROM file_names WHERE file_idx = i)")
    _rebuild(con)
    _summaries(con)
    missing, evidence = {}, {}
    for side in SIDES:
        missing[side], evidence[side] = find_missing_files(
            con, side, len(inputs.deltas), pair_limit=pair_limit, share=file_match_share)
        side_causes(con, side)
    _user_table(con)
    _user_diffs(con, names)
    summary = _summary(con, inputs, names, missing, evidence, tolerance, rel_tolerance, expect_contiguous_batches)
    return ReconcileResult(summary, _flags(con, names), con, [f.name for f in inputs.deltas])


def _file_rows(con: duckdb.DuckDBPyConnection, inputs: ReconcileInputs, missing: dict) -> list[dict]:
    stats = {int(r[0]): r[1:] for r in con.execute(
        "SELECT file_idx, count(DISTINCT user_id), min(batch_id), max(batch_id) FROM deltas GROUP BY 1").fetchall()}
    reflect = {}
    for side, k in SIDE_KEY.items():
        for f, n, ok in con.execute(f"SELECT r.f, count(*), count(*) FILTER (NOT {k}_bad) FROM cmp2 "
                                    "WHERE r IS NOT NULL GROUP BY 1").fetchall():
            reflect[(side, int(f))] = (int(n), int(ok))
    rows = []
    for f in inputs.deltas:
        users, bmin, bmax = stats.get(f.idx, (0, None, None))
        row = {"name": f.name, "status": f.status, "rows": f.report.rows_in, "accepted": f.report.accepted,
               "rejected": f.report.rejected, "blank_lines": f.report.blank_lines,
               "errors": dict(sorted(f.report.errors.items())), "users": int(users),
               "batch_min": bmin, "batch_max": bmax, "reader": f.reader}
        n_win = reflect.get(("platform", f.idx), (0, 0))[0]
        row["winning_users"] = n_win
        for side in SIDES:
            n, ok = reflect.get((side, f.idx), (0, 0))
            if f.idx in missing[side]:
                verdict = "no"
            elif n == 0:
                verdict = "n/a"
            else:
                verdict = "yes" if ok == n else "partial"
            row[f"{side}_reflects"] = verdict
            row[f"{side}_matching_users"] = ok
        rows.append(row)
    return rows


# long: builds summary.json field by field from one connection's tables; every field is one query
def _summary(con, inputs, names, missing, evidence, tolerance, rel_tolerance, contiguous) -> dict:
    source_total = _dsum(con, "SELECT sum(total_spend) FROM source")
    platform_total = _dsum(con, "SELECT sum(total_spend) FROM platform")
    rebuilt_total = _dsum(con, "SELECT sum(r.s) FROM rebuild")
    gap = source_total - platform_total
    classes_by: dict[tuple, dict] = {}
    for cause, side, file, cls, n in con.execute(
            "SELECT cause, side, file, class, count(*) FROM user_causes GROUP BY ALL ORDER BY ALL").fetchall():
        classes_by.setdefault((cause, side, file), {})[cls] = int(n)
    causes = [
        {"cause": cause, "side": side, "file": file, "users": int(n), "amount": _num(amount),
         "gross_amount": _num(gross), "classes": classes_by[(cause, side, file)]}
        for cause, side, file, n, amount, gross in con.execute(
            "SELECT cause, side, file, count(*), sum(amount), sum(abs(amount)) FROM user_causes GROUP BY ALL"
        ).fetchall()
    ]
    order = {c: i for i, c in enumerate(CAUSES)}
    causes.sort(key=lambda c: (order[c["cause"]], c["side"], c["file"] or ""))
    n_bad, n_unexpl, explained, unexplained = con.execute(
        "SELECT count(*), count(*) FILTER (cause = 'unexplained'), coalesce(sum(amount) FILTER "
        "(cause <> 'unexplained'), 0), coalesce(sum(amount) FILTER (cause = 'unexplained'), 0) FROM user_causes"
    ).fetchall()[0]
    explained, unexplained, n_bad = Decimal(explained), Decimal(unexplained), int(n_bad)
    within = gap - explained - unexplained
    n_union, n_exact = con.execute(
        "SELECT count(*), count(*) FILTER (NOT p_bad AND NOT s_bad AND exact(pv, r) AND exact(sv, r)) FROM cmp2"
    ).fetchall()[0]
    class_counts = {"MATCH": int(n_exact), "MATCH_WITHIN_TOL": int(n_union - n_exact - n_bad)}
    class_counts.update({k: int(v) for k, v in con.execute(
        "SELECT class, count(*) FROM user_causes GROUP BY 1").fetchall()})
    max_tol = _dsum(con, "SELECT max(greatest(coalesce(abs(pv.s - r.s), 0), coalesce(abs(sv.s - r.s), 0), "
                         "coalesce(abs(pv.l - r.l), 0), coalesce(abs(sv.l - r.l), 0))) FROM cmp2 "
                         "WHERE NOT p_bad AND NOT s_bad")
    flag_counts = dict(con.execute(
        "SELECT cls, count(*) FROM (SELECT CASE WHEN bool_or(differ) THEN 'DUP_IN_FILE' ELSE 'DUP_IDENTICAL' END "
        "AS cls FROM dup_rows GROUP BY user_id, file_idx UNION ALL SELECT CASE WHEN differ THEN 'TIE_BATCH' "
        "ELSE 'DUP_IDENTICAL' END FROM ties WHERE n_files > 1) GROUP BY 1").fetchall())
    rejects = {f"{d}:{e}": int(n) for d, e, n in con.execute(
        "SELECT dataset, error_type, count(*) FROM rejects GROUP BY 1, 2 ORDER BY 1, 2").fetchall()}
    gaps = []
    if contiguous:
        gaps = [[int(a), int(b)] for a, b in con.execute(
            "SELECT b, nb FROM (SELECT batch_id AS b, lead(batch_id) OVER (ORDER BY batch_id) AS nb FROM "
            "(SELECT DISTINCT batch_id FROM deltas)) WHERE nb > b + 1 ORDER BY b").fetchall()]
    return {
        "source_total": _num(source_total),
        "platform_total": _num(platform_total),
        "rebuilt_total": _num(rebuilt_total),
        "gap": _num(gap),
        "explained": _num(explained),
        "unexplained": _num(unexplained),
        "within_tolerance": _num(within),
        "share_explained": round(float(explained / gap), 6) if gap != 0 else None,
        "users": {"union": int(n_union), "differing": n_bad,
                  "unexplained": int(n_unexpl),
                  "platform": int(con.execute("SELECT count(*) FROM platform").fetchall()[0][0]),
                  "source": int(con.execute("SELECT count(*) FROM source").fetchall()[0][0]),
                  "rebuilt": int(con.execute("SELECT count(*) FROM rebuild").fetchall()[0][0])},
        "tolerance": {"money_columns": ["total_spend", "loyalty_credits"], "abs": tolerance, "rel": rel_tolerance,
                      "count_columns": ["count_saved_items", "batch_id"], "largest_difference_within": _num(max_tol)},
        "files": _file_rows(con, inputs, missing),
        "ignored_files": list(inputs.ignored),
        "summaries": {s: {"name": lf.name, "rows": lf.report.rows_in, "accepted": lf.report.accepted,
                          "rejected": lf.report.rejected, "errors": dict(sorted(lf.report.errors.items()))}
                      for s, lf in (("platform", inputs.platform), ("source", inputs.source))},
        "missing_files": {s: [names[f] for f in missing[s]] for s in SIDES},
        "missing_file_search": {s: [{**e, "files": [names[f] for f in e["files"]]} for e in evidence[s]]
                                for s in SIDES},
        "causes": causes,
        "classes": dict(sorted(class_counts.items())),
        "flags": dict(sorted(flag_counts.items())),
        "rejects": rejects,
        "batch_gaps": gaps,
        "tie_rule": "largest batch_id; ties by largest total_spend, count_saved_items, loyalty_credits; identical "
                    "tied rows attributed to the file that sorts last (natural order), then the later line",
    }


