"""The monitoring ``report.html`` in real headless Chromium, offline: the history figure decodes and is
laid out, every table is visible (the experiment report's probe pattern)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spendlab.monitor.render import history_table, render_monitor_report
from tests.setup_browser import headless_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TABLES = ("summary-table", "history-table", "accuracy-table", "drift-table", "segments-table")
PROBE = """<script>
const out = {images: {}, tables: {}};
for (const img of document.images) {
  const r = img.getBoundingClientRect();
  out.images[img.id] = {natural: img.naturalWidth, complete: img.complete, w: r.width, h: r.height};
}
for (const t of document.querySelectorAll("table")) {
  const r = t.getBoundingClientRect();
  out.tables[t.id] = {w: r.width, h: r.height, rows: t.querySelectorAll("tbody tr").length};
}
const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def _page() -> str:
    backtest = pd.DataFrame({"target_period": ["1997-11", "1997-12", "1998-01"], "rmse": [20.0, 24.0, 19.0]})
    monitored = pd.DataFrame({"period": ["1998-02", "1998-03"], "model_version": ["3", "3"], "rmse": [21.0, 30.0],
                              "verdict": ["ok", "warn"]})
    acc = pd.DataFrame({"group": ["all", "active", "new"], "rmse": [21.0, 40.0, 5.0], "bias": [0.1, 0.05, -0.2]})
    drift = pd.DataFrame({"feature": ["spend_lag1", "n_periods"], "psi": [0.12, 0.01], "zero_share_ref": [0.8, 0.0],
                          "zero_share": [0.85, 0.0]})
    seg = pd.DataFrame({"segment": ["active", "new"], "share_ref": [0.3, 0.1], "share": [0.25, 0.15],
                        "shift": [-0.05, 0.05]})
    summary = pd.DataFrame({"metric": ["RMSE", "bias"], "realized": [30.0, 0.1], "backtest": [21.0, 0.02]})
    return render_monitor_report(title="spendlab monitor: demo", verdict="warn", reasons=["warn: PSI of x = 0.12"],
                                 notes={"model": "demo v3"}, summary=summary, accuracy=acc, drift=drift,
                                 segments=seg, history=history_table(backtest, monitored), band=(18.0, 25.0))


def test_the_history_figure_decodes_and_every_table_is_laid_out_offline(tmp_path: Path) -> None:
    html = _page()
    assert "<script" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
    csp = "default-src 'none';"
    assert csp in html
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace(csp, csp + " script-src 'unsafe-inline';").replace("</body>", PROBE + "</body>"),
                          encoding="utf-8")
    result = headless_or_skip(["--dump-dom", probe_page.resolve().as_uri()], tmp_path)
    dom = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and "</html>" in dom, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    img = probe["images"]["fig-history"]
    assert img["complete"] and img["natural"] > 300 and img["w"] > 300 and img["h"] > 100, img
    for table in TABLES:
        assert probe["tables"][table]["w"] > 100 and probe["tables"][table]["rows"] >= 2, (table, probe["tables"])
    assert probe["tables"]["history-table"]["rows"] == 5  # 3 backtest origins + 2 realized periods


def test_history_table_puts_backtest_and_realized_periods_in_order() -> None:
    backtest = pd.DataFrame({"target_period": [pd.Timestamp("1998-01-01"), pd.Timestamp("1997-12-01")],
                             "rmse": [19.0, 24.0]})
    monitored = pd.DataFrame({"period": ["1998-01"], "model_version": ["3"], "rmse": [22.0], "verdict": ["ok"]})
    t = history_table(backtest, monitored)
    assert t["period"].tolist() == ["1997-12", "1998-01", "1998-01"]
    assert t["source"].tolist() == ["backtest (test origin)", "backtest (test origin)", "realized"]
    assert np.isclose(t["rmse"].tolist(), [24.0, 19.0, 22.0]).all()


def test_replay_page_lists_every_policy_and_period() -> None:
    from spendlab.jobs.replay_report import policy_summary
    from spendlab.monitor.render import render_replay_report

    table = pd.DataFrame({"policy": ["never", "never", "monthly", "monthly"], "period": ["1998-01", "1998-02"] * 2,
                          "verdict": ["ok", "retrain", "ok", "warn"], "rmse": [20.0, 25.0, 20.0, 21.0],
                          "bias": [0.1, -0.6, 0.1, 0.2], "interval_coverage": [0.8, 0.7, 0.8, 0.82],
                          "retrained": [True, False, True, True]})
    summary = policy_summary(table).set_index("policy")
    assert summary.loc["never", "mean |bias|"] == pytest.approx(0.35)
    assert (summary.loc["never", "refits"], summary.loc["monthly", "refits"]) == (1, 2)
    assert (summary.loc["never", "retrain periods"], summary.loc["monthly", "warn periods"]) == (1, 1)
    html = render_replay_report(title="replay", notes={}, by_policy=summary.reset_index(), table=table)
    periods = html.split('id="period-table"', 1)[1].split("</table>", 1)[0]
    assert periods.count("<tr>") == 1 + len(table)  # the header and every (policy, period)
