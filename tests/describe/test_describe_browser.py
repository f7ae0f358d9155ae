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
