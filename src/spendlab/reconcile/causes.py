"""Per-user causes of a difference, one side at a time (platform or client), in SQL.

Each differing user gets exactly one cause; the CASE expressions below list them in priority order.
"""

from __future__ import annotations

import itertools

import duckdb

#: Column prefix of each side in the comparison tables.
SIDE_KEY = {"platform": "p", "source": "s"}


def find_missing_files(
    con: duckdb.DuckDBPyConnection, side: str, n_files: int, *, pair_limit: int, share: float
) -> tuple[tuple[int, ...], list[dict]]:
    """Find the file set (one file, or a pair when there are few files) this side looks to have skipped.

    A candidate set S is confirmed row by row: for the users whose rebuilt row changes when S is left
    out, the side's row must equal the rebuild without S, for at least ``share`` of those users in
    each file of S. Among confirmed candidates the one explaining the most users wins (then the
    smaller set, then the earlier files). Returns the chosen set and every candidate's evidence.
    """
    k = SIDE_KEY[side]
    con.execute(f"CREATE OR REPLACE TEMP TABLE fnl_{k} (user_id VARCHAR, file_idx INTEGER)")
    behind = dict(con.execute(
        f"SELECT r.f, count(*) FROM cmp2 WHERE {k}_bad AND r IS NOT NULL AND ({k}v IS NULL OR {k}v.b < r.b) "
        f"AND coalesce({k}k, 1) = 1 GROUP BY 1").fetchall())
    singles = [(f,) for f in range(n_files) if behind.get(f, 0) > 0]
    cands = list(singles)
    if n_files <= pair_limit:
        cands += list(itertools.combinations(sorted(f for (f,) in singles), 2))
    evidence, best, best_key, best_i = [], (), None, -1
    for i, cand in enumerate(cands):
        in_list = ", ".join(str(f) for f in cand)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE cand_{k}_{i} AS "
            f"WITH us AS (SELECT user_id, r FROM rebuild WHERE r.f IN ({in_list})), "
            f"rx AS (SELECT b.user_id, max(b.r) AS r FROM bpf b SEMI JOIN us USING (user_id) "
            f"WHERE b.file_idx NOT IN ({in_list}) GROUP BY b.user_id), "
            "w AS (SELECT us.user_id, us.r.f AS wf, rx.r AS rx FROM us LEFT JOIN rx USING (user_id) "
            "WHERE NOT roweq(rx.r, us.r) AND us.user_id NOT IN (SELECT user_id FROM suspects)) "
            f"SELECT w.user_id, w.wf, coalesce(c.{k}k, 1) = 1 AND roweq(c.{k}v, w.rx) AS matched "
            "FROM w JOIN cmp2 c USING (user_id)"
        )
        rows = con.execute(f"SELECT wf, count(*), count(*) FILTER (matched) FROM cand_{k}_{i} GROUP BY wf").fetchall()
        per = {int(f): (int(n), int(m)) for f, n, m in rows}
        ok = all(f in per and per[f][0] > 0 and per[f][1] >= share * per[f][0] for f in cand)
        matched = sum(m for _, m in per.values())
        evidence.append({"files": list(cand), "affected": sum(n for n, _ in per.values()), "matched": matched,
                         "confirmed": ok})
        key = (matched, -len(cand), tuple(-f for f in cand))
        if ok and (best_key is None or key > best_key):
            if best_key is not None:
                con.execute(f"DROP TABLE cand_{k}_{best_i}")
            best, best_key, best_i = cand, key, i
        else:
            con.execute(f"DROP TABLE cand_{k}_{i}")
    if best:
        con.execute(f"INSERT INTO fnl_{k} SELECT user_id, wf FROM cand_{k}_{best_i} WHERE matched")
        con.execute(f"DROP TABLE cand_{k}_{best_i}")
    return best, evidence


