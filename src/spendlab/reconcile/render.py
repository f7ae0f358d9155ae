"""Render and write a reconciliation: summary.json, user_diffs.csv, report.md, report.html.

Rendering only reads a :class:`~spendlab.reconcile.compare.ReconcileResult`; writing goes to a
directory the caller made (the job swaps it in atomically). HTML is rendered by Jinja2 with
autoescaping, CSV cells that a spreadsheet would run as formulas are neutralised, and Markdown
cells are escaped, so a ``user_id`` such as ``<script>`` stays text everywhere.
"""

from __future__ import annotations

import jinja2

from spendlab.reconcile.compare import CAUSES, ReconcileResult

CAUSE_TEXT = {
    "file_not_loaded": "delta file not loaded",
    "stale_row": "older batch than the deltas (not a whole file)",
    "missing_user": "user missing",
    "extra_user": "user in no (accepted) delta",
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
    ("missing_user", "source"): "Nothing to load on our side for these users: the client's summary lacks "
                                "users that their deltas contain (or their summary row was rejected: see "
                                "rejects.csv); ask the client to re-export the summary.",
    "extra_user": "Check where these rows came from: no accepted delta row contains these users.",
    "batch_tie": "Make the merge deterministic for equal batch_id (this report's rule: largest values, then the "
                 "file that sorts last); ask the client whether equal batch ids across files are expected.",
    "duplicate_in_file": "Deduplicate within a file before merging (one row per user and batch) with a documented "
                         "rule; ask the client why the export repeats the user.",
    "value_mismatch_same_batch": "Same batch, different values means the row changed after export: compare the "
                                 "load's transforms (casts, rounding, column order) and reload those users.",
    "unexplained": "Inspect the listed users by hand; the worked examples show their rows.",
}

_CLIENT = {
    "file_not_loaded": "one of your delta exports ({file}) was not loaded on our side, so {users} customers still "
                       "show their earlier totals",
    "stale_row": "for {users} customers we kept an older update instead of the latest one",
    "missing_user": "{users} customers from your exports are missing from our table",
    # the same cause on the client's side: their summary lacks users their own exports contain
    ("missing_user", "source"): "{users} customers that appear in the exports you sent us are missing from "
                                "your summary",
    "extra_user": "{users} customers appear in one table but in none of the exports we received",
    "batch_tie": "for {users} customers your exports contain two different rows with the same update number, and "
                 "we picked a different one than your system did",
    "duplicate_in_file": "{users} customers appear twice in the same export ({file}) with different figures",
    "value_mismatch_same_batch": "for {users} customers our copy of the latest update has different figures from "
                                 "the export itself",
    "unexplained": "for {users} customers we have not found the cause yet",
}


def money(x: float | None) -> str:
    """Format an amount with thousands separators and cents; ``-`` for none."""
    if x is None:
        return "-"
    return f"{x:,.2f}"


