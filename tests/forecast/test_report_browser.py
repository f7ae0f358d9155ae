"""The experiment ``report.html`` in real headless Chromium, offline: all five figures decode and are
laid out, the tables are visible, and a screenshot shows charts, not a blank page.

A test-only copy of the page gets a probe script that records each image's ``naturalWidth`` and each
table's size into the DOM, which ``--dump-dom`` prints. The report itself carries no script.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spendlab.forecast.report import report_tables
from spendlab.forecast.report_render import render_report
from tests.setup_browser import headless_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIGURES = ("fig-leaderboard", "fig-tracking", "fig-calibration", "fig-gain", "fig-segments")
TABLES = ("leaderboard-table", "tracking-table", "calibration-table", "segments-table")
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


_chromium = headless_or_skip  # one Chromium launcher for every browser test


def _predictions(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three test origins x 200 users: a champion that ranks well and a noisier peer."""
    rng = np.random.default_rng(seed)
    rows = []
    for cutoff in ("2023-10-31", "2023-11-30", "2023-12-31"):
        y = rng.gamma(0.5, 80.0, 200) * (rng.random(200) < 0.6)
        seg = rng.choice(["new", "active", "lapsed"], 200, p=[0.1, 0.6, 0.3])
        for model, noise in (("lightgbm", 0.3), ("last_period", 1.0), ("zero", None)):
            pred = np.zeros(200) if noise is None else np.maximum(0, y * rng.lognormal(0, noise, 200) + 5)
            rows.append(pd.DataFrame({"model": model, "split": "test", "cutoff": cutoff,
                                      "target_period": pd.Timestamp(cutoff) + pd.Timedelta(days=1),
                                      "user_id": [f"u{i}" for i in range(200)], "segment": seg,
                                      "y_true": y, "y_pred": pred}))
    preds = pd.concat(rows, ignore_index=True)
    board = pd.DataFrame({"model": ["lightgbm", "last_period", "zero"], "rmse": [40.0, 70.0, 90.0],
                          "mae": [20.0, 35.0, 30.0], "bias": [0.01, 0.05, -1.0], "validation_rmse": [41.0, 72.0, 88.0],
                          "champion": [True, False, False], "tuned": [False, False, False]})
    return preds, board


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    preds, board = _predictions()
    html = render_report(report_tables("browser_demo", board, "lightgbm", preds, {m: {} for m in board["model"]}))
    path = tmp_path_factory.mktemp("experiment_report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_every_figure_decodes_and_every_table_is_laid_out_offline(report: Path, tmp_path: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
    probe_page = tmp_path / "probe.html"
    # The page's own policy forbids scripts; the probe copy allows inline script and nothing else
    # (images still load only from data: URIs, so an external asset would show as naturalWidth 0).
    csp = "default-src 'none';"
    assert csp in html
    probe_html = html.replace(csp, csp + " script-src 'unsafe-inline';").replace("</body>", PROBE + "</body>")
    probe_page.write_text(probe_html, encoding="utf-8")
    result = _chromium(["--dump-dom", probe_page.resolve().as_uri()], tmp_path)
    dom = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and "</html>" in dom, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert sorted(probe["images"]) == sorted(FIGURES)
    for fig, img in probe["images"].items():
        assert img["complete"] and img["natural"] > 300, (fig, img)
        assert img["w"] > 300 and img["h"] > 150, (fig, img)
    for table in TABLES:
        assert probe["tables"][table]["w"] > 150 and probe["tables"][table]["rows"] >= 2, (table, probe["tables"])
    assert probe["tables"]["leaderboard-table"]["rows"] == 3


def test_screenshot_shows_charts_not_a_blank_page(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    result = _chromium([f"--screenshot={shot}", "--window-size=1280,3000", "--hide-scrollbars",
                        report.resolve().as_uri()], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1280)
    assert pixels.std() > 20, "the screenshot is blank"
    bands = [len(np.unique(pixels[y:y + 100].round())) for y in range(0, 2900, 100)]
    assert max(bands) > 60, "no band of the page holds a chart"