# long: one SQL statement; each CASE lists the causes in priority order and must stay aligned with the others
def side_causes(con: duckdb.DuckDBPyConnection, side: str) -> None:
    """One cause, fine class and detail per user where ``side`` differs from the rebuild."""
    k = SIDE_KEY[side]
    missing_cls = "MISSING_IN_PLATFORM" if side == "platform" else "MISSING_IN_CLIENT"
    nonunique = "NONUNIQUE_KEY_PLATFORM" if side == "platform" else "NONUNIQUE_KEY_CLIENT"
    stale_cls = "STALE_IN_PLATFORM" if side == "platform" else "AHEAD_OF_CLIENT"
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE cause_{k} AS
    WITH bad AS (SELECT * FROM cmp2 WHERE {k}_bad),
    dupm AS (SELECT b.user_id, max(d.file_idx) FILTER (roweq(b.{k}v, d.v)) AS f,
                    max(d.line) FILTER (roweq(b.{k}v, d.v)) AS line
             FROM bad b JOIN dup_rows d ON d.user_id = b.user_id AND d.file_idx = b.r.f
             WHERE d.differ GROUP BY b.user_id),
    tiem AS (SELECT b.user_id, max(t.file_idx) FILTER (roweq(b.{k}v, t.v)) AS f
             FROM bad b JOIN top_rows t USING (user_id) JOIN ties USING (user_id)
             WHERE ties.differ AND ties.n_files > 1 GROUP BY b.user_id),
    older AS (SELECT b.user_id, max(d.file_idx) AS f FROM bad b JOIN deltas d
              ON d.user_id = b.user_id AND d.batch_id = b.{k}v.b
              WHERE b.{k}v.b < b.r.b AND b.user_id NOT IN (SELECT user_id FROM fnl_{k}) GROUP BY b.user_id),
    rej AS (SELECT b.user_id, string_agg(j.file || ' line ' || j.line || ' (' || j.error_type || ')', '; '
                   ORDER BY j.file_idx, j.line) AS lines
            FROM bad b JOIN rejects j ON j.dataset = 'delta' AND j.user_id = b.user_id
            WHERE b.r IS NULL OR b.{k}v.b > b.r.b GROUP BY b.user_id),
    srej AS (SELECT b.user_id, string_agg(j.file || ' line ' || j.line || ' (' || j.error_type || ')', '; '
                    ORDER BY j.line) AS lines
             FROM bad b JOIN rejects j ON j.dataset = '{side}' AND j.user_id = b.user_id
             WHERE b.{k}k IS NULL GROUP BY b.user_id),
    keys AS (SELECT user_id AS key, normkey(user_id) AS nk FROM suspects),
    sus AS (SELECT b.user_id, string_agg(DISTINCT '"' || o.key || '"', ', ') AS others
            FROM bad b JOIN keys o ON o.nk = normkey(b.user_id) AND o.key <> b.user_id
            WHERE (b.r IS NULL OR b.{k}k IS NULL) AND b.user_id IN (SELECT user_id FROM suspects)
            GROUP BY b.user_id)
    SELECT b.user_id,
      CASE
        WHEN b.{k}k > 1 THEN 'duplicate_in_file'
        WHEN b.r IS NULL AND sus.user_id IS NOT NULL THEN 'extra_user'
        WHEN b.{k}k IS NULL AND sus.user_id IS NOT NULL THEN 'missing_user'
        WHEN f.user_id IS NOT NULL THEN 'file_not_loaded'
        WHEN b.r IS NULL AND rej.user_id IS NOT NULL THEN 'rejected_row'
        WHEN b.r IS NULL THEN 'extra_user'
        WHEN b.{k}k IS NULL AND srej.user_id IS NOT NULL THEN 'rejected_row'
        WHEN b.{k}k IS NULL THEN 'missing_user'
        WHEN b.{k}v.b IS NULL THEN 'unexplained'
        WHEN dupm.f IS NOT NULL AND b.{k}v.b <= b.r.b THEN 'duplicate_in_file'
        WHEN b.{k}v.b < b.r.b THEN 'stale_row'
        WHEN b.{k}v.b > b.r.b AND rej.user_id IS NOT NULL THEN 'rejected_row'
        WHEN b.{k}v.b > b.r.b THEN 'unexplained'
        WHEN tiem.f IS NOT NULL THEN 'batch_tie'
        ELSE 'value_mismatch_same_batch'
      END AS cause,
      CASE
        WHEN b.{k}k > 1 THEN {-1 if side == 'platform' else -2}
        WHEN (b.r IS NULL OR b.{k}k IS NULL) AND sus.user_id IS NOT NULL THEN NULL
        WHEN f.user_id IS NOT NULL THEN f.file_idx
        WHEN b.r IS NULL OR b.{k}k IS NULL OR b.{k}v.b IS NULL THEN NULL
        WHEN dupm.f IS NOT NULL AND b.{k}v.b <= b.r.b THEN dupm.f
        ELSE NULL
      END AS file_idx,
      CASE
        WHEN b.{k}k > 1 THEN '{nonunique}'
        WHEN (b.r IS NULL OR b.{k}k IS NULL) AND sus.user_id IS NOT NULL THEN 'KEY_FORMAT_SUSPECT'
        WHEN f.user_id IS NOT NULL THEN '{stale_cls}'
        WHEN b.r IS NULL AND rej.user_id IS NOT NULL THEN 'REJECTED_INPUT'
        WHEN b.r IS NULL THEN '{'MISSING_IN_PLATFORM' if side == 'source' else 'EXTRA_IN_PLATFORM'}'
        WHEN b.{k}k IS NULL AND srej.user_id IS NOT NULL THEN 'REJECTED_INPUT'
        WHEN b.{k}k IS NULL THEN '{missing_cls}'
        WHEN b.{k}v.b IS NULL THEN 'NULL_VS_VALUE'
        WHEN dupm.f IS NOT NULL AND b.{k}v.b <= b.r.b THEN 'DUP_IN_FILE'
        WHEN b.{k}v.b < b.r.b THEN '{stale_cls}'
        WHEN b.{k}v.b > b.r.b AND rej.user_id IS NOT NULL THEN 'REJECTED_INPUT'
        WHEN b.{k}v.b > b.r.b THEN 'NEWER_THAN_DELTAS'
        WHEN tiem.f IS NOT NULL THEN 'TIE_BATCH'
        WHEN (b.{k}v.s IS NULL) <> (b.r.s IS NULL) OR (b.{k}v.c IS NULL) <> (b.r.c IS NULL)
          OR (b.{k}v.l IS NULL) <> (b.r.l IS NULL) THEN 'NULL_VS_VALUE'
        ELSE 'VALUE_MISMATCH'
      END AS class,
      CASE
        WHEN b.{k}k > 1 THEN '{side} summary has ' || b.{k}k || ' rows for this user; values not compared'
        WHEN (b.r IS NULL OR b.{k}k IS NULL) AND sus.user_id IS NOT NULL
          THEN 'keys differ only in format: "' || b.user_id || '" vs ' || sus.others || '; never joined'
        WHEN f.user_id IS NOT NULL THEN 'file ' || fname(f.file_idx) || ' not loaded: the {side} row equals the '
             || 'rebuild without it'
        WHEN b.r IS NULL AND rej.user_id IS NOT NULL THEN 'only rejected delta rows: ' || rej.lines
        WHEN b.r IS NULL THEN 'no delta contains this user ({side} has it{', the platform does not' if side == 'source' else ''})'
        WHEN b.{k}k IS NULL AND srej.user_id IS NOT NULL THEN 'the {side} summary row was rejected: ' || srej.lines
        WHEN b.{k}k IS NULL THEN 'in the rebuild (' || fname(b.r.f) || ' line ' || b.r.n || ', batch ' || b.r.b
             || ') but not in the {side} summary'
        WHEN b.{k}v.b IS NULL THEN 'batch_id is NULL in the {side} summary'
        WHEN dupm.f IS NOT NULL AND b.{k}v.b <= b.r.b THEN '{side} kept the other row of a duplicate in '
             || fname(dupm.f) || ' (line ' || dupm.line || ')'
        WHEN b.{k}v.b < b.r.b THEN '{side} has batch ' || b.{k}v.b || coalesce(' (' || fname(older.f) || ')', '')
             || ', the rebuild batch ' || b.r.b || ' (' || fname(b.r.f) || ')'
        WHEN b.{k}v.b > b.r.b AND rej.user_id IS NOT NULL THEN '{side} has batch ' || b.{k}v.b
             || ' from a rejected delta row: ' || rej.lines
        WHEN b.{k}v.b > b.r.b THEN 'no available delta contains batch ' || b.{k}v.b
        WHEN tiem.f IS NOT NULL THEN '{side} kept the tied row of ' || fname(tiem.f) || ' (same batch '
             || b.r.b || ')'
        ELSE 'same batch ' || b.r.b || ' as the rebuild (' || fname(b.r.f) || ' line ' || b.r.n
             || '), different values'
      END AS detail
    FROM bad b
    LEFT JOIN fnl_{k} f USING (user_id) LEFT JOIN dupm USING (user_id) LEFT JOIN tiem USING (user_id)
    LEFT JOIN older USING (user_id) LEFT JOIN rej USING (user_id) LEFT JOIN sus USING (user_id)
    LEFT JOIN srej USING (user_id)
    """)