def _md(value: object) -> str:
    """Escape a data-derived value for a Markdown table cell (no HTML, no column breaks)."""
    text = "" if value is None else str(value)
    for a, b in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`"), ("\n", " "), ("\r", " ")):
        text = text.replace(a, b)
    return text


def worked_examples(result: ReconcileResult, per_cause: int = 3) -> list[dict]:
    """Pick a few affected users per (cause, side, file), largest amounts first: their rows on each side."""
    picks = result.con.execute(
        "SELECT user_id, cause, side, file, class, detail, amount FROM (SELECT *, row_number() OVER (PARTITION BY "
        "cause, side, file ORDER BY abs(amount) DESC, user_id) AS k FROM user_causes) WHERE k <= ? "
        "ORDER BY user_id", [per_cause]).fetchall()
    if not picks:
        return []
    rows: dict[str, list[dict]] = {}
    for uid, col, p, s, r in result.con.execute(
            'SELECT d.user_id, d."column", d.platform, d.source, d.rebuilt FROM user_diffs d '
            "WHERE d.user_id IN (SELECT unnest(?)) ORDER BY d.user_id, d.o", [[p[0] for p in picks]]).fetchall():
        rows.setdefault(uid, []).append({"column": col, "platform": p or "", "source": s or "", "rebuilt": r or ""})
    out = [{"user_id": uid, "cause": cause, "side": side, "file": file, "class": cls, "detail": detail,
            "amount": float(amount), "rows": rows.get(uid, [])}
           for uid, cause, side, file, cls, detail, amount in picks]
    order = {c: i for i, c in enumerate(CAUSES)}
    out.sort(key=lambda e: (order[e["cause"]], e["side"], e["file"] or "", -abs(e["amount"]), e["user_id"]))
    return out


def engineer_note(summary: dict) -> str:
    """Write a technical note for the platform's backend engineer: what broke, evidence, fix and backfill."""
    lines = [f"Subject: user-summary reconciliation - gap {money(summary['gap'])} "
             f"(client {money(summary['source_total'])}, platform {money(summary['platform_total'])})", ""]
    lines.append(f"Rebuilt from {len(summary['files'])} delta file(s) (largest batch_id per user): total "
                 f"{money(summary['rebuilt_total'])}. Explained {money(summary['explained'])}, unexplained "
                 f"{money(summary['unexplained'])} ({summary['users']['unexplained']} users).")
    lines += ["", "What broke:"]
    if not summary["causes"]:
        lines.append("- nothing: every user matches the rebuild on both sides.")
    by_file = {f["name"]: f for f in summary["files"]}
    for c in summary["causes"]:
        where = f" [{c['file']}]" if c["file"] else ""
        lines.append(f"- {c['cause']} ({c['side']}){where}: {c['users']} users, {money(c['amount'])} "
                     f"- {CAUSE_TEXT[c['cause']]}.")
        if c["cause"] == "file_not_loaded" and c["file"] in by_file:
            f = by_file[c["file"]]
            lines.append(f"  Evidence: {c['file']} has {f['rows']} rows, batches {f['batch_min']}-{f['batch_max']}; "
                         f"for every one of the {c['users']} users whose latest row is in it, the {c['side']} row "
                         "equals the rebuild without that file (checked row by row).")
    lines += ["", "Evidence: user_diffs.csv (one row per differing value: platform, source, rebuilt, cause, file); "
              "user_causes.csv (cause and detail per user); rejects.csv (delta rows that failed validation)."]
    lines += ["", "Fix and backfill:"]
    for cause, side in dict.fromkeys((c["cause"], c["side"]) for c in summary["causes"]):
        lines.append(f"- {cause} ({side}): {_FIX.get((cause, side), _FIX[cause])}")
    if summary["causes"]:
        lines.append("- Backfill: for the users in user_diffs.csv set the values of column `rebuilt`, then re-run "
                     "`spendlab reconcile ... --fail-on-diff` until it exits 0.")
    flags = summary.get("flags") or {}
    if flags:
        lines += ["", "Delta findings: " + ", ".join(f"{k}={v}" for k, v in flags.items())
                  + f". Tie rule used: {summary['tie_rule']}."]
    return "\n".join(lines)


def client_reply(summary: dict) -> str:
    """Write a plain-language reply to the client's marketing lead."""
    gap = summary["gap"]
    lines = ["Hi,", ""]
    if not summary["causes"]:
        lines.append(f"We compared our customer table with your export: both add up to {money(summary['source_total'])}"
                     " and every customer matches the updates you sent us. No action is needed.")
        return "\n".join(lines + ["", "Best regards"])
    lines.append(f"Your export adds up to {money(summary['source_total'])} in customer spend and ours to "
                 f"{money(summary['platform_total'])}, a difference of {money(gap)}. We rebuilt the figures "
                 f"from the {len(summary['files'])} export files your warehouse sent us and traced the difference "
                 "customer by customer.")
    lines += ["", "What happened:"]
    for c in summary["causes"]:
        template = _CLIENT.get((c["cause"], c["side"]), _CLIENT[c["cause"]])
        text = template.format(users=f"{c['users']:,}", file=c["file"] or "")
        lines.append(f"- {text} ({money(c['amount'])}).")
    plat = sum(c["amount"] for c in summary["causes"] if c["side"] == "platform" and c["cause"] != "unexplained")
    src = sum(c["amount"] for c in summary["causes"] if c["side"] == "source" and c["cause"] != "unexplained")
    lines += ["", "Whose numbers are right:"]
    if abs(src) < 0.005 and summary["users"]["unexplained"] == 0:
        lines.append("Your figures are right: they match the exports you sent us. The difference is on our side.")
    elif abs(plat) < 0.005 and summary["users"]["unexplained"] == 0:
        lines.append("Our figures match the exports we received; your export differs from them (for example it "
                     "may predate the latest export). We will go through the list with you.")
    else:
        lines.append(f"Both sides need a correction: {money(plat)} of the difference is on our side and "
                     f"{money(src)} on yours" + (", and part is still under investigation." if
                                                  summary["users"]["unexplained"] else "."))
    lines += ["", "What happens next:", "- We correct our side and reload the affected customers from your exports.",
              "- We re-run this check; it must show no difference before we close the issue.",
              "- You don't need to send anything again unless we ask about a specific file.", "", "Best regards"]
    return "\n".join(lines)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spendlab.reconcile", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["md"] = _md
    return env


def render_context(result: ReconcileResult) -> dict:
    """Return the values the report templates read."""
    s = result.summary
    gap = s["gap"]
    return {
        "s": s,
        "share": None if s["share_explained"] is None else f"{100 * s['share_explained']:.1f}%",
        "cause_text": CAUSE_TEXT,
        "examples": worked_examples(result),
        "flags": result.flags.head(50).to_dict("records"),
        "engineer": engineer_note(s),
        "client": client_reply(s),
        "gap_sign": "client above platform" if gap > 0 else ("platform above client" if gap < 0 else "none"),
    }


def render_markdown(result: ReconcileResult) -> str:
    """Render the reconcile report as Markdown."""
    return _environment().get_template("reconcile.md").render(**render_context(result))


def render_html(result: ReconcileResult) -> str:
    """Render the reconcile report as a self-contained HTML page."""
    return _environment().get_template("reconcile.html").render(**render_context(result))


