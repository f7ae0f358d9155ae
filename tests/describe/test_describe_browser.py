"""``report.html`` renders in real headless Chromium: figures present, decodable, and not blank.

Chromium is Debian's ``chromium`` package, installed by ``python -m tests.setup_browser`` (run by
``make test``). Network is off for the page (no proxy, background networking disabled) and the
report must still render: it is one self-contained file.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from spendlab.io import load_transactions
from spendlab.jobs.describe import run_describe
from tests.setup_browser import run_headless

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURE = Path(__file__).parent / "fixtures" / "describe_small.csv"
N_FIGURES = 10  # days-per-week + nine insights


def _chromium(args: list[str], tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    try:
        return run_headless(args, tmp / "profile", timeout)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "out"
    run_describe(load_transactions(str(FIXTURE), "generic"), out, top_n=5)
    return out / "report.html"


def test_report_dom_in_chromium_has_every_figure_with_image_data(report: Path, tmp_path: Path) -> None:
    result = _chromium(["--dump-dom", report.resolve().as_uri()], tmp_path)
    dom = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and "</html>" in dom, result.stderr[-2000:]
    srcs = re.findall(r'<img[^>]*\ssrc="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert len(srcs) == N_FIGURES
    for src in srcs:
        pixels = _pixels(base64.b64decode(src))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert pixels.std() > 5, "a figure is blank"
    assert 'id="insight-concentration"' in dom and "The top 1% of users" in dom


def test_report_screenshot_in_chromium_shows_rendered_figures(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars",
                        report.resolve().as_uri()], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = _pixels(shot.read_bytes())
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20, "the screenshot is blank"
    # Figures are painted: some 100-row band of the page holds many distinct grey levels (a chart,
    # not only text on white).
    bands = [len(np.unique(pixels[y:y + 100].round())) for y in range(0, 1900, 100)]
    assert max(bands) > 60
    # Readable on a laptop: the content column is centred and narrower than the window.
    cols = np.where((pixels < 250).any(axis=0))[0]
    assert cols.min() > 40 and cols.max() < 1240


_MEASURE = """<script>window.addEventListener('load', function () {
 var d = document.scrollingElement, over = [];
 document.querySelectorAll('.scroll').forEach(function (e) {
   var c = e.querySelector('caption');
   if (e.scrollWidth > e.clientWidth) over.push(c ? c.textContent : '?');
 });
 var m = {innerWidth: window.innerWidth, scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, overflowing: over,
   tables: document.querySelectorAll('table').length,
   captions: Array.from(document.querySelectorAll('table > caption')).map(function (c) { return c.textContent; })};
 var p = document.createElement('pre'); p.id = 'spendlab-metrics'; p.textContent = JSON.stringify(m);
 document.body.appendChild(p);
});</script></body>"""


def _layout_metrics(report_html: Path, tmp: Path, width: int = 1280) -> dict:
    """Layout measured by Chromium at ``width`` px: a copy of the page (CSP lifted) with a measuring script."""
    import json

    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report_html.read_text(encoding="utf-8"))
    page = tmp / "measure.html"
    page.write_text(html.replace("</body>", _MEASURE), encoding="utf-8")
    result = _chromium([f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                       tmp)
    found = re.search(r'<pre id="spendlab-metrics">(.*?)</pre>', result.stdout.decode("utf-8", "replace"))
    assert found, result.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory) -> Path:
    """A report whose tables are as wide as real ones: long money figures, 20 rows, net spend, a currency."""
    import pandas as pd

    from spendlab.api import describe_transactions

    n = 400
    users = [f"customer-{i:05d}" for i in range(n)]
    rows = pd.DataFrame({
        "user_id": [users[i % n] for i in range(3 * n)],
        "ts": pd.date_range("2022-11-01", periods=3 * n, freq="17h", tz="UTC"),
        "amount": [((i * 7919 % 100_000) / 3 + 1_000_000 * (i % 97 == 0)) * (-0.01 if i % 13 == 0 else 1)
                   for i in range(3 * n)],
    })
    out = tmp_path_factory.mktemp("wide") / "out"
    describe_transactions(rows, out=out, currency="USD", net_refunds=True, per_user_tables=False)
    return out / "report.html"


def test_report_fits_1280_px_with_a_caption_on_every_table(wide_report: Path, tmp_path: Path) -> None:
    m = _layout_metrics(wide_report, tmp_path)
    assert m["innerWidth"] == 1280
    assert m["scrollWidth"] <= m["clientWidth"], "the page scrolls sideways at 1,280 px"
    assert m["overflowing"] == [], f"tables that need horizontal scrolling: {m['overflowing']}"
    assert m["tables"] == len(m["captions"]) >= 15, "a table without its caption"
    assert "Top 20 spenders" in m["captions"]
    assert "Bottom 20 spenders (lowest positive gross spend)" in m["captions"]


def test_report_screenshot_at_1280_px_has_no_horizontal_scrollbar(wide_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "wide.png"
    result = _chromium([f"--screenshot={shot}", "--window-size=1280,1400", wide_report.resolve().as_uri()], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = _pixels(shot.read_bytes())
    assert pixels.shape == (1400, 1280)
    # A horizontal scrollbar would be a grey band across the bottom rows of the viewport.
    bottom = pixels[-15:, :1200]
    assert not ((bottom > 150) & (bottom < 235)).mean(axis=1).max() > 0.8, "a horizontal scrollbar is drawn"
