"""MkDocs hook (``hooks:`` in mkdocs.yml): every page under ``docs/`` is in the site's navigation.

A topic page added without a line in ``nav`` would build but be reachable only by search. Such pages
are appended under "More", titled by their first heading; give them a place in ``nav`` to move them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _listed(node: Any) -> set[str]:
    """The page paths named anywhere in a ``nav`` value."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_listed(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_listed(v) for v in node)) if node else set()
    return set()


def on_config(config: Any) -> Any:
    """Append the pages of ``docs_dir`` that ``nav`` does not name."""
    if not config.nav:
        return config
    docs = Path(config.docs_dir)
    listed = _listed(config.nav)
    extra = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md") if p.relative_to(docs).as_posix() not in listed)
    if extra:
        config.nav.append({"More": extra})
    return config
