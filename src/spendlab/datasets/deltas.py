"""Seeded delta/summary scenarios with known faults, for the reconciliation job and its tests.

``generate_deltas`` writes ``OUT/inputs/deltas/delta<k>.csv``, ``OUT/inputs/platform_summary.csv``
and ``OUT/inputs/client_summary.csv``, and the answer key ``OUT/answer_key.json`` beside (never
inside) the inputs. The same seed gives the same bytes.

The world: a client warehouse exports its user-summary table as deltas; the first file is the base
set, each later file carries updated running totals for some users (and first rows for new users)
with larger batch ids. The client's export is the true summary (largest ``batch_id`` per user, tied
rows broken by the documented rule); the platform's summary is that truth with the injected faults:

* ``missing_file``: the platform never loaded one delta (not the base); its rows are the rebuild
  without that file.
* ``stale``: some users kept an older row (a partial upsert), not a whole file.
* ``tie``: some users get a second row with the same batch id, different values, in another file;
  the platform kept the tied row the rule does not pick.
* ``duplicate``: some users appear twice in one file with the same batch id; the platform kept the
  row the rule does not pick.
* ``corrupt``: some platform rows have the right batch but altered values.
* ``missing_user``: some users are missing from the platform's summary.

Faults touch disjoint sets of users, so two can be combined and each stays recoverable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spendlab.errors import ConfigError

SCENARIOS: tuple[str, ...] = ("clean", "missing_file", "stale", "tie", "duplicate", "corrupt", "missing_user")
COLUMNS = ["user_id", "total_spend", "count_saved_items", "loyalty_credits", "batch_id"]
_RULE = ["batch_id", "total_spend", "count_saved_items", "loyalty_credits"]


def rebuild_oracle(rows: pd.DataFrame) -> pd.DataFrame:
    """Largest batch per user; ties by largest total_spend, count_saved_items, loyalty_credits (plain pandas)."""
    ordered = rows.sort_values(["user_id", *_RULE], ascending=[True, False, False, False, False], kind="mergesort")
    return ordered.drop_duplicates("user_id", keep="first").set_index("user_id")


def _base_rows(rng: np.random.Generator, users: int, files: int, update_share: float,
               base_share: float) -> pd.DataFrame:
    width = max(6, len(str(users)))
    ids = pd.Series(np.arange(1, users + 1)).astype(str).str.zfill(width).to_numpy()
    first = np.where(rng.random(users) < base_share, 0, rng.integers(1, max(files, 2), users)) if files > 1 \
        else np.zeros(users, dtype=np.int64)
    parts = []
    for k in range(files):
        member = (first == k) | ((first < k) & (rng.random(users) < update_share))
        idx = np.flatnonzero(member)
        parts.append(pd.DataFrame({"u": idx, "file": k, "batch_id": (k + 1) * 100 + rng.integers(0, 50, len(idx))}))
    rows = pd.concat(parts, ignore_index=True).sort_values(["u", "file"], kind="mergesort", ignore_index=True)
    n = len(rows)
    rows["total_spend"] = pd.Series(rng.integers(1, 500, n)).groupby(rows["u"]).cumsum().to_numpy()
    rows["count_saved_items"] = rng.integers(0, 40, n)
    rows["loyalty_credits"] = pd.Series(rng.integers(0, 30, n)).groupby(rows["u"]).cumsum().to_numpy()
    rows["user_id"] = ids[rows["u"].to_numpy()]
    rows["line_order"] = rng.random(n)
    return rows


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    pool = np.sort(pool)
    if len(pool) == 0 or n <= 0:
        return pool[:0]
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


@dataclass(frozen=True)
class DeltaScenario:
    """Build a scenario.

    Its delta rows (``file`` index and ``line_order`` per row), file names, both summaries and the
    answer key.
    """

    rows: pd.DataFrame
    files: list[str]
    platform: pd.DataFrame
    source: pd.DataFrame
    answer: dict


# long: one seeded sequence of fault injections; the order of the draws is the reproducibility contract, and splitting it would thread the generator and five frames through every helper
def delta_scenario(
    *,
    scenario: str | Sequence[str] = "clean",
    users: int = 1000,
    files: int = 4,
    seed: int = 0,
    fault_share: float = 0.03,
    update_share: float = 0.4,
    base_share: float = 0.7,
) -> DeltaScenario:
    """One scenario (or a combination of faults) and its answer key (written by ``jobs.datasets``).

    Parameters
    ----------
    scenario
        One of :data:`SCENARIOS`, or several fault names (``["missing_file", "corrupt"]``).
    fault_share
        Share of users each row-level fault touches (at least one user).
    update_share, base_share
        Share of existing users each later file updates; share of users already in the base file.
    """
    names = [scenario] if isinstance(scenario, str) else list(scenario)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    faults = [s for s in dict.fromkeys(names) if s != "clean"]
    if users < 10 or files < 1:
        raise ConfigError("a scenario needs at least 10 users and 1 file")
    if ("missing_file" in faults and files < 2) or ({"tie"} & set(faults) and files < 2):
        raise ConfigError("missing_file and tie need at least 2 files")
    rng = np.random.default_rng(seed)
    rows = _base_rows(rng, users, files, update_share, base_share)
    n_fault = max(1, int(round(fault_share * users)))
    fnames = [f"delta{k + 1}.csv" for k in range(files)]
    key: list[dict] = []
    reserved: set[str] = set()

    truth = rebuild_oracle(rows)
    missing_file = None
    if "missing_file" in faults:
        # the file the platform skipped: a later one whose rows still win for some users
        wins = truth.loc[truth["file"] > 0, "file"].value_counts()
        candidates = sorted(int(f) for f in wins.index)
        missing_file = int(rng.choice(candidates))
        reserved |= set(truth.index[truth["file"] == missing_file])

    def eligible(mask: pd.Series) -> np.ndarray:
        ids = truth.index[mask.to_numpy()]
        return np.array([u for u in ids if u not in reserved], dtype=object)

    extra = []
    platform_pick: dict[str, pd.Series] = {}
    if "tie" in faults:
        files_of = rows.groupby("user_id")["file"].agg(set)
        pool = eligible(truth.index.map(lambda u: len(files_of[u]) < files - (missing_file is not None))
                        .to_series(index=truth.index))
        for u in _pick(rng, pool, n_fault):
            win = truth.loc[u]
            # a file without a row for this user: a cross-file tie, not an in-file duplicate
            others = [k for k in range(files) if k not in files_of[u] and k != missing_file]
            h = int(rng.choice(others))
            new = win.astype(object)  # a row of numbers that also gets the string user_id
            new["file"] = h
            new["total_spend"] = max(0, int(win["total_spend"]) + int(rng.choice([-1, 1])) * int(rng.integers(1, 300)))
            if new["total_spend"] == win["total_spend"]:
                new["total_spend"] += 1
            new["count_saved_items"] = int(rng.integers(0, 40))
            new["line_order"] = rng.random()
            new["user_id"] = u
            extra.append(new)
            platform_pick[u] = min(win, new, key=lambda r: int(r["total_spend"]))
        tie_users = sorted(platform_pick)
        reserved |= set(tie_users)
        key.append({"cause": "batch_tie", "side": "platform", "file": None, "users": tie_users})
    if "duplicate" in faults:
        chosen = _pick(rng, eligible(pd.Series(True, index=truth.index)), n_fault)
        for u in chosen:
            win = truth.loc[u]
            new = win.astype(object)  # a row of numbers that also gets the string user_id
            new["total_spend"] = int(win["total_spend"]) + int(rng.integers(1, 300))
            new["loyalty_credits"] = int(rng.integers(0, 30))
            new["line_order"] = rng.random()
            new["user_id"] = u
            extra.append(new)
            platform_pick[u] = win
        by_file: dict[int, list[str]] = {}
        for u in chosen:
            by_file.setdefault(int(truth.loc[u, "file"]), []).append(u)
        for f, us in sorted(by_file.items()):
            key.append({"cause": "duplicate_in_file", "side": "platform", "file": fnames[f], "users": sorted(us)})
        reserved |= set(chosen)
    if extra:
        add = pd.DataFrame(extra)
        add["u"] = -1
        rows = pd.concat([rows, add[rows.columns]], ignore_index=True)
        truth = rebuild_oracle(rows)

    source = truth.copy()
    platform = truth.copy()
    if missing_file is not None:
        without = rebuild_oracle(rows[rows["file"] != missing_file])
        affected = sorted(u for u in truth.index[truth["file"] == missing_file])
        platform = platform.drop(index=affected)
        platform = pd.concat([platform, without.loc[[u for u in affected if u in without.index]]])
        key.append({"cause": "file_not_loaded", "side": "platform", "file": fnames[missing_file], "users": affected})
    for u, row in platform_pick.items():
        platform.loc[u, _RULE] = row[_RULE].to_numpy()
    if "stale" in faults:
        kept = rows if missing_file is None else rows[rows["file"] != missing_file]  # the platform never saw it
        ordered = kept.sort_values(["user_id", "batch_id"], kind="mergesort")
        prev = ordered.groupby("user_id").nth(-2).set_index("user_id")  # the row before the last batch
        prev = prev[prev["batch_id"] < truth.loc[prev.index, "batch_id"].to_numpy()]
        pool = np.array([u for u in prev.index if u not in reserved], dtype=object)
        # never most of one file's winners: that would be a missing file, not stale rows
        winners = truth["file"].value_counts()
        chosen, per_file = [], {}
        for u in _pick(rng, pool, len(pool)):
            f = int(truth.loc[u, "file"])
            if len(chosen) < n_fault and per_file.get(f, 0) + 1 <= 0.5 * winners[f]:
                chosen.append(u)
                per_file[f] = per_file.get(f, 0) + 1
        for u in chosen:
            platform.loc[u, _RULE] = prev.loc[u, _RULE].to_numpy()
        reserved |= set(chosen)
        key.append({"cause": "stale_row", "side": "platform", "file": None, "users": sorted(chosen)})
    if "corrupt" in faults:
        pool = np.array([u for u in platform.index if u not in reserved], dtype=object)
        chosen = _pick(rng, pool, n_fault)
        for i, u in enumerate(chosen):
            bump = int(rng.integers(1, 1000)) * (1 if i % 2 == 0 else -1)
            platform.loc[u, "total_spend"] = max(0, int(platform.loc[u, "total_spend"]) + bump)
            if platform.loc[u, "total_spend"] == truth.loc[u, "total_spend"]:
                platform.loc[u, "total_spend"] += 7
        reserved |= set(chosen)
        key.append({"cause": "value_mismatch_same_batch", "side": "platform", "file": None,
                    "users": sorted(chosen)})
    if "missing_user" in faults:
        pool = np.array([u for u in platform.index if u not in reserved], dtype=object)
        chosen = _pick(rng, pool, n_fault)
        platform = platform.drop(index=list(chosen))
        reserved |= set(chosen)
        key.append({"cause": "missing_user", "side": "platform", "file": None, "users": sorted(chosen)})

    empty = [f["cause"] for f in key if not f["users"]]
    if empty:
        raise ConfigError(f"scenario {'+'.join(names)} with {users} users and {files} files leaves no user for "
                          f"{', '.join(empty)}; use more users or files")
    s_spend = source["total_spend"].astype("int64")
    p_spend = platform["total_spend"].astype("int64")
    for fault in key:
        us = fault["users"]
        fault["amount"] = int(s_spend.reindex(us).fillna(0).sum() - p_spend.reindex(us).fillna(0).sum())
    answer = {
        "scenario": names, "users": users, "files": files, "seed": seed, "fault_share": fault_share,
        "delta_files": fnames, "source_total": int(s_spend.sum()), "platform_total": int(p_spend.sum()),
        "gap": int(s_spend.sum() - p_spend.sum()), "faults": key,
    }
    return DeltaScenario(rows, fnames, platform, source, answer)


