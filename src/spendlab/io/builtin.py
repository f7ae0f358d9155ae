"""The embedded datasets that a ``builtin:NAME`` input names, located in their installed distributions."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from spendlab.errors import SpendlabError

#: name -> (distribution, path inside it, format, description)
BUILTINS: dict[str, tuple[str, str, str, str]] = {
    "cdnow": (
        "lifetimes",
        "lifetimes/datasets/CDNOW_master.txt",
        "cdnow",
        "CDNOW master file: 23,570 customers, 69,659 purchases, 1997-01 .. 1998-06 (Fader, Hardie & Lee)",
    ),
}


def builtin_path(name: str) -> Path:
    """Locate an embedded dataset's file in its installed distribution, without importing it."""
    if name not in BUILTINS:
        raise SpendlabError(f"unknown built-in dataset {name!r}; available: {', '.join(BUILTINS)}")
    dist, rel, _, _ = BUILTINS[name]
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        raise SpendlabError(f"built-in dataset {name!r} needs the {dist!r} package installed") from None
    if not path.is_file():
        raise SpendlabError(f"built-in dataset {name!r}: {path} is missing from the {dist!r} install")
    return path
