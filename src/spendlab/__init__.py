"""spendlab: per-user spend analytics and forecasting.

The Python API (``spendlab.load``, ``describe_transactions``, ``user_features``, ``experiment``,
``score``, ``reconcile_summaries``; see :mod:`spendlab.api`) is exposed lazily (PEP 562):
``import spendlab`` imports nothing but this file, which lower modules import for ``__version__``.
No API name is the name of a subpackage, so what a name means never depends on import order.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("spendlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

#: The Python API's functions, defined in :mod:`spendlab.api`.
API_FUNCTIONS = ("load", "describe_transactions", "user_features", "experiment", "score", "reconcile_summaries")

__all__ = ["__version__", *API_FUNCTIONS]


def __getattr__(name: str) -> Any:
    """PEP 562: the API functions, imported on first use.

    They are looked up by name at call time because the API sits on top of every layer and the
    lower layers import this package for ``__version__``: a static import here would be a cycle.
    """
    if name in API_FUNCTIONS:
        return getattr(importlib.import_module("spendlab.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Return the module's names, the lazily exposed API functions included."""
    return sorted({*globals(), *__all__})
