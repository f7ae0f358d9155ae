"""One decision per reconciliation.

Who corrects what, from which both the client reply and the engineer note are written, so the two texts cannot
contradict each other.

Every (cause, side) has one :class:`Action`: who acts (``platform`` = we reload or fix our table,
``client`` = the client re-exports or corrects rows, ``investigate`` = nobody can act yet), the
engineer's fix and the sentence the client reads. :func:`decide` turns a summary's causes into a
:class:`Decision`; its next steps are derived from the owners alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Owner = Literal["platform", "client", "investigate"]

CAUSE_TEXT = {
    "file_not_loaded": "delta file not loaded",
    "stale_row": "older batch than the deltas (not a whole file)",
    "missing_user": "user missing",
    "extra_user": "user in no (accepted) delta",
    "rejected_row": "row rejected by validation (invalid value or key)",
    "batch_tie": "equal batch_id in two files, different values",
    "duplicate_in_file": "same user twice in one file",
    "value_mismatch_same_batch": "same batch, different values (corruption)",
    "unexplained": "not explained",
}

_FIX = {
    "file_not_loaded": "Load the missing file(s) through the normal path (the merge keeps the largest batch_id, so "
                       "reloading is idempotent), then add a load-log check that every exported delta was loaded.",
    "stale_row": "Re-run the merge for the listed users from all deltas (largest batch_id wins); look for a partial "
                 "or failed upsert in the load that should have written the newer batch.",
    "missing_user": "Insert the missing users from the rebuild (user_diffs.csv column `rebuilt`); check the load "
                    "for rows dropped by a filter or a failed batch.",
    "extra_user": "Check where these rows came from: no accepted delta row contains these users.",
    "rejected_row": "Nothing to load until the rows are corrected: rejects.csv lists each rejected row (file, line, "
                    "column, reason).",
    "batch_tie": "Make the merge deterministic for equal batch_id (this report's rule: largest values, then the "
                 "file that sorts last); ask the client whether equal batch ids across files are expected.",
    "duplicate_in_file": "Deduplicate within a file before merging (one row per user and batch) with a documented "
                         "rule; ask the client why the export repeats the user.",
    "value_mismatch_same_batch": "Same batch, different values means the row changed after export: compare the "
                                 "load's transforms (casts, rounding, column order) and reload those users.",
    "unexplained": "Inspect the listed users by hand; the worked examples show their rows.",
}

#: A rejected row may sit in a delta export or in the client's summary (either side's comparison).
_REJECTED = ("for {users} customers some rows of your exports or your summary could not be read (an invalid value "
             "or customer id), so those customers could not be compared")
_CLIENT = {
    ("file_not_loaded", "platform"): "one of your delta exports ({file}) was not loaded on our side, so {users} "
                                     "customers still show their earlier totals",
    ("stale_row", "platform"): "for {users} customers we kept an older update instead of the latest one",
    ("missing_user", "platform"): "{users} customers from your exports are missing from our table",
    ("extra_user", "platform"): "{users} customers are in our table but in none of the exports we received",
    ("rejected_row", "platform"): _REJECTED,
    ("batch_tie", "platform"): "for {users} customers your exports contain two different rows with the same update "
                               "number, and we picked a different one than your system did",
    ("duplicate_in_file", "platform"): "{users} customers appear twice in the same export ({file}) with different "
                                       "figures",
    ("value_mismatch_same_batch", "platform"): "for {users} customers our copy of the latest update has different "
                                               "figures from the export itself",
    ("file_not_loaded", "source"): "for {users} customers your summary does not yet include your export {file}",
    ("stale_row", "source"): "for {users} customers your summary shows an older update than your latest export",
    ("missing_user", "source"): "{users} customers that appear in the exports you sent us are missing from your "
                                "summary",
    ("extra_user", "source"): "{users} customers are in your summary but in none of the exports we received",
    ("rejected_row", "source"): _REJECTED,
    ("batch_tie", "source"): "for {users} customers your summary kept a different one of two rows with the same "
                             "update number",
    ("duplicate_in_file", "source"): "{users} customers appear more than once in your summary",
    ("value_mismatch_same_batch", "source"): "for {users} customers your summary has different figures from the "
                                             "export of the same update",
}
_UNEXPLAINED = "for {users} customers we have not found the cause yet"


@dataclass(frozen=True)
class Action:
    """What one (cause, side) asks of whom, in the engineer's words and in the client's."""

    cause: str
    side: str
    owner: Owner
    fix: str
    client_text: str


def action(cause: str, side: str) -> Action:
    """Return the action for one cause on one side (``platform`` or ``source``, the client's summary)."""
    if cause == "unexplained":
        return Action(cause, side, "investigate", _FIX[cause], _UNEXPLAINED)
    owner: Owner = "client" if side == "source" or cause == "rejected_row" else "platform"
    fix = _FIX[cause]
    if owner == "client":
        fix = ("Ask the client to re-export: " + ("the rejected rows (delta exports or summary)" if
                                                 cause == "rejected_row" else "their summary for these users")
               + ". " + (fix if cause == "rejected_row" else "Nothing to load on our side for these users."))
    return Action(cause, side, owner, fix, _CLIENT[(cause, side)])


@dataclass(frozen=True)
class Item:
    """One cause of the summary with its action."""

    action: Action
    users: int
    amount: float
    file: str | None

    def client_sentence(self) -> str:
        """Return the sentence the client reply gives this cause."""
        return self.action.client_text.format(users=f"{self.users:,}", file=self.file or "")


@dataclass(frozen=True)
class Decision:
    """Every cause's action; the owners decide the next steps both texts state."""

    items: tuple[Item, ...]
    unexplained_users: int

    @property
    def owners(self) -> set[str]:
        """Return who owns a part of the difference (platform, client, investigate)."""
        return {i.action.owner for i in self.items}

    def amount(self, owner: Owner) -> float:
        """Return the part of the difference ``owner`` owns."""
        return sum(i.amount for i in self.items if i.action.owner == owner)

    def client_next_steps(self) -> list[str]:
        """Return the reply's "what happens next", one line per owner."""
        steps = []
        if "platform" in self.owners:
            steps.append("We correct our side and reload the affected customers from your exports.")
        if "client" in self.owners:
            what = sorted({"the rows we could not read" if i.action.cause == "rejected_row" else
                           "your summary for the customers listed" for i in self.items if i.action.owner == "client"})
            steps.append("Please re-export " + " and ".join(what) + "; we will send you the list with file and line.")
        if "investigate" in self.owners:
            steps.append("We keep investigating the customers not yet explained and will come back to you.")
        steps.append("We re-run this check; it must show no difference before we close the issue.")
        if "client" not in self.owners:
            steps.append("You don't need to send anything again unless we ask about a specific file.")
        return steps

    def engineer_next_steps(self) -> list[str]:
        """Return the note's fix list: one line per (cause, side), then the backfill when we own a part."""
        lines = [f"- {i.action.cause} ({i.action.side}): {i.action.fix}"
                 for i in {(i.action.cause, i.action.side): i for i in self.items}.values()]
        if "platform" in self.owners:
            lines.append("- Backfill: for the platform-side users in user_diffs.csv set the values of column "
                         "`rebuilt`, then re-run `spendlab reconcile ... --fail-on-diff` until it exits 0.")
        if "client" in self.owners:
            lines.append("- Tell the client what to re-export (the reply lists it); re-run once it arrives.")
        return lines


def decide(summary: dict) -> Decision:
    """Return the decision for a reconciliation summary (its ``causes`` and ``users``)."""
    items = tuple(Item(action(c["cause"], c["side"]), int(c["users"]), float(c["amount"]), c.get("file"))
                  for c in summary["causes"])
    return Decision(items, int(summary["users"]["unexplained"]))
