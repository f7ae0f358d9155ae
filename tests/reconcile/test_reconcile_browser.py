"""The reconciliation ``report.html`` in real headless Chromium: tables laid out and visible, ids escaped.

A test-only copy of the report gets a small probe script that measures each table with
``getBoundingClientRect`` and ``getComputedStyle`` and writes the result into the DOM, which
``--dump-dom`` then prints. The report itself carries no script at all.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from spendlab.jobs.datasets import generate_deltas
from spendlab.jobs.reconcile import run_reconcile
from tests.setup_browser import headless_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HEADER = "user_id,total_spend,count_saved_items,loyalty_credits,batch_id"
HOSTILE = '<script>document.title="pwned"</script>'
PROBE = """<script>
const out = {};
for (const id of ["totals", "files", "causes", "examples"]) {
  const t = document.getElementById(id);
  if (!t) { out[id] = null; continue; }
  const r = t.getBoundingClientRect(), st = getComputedStyle(t);
  out[id] = {w: r.width, h: r.height, visible: st.visibility === "visible" && st.display !== "none",
             rows: t.querySelectorAll("tbody tr, tr").length};
}
out.scripts = document.scripts.length;
out.title = document.title;
const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


_chromium = headless_or_skip  # one Chromium launcher for every browser test


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("reconcile_browser")
    generate_deltas(base / "g", scenario=["missing_file", "corrupt"], users=80, files=3, seed=3)
    inputs = base / "g" / "inputs"
    # a hostile id the client export has and no delta does
    source = inputs / "client_summary.csv"
    source.write_text(source.read_text() + f'"{HOSTILE.replace(chr(34), chr(34) * 2)}",5,1,1,1\n')
    run_reconcile(str(inputs / "deltas" / "*.csv"), inputs / "platform_summary.csv", source, base / "out")
    return base / "out" / "report.html"


def test_tables_are_laid_out_and_visible_and_the_hostile_id_stays_text(report: Path, tmp_path: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = _chromium(["--dump-dom", probe_page.resolve().as_uri()], tmp_path)
    dom = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and "</html>" in dom, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    for table in ("totals", "files", "causes", "examples"):
        assert probe[table] is not None, table
        assert probe[table]["visible"] and probe[table]["w"] > 200 and probe[table]["h"] > 20, (table, probe)
        assert probe[table]["rows"] >= 2, table
    assert probe["scripts"] == 1, "only the probe may run"
    assert probe["title"] == "Reconciliation report"
    assert "&lt;script&gt;document.title" in dom


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    result = _chromium([f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars",
                        report.resolve().as_uri()], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1280)
    dark = (pixels < 128).mean()
    assert 0.005 < dark < 0.5, f"text and table borders should cover part of the page, got {dark:.4f}"
