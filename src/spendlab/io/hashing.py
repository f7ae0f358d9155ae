"""SHA-256 of files, read in 1 MiB blocks: the one place spendlab hashes file contents."""

from __future__ import annotations

import hashlib
import os
from typing import Any

_BLOCK = 1 << 20


def update_with_file(h: Any, path: str | os.PathLike[str]) -> None:
    """Feed ``path``'s bytes into the running hash ``h`` (hashlib releases the GIL on large blocks)."""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_BLOCK), b""):
            h.update(chunk)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of one file's bytes."""
    h = hashlib.sha256()
    update_with_file(h, path)
    return h.hexdigest()
