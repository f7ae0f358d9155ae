"""Render and write a reconciliation: summary.json, user_diffs.csv, report.md, report.html.

Rendering only reads a :class:`~spendlab.reconcile.compare.ReconcileResult`; writing goes to a
directory the caller made (the job swaps it in atomically). HTML is rendered by Jinja2 with
autoescaping, CSV cells that a spreadsheet would run as formulas are neutralised, and Markdown
cells are escaped, so a ``user_id`` such as ``<script>`` stays text everywhere.
"""

from __future__ import annotations

import jinja2

from spendlab.reconcile.compare import CAUSES, ReconcileResult
from spendlab.reconcile.decision import CAUSE_TEXT, decide


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
    lines += decide(summary).engineer_next_steps()
    flags = summary.get("flags") or {}
    if flags:
        lines += ["", "Delta findings: " + ", ".join(f"{k}={v}" for k, v in flags.items())
                  + f". Tie rule used: {summary['tie_rule']}."]
    return "\n".join(lines)


def client_reply(summary: dict) -> str:
    """Write a plain-language reply to the client's marketing lead."""
    lines = ["Hi,", ""]
    if not summary["causes"]:
        lines.append(f"We compared our customer table with your export: both add up to {money(summary['source_total'])}"
                     " and every customer matches the updates you sent us. No action is needed.")
        return "\n".join(lines + ["", "Best regards"])
    lines.append(f"Your export adds up to {money(summary['source_total'])} in customer spend and ours to "
                 f"{money(summary['platform_total'])}, a difference of {money(summary['gap'])}. We rebuilt the figures "
                 f"from the {len(summary['files'])} export files your warehouse sent us and traced the difference "
                 "customer by customer.")
    decision = decide(summary)
    lines += ["", "What happened:"]
    lines += [f"- {item.client_sentence()} ({money(item.amount)})." for item in decision.items]
    plat, src = decision.amount("platform"), decision.amount("client")
    lines += ["", "Whose numbers are right:"]
    if decision.owners == {"platform"}:
        lines.append("Your figures are right: they match the exports you sent us. The difference is on our side.")
    elif decision.owners == {"client"}:
        lines.append("Our figures match the exports we received; your summary differs from them (for example it "
                     "may predate the latest export, or some of its rows could not be read). We will go through "
                     "the list with you.")
    elif decision.owners == {"investigate"}:
        lines.append("We have not yet found where the difference comes from; we are tracing it customer by customer.")
    else:
        lines.append(f"Both sides need a correction: {money(plat)} of the difference is on our side and "
                     f"{money(src)} on yours" + (", and part is still under investigation." if
                                                  "investigate" in decision.owners else "."))
    lines += ["", "What happens next:", *[f"- {step}" for step in decision.client_next_steps()], "", "Best regards"]
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


