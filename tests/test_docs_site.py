"""The documentation site: ``mkdocs build --strict`` passes, every internal link of the built site
resolves, and the home page and the API reference render in headless Chromium.

The site is built once into a temporary directory. Links are checked on the built HTML (every
``href`` and ``src`` that is not a remote URL must name a file of the site and, with a fragment, an
element with that id), so a link mkdocs cannot see (a theme template, a generated reference page)
is checked too. The browser test opens a copy of each page with a probe script appended, as the
other browser tests do, and reads what the probe measured from ``--dump-dom``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.setup_browser import headless_or_skip

ROOT = Path(__file__).resolve().parents[1]
REMOTE = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:")

PROBE = """<script>
window.addEventListener("load", () => {
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect(); return {w: r.width, h: r.height}; };
  const header = document.querySelector(".md-header");
  const out = {
    title: document.title,
    h1: Array.from(document.querySelectorAll("article h1")).map((h) => Array.from(h.childNodes)
      .filter((n) => !(n.classList && n.classList.contains("headerlink"))).map((n) => n.textContent).join("").trim()),
    content: box(document.querySelector("article.md-content__inner")),
    header_position: header ? getComputedStyle(header).position : null,
    nav_links: Array.from(document.querySelectorAll("nav.md-nav--primary a.md-nav__link")).map((a) => a.textContent.trim()),
    doc_ids: Array.from(document.querySelectorAll(".doc-heading")).map((h) => h.id),
    signatures: document.querySelectorAll(".doc-signature").length,
    tables: document.querySelectorAll("article table").length,
  };
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


class _Page(HTMLParser):
    """The ids a page defines and the links (``href``/``src``) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None and not (tag == "link" and ("rel", "preconnect") in attrs):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(site: Path) -> list[str]:
    """Every internal link of the HTML files under ``site`` that names no file, or no id in its target."""
    pages = {p.resolve(): _parse(p) for p in sorted(site.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        for link in page.links:
            if not link or link.lower().startswith(REMOTE) or link.startswith("//"):
                continue
            parts = urlsplit(link)
            # an absolute path is from the site's root (the theme's 404 page is served at any depth)
            base = site.resolve() if parts.path.startswith("/") else path.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else path
            where = f"{path.relative_to(site.resolve())}: {link}"
            if not target.is_file() or not target.is_relative_to(site.resolve()):
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target in pages and unquote(parts.fragment) not in pages[target].ids:
                broken.append(f"{where} (no element with id {unquote(parts.fragment)!r})")
    return broken


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a><a href="sub/page.html#gone">anchor</a><a href="nope.html">file</a>'
        '<a href="#top">self</a><h1 id="top">t</h1><a href="https://example.org/x">remote</a>'
        '<img src="img/a.png"><a href="sub/">a folder</a><a href="../outside.html">out</a>'
        '<a href="/sub/page.html#here">from the root</a><a href="/gone.html">missing from the root</a>', encoding="utf-8")
    (tmp_path / "sub" / "page.html").write_text('<h2 id="here">h</h2><a href="../index.html#top">back</a>',
                                                encoding="utf-8")
    (tmp_path.parent / "outside.html").write_text("x", encoding="utf-8")
    assert broken_links(tmp_path) == [
        "index.html: sub/page.html#gone (no element with id 'gone')",
        "index.html: nope.html (no such file)",
        "index.html: img/a.png (no such file)",
        "index.html: sub/ (no such file)",
        "index.html: ../outside.html (no such file)",
        "index.html: /gone.html (no such file)",
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs_site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert not re.search(r"^WARNING", result.stderr, re.M), result.stderr[-4000:]
    return out


pytestmark = pytest.mark.slow


def test_every_page_under_docs_is_built_and_in_the_navigation(site: Path) -> None:
    home = _parse(site / "index.html")
    nav = {link.split("#", 1)[0] for link in home.links}
    pages = sorted(p.relative_to(ROOT / "docs").with_suffix(".html").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert "reference/api.html" in pages and len(pages) >= 20
    for page in pages:
        assert (site / page).is_file(), page
        assert page in nav, f"{page} is not in the site's navigation"


def test_a_page_missing_from_the_nav_is_added_under_more(tmp_path: Path) -> None:
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "ref").mkdir()
    for page in ("index.md", "a.md", "new.md", "ref/x.md", "ref/y.md"):
        (tmp_path / page).write_text("# t\n", encoding="utf-8")
    config = SimpleNamespace(docs_dir=str(tmp_path), nav=[{"Home": "index.md"}, {"Guide": ["a.md", {"X": "ref/x.md"}]}])
    hooks.on_config(config)
    assert config.nav[-1] == {"More": ["new.md", "ref/y.md"]}
    hooks.on_config(config)  # nothing left to add
    assert [list(n) for n in config.nav] == [["Home"], ["Guide"], ["More"]]


def test_no_internal_link_of_the_built_site_is_broken(site: Path) -> None:
    assert broken_links(site) == []


def _probe(page: Path, tmp_path: Path) -> dict:
    probe_page = page.with_name(f"probe-{page.name}")
    probe_page.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        result = headless_or_skip(["--window-size=1280,2000", "--virtual-time-budget=5000", "--dump-dom",
                                   probe_page.resolve().as_uri()], tmp_path)
    finally:
        probe_page.unlink()
    dom = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0 and "</html>" in dom, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))


@pytest.mark.browser
def test_the_home_page_renders_with_the_theme_and_the_topic_navigation(site: Path, tmp_path: Path) -> None:
    probe = _probe(site / "index.html", tmp_path)
    assert probe["title"] == "spendlab" and probe["h1"] == ["spendlab"], probe
    assert probe["header_position"] == "sticky", "the theme's stylesheet did not apply"
    assert probe["content"]["w"] > 500 and probe["content"]["h"] > 800, probe["content"]
    for page in ("Reading data", "Features", "Models and selection", "Scoring", "Reconcile", "Python API"):
        assert page in probe["nav_links"], (page, probe["nav_links"])
    assert probe["tables"] >= 1


@pytest.mark.browser
def test_the_api_reference_renders_the_public_functions_with_their_signatures(site: Path, tmp_path: Path) -> None:
    probe = _probe(site / "reference" / "api.html", tmp_path)
    assert probe["title"].startswith("Python API") and probe["header_position"] == "sticky", probe
    assert "spendlab.api" in probe["doc_ids"], probe["doc_ids"]
    functions = [i for i in probe["doc_ids"] if i.startswith("spendlab.api.")]
    assert len(functions) >= 6 and probe["signatures"] >= 6, probe
    assert probe["content"]["h"] > 2000, probe["content"]


def test_design_notes_are_by_topic_and_superseded_decisions_are_dated() -> None:
    notes = (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8")
    assert len(notes.splitlines()) < 300 and "**" not in notes, "decisions.md is a map to the topic pages, not rules"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    superseded = changelog.split("## Superseded decisions", 1)[1]
    dates = re.findall(r"^### (\S+)$", superseded, re.M)
    assert dates and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates), dates
    assert dates == sorted(dates, reverse=True), "newest first"
    for block in re.split(r"^### ", superseded, flags=re.M)[1:]:
        assert re.search(r"^- \*\*", block, re.M), f"no entry under {block.splitlines()[0]}"
