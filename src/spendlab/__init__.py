"""spendlab: per-user spend analytics and forecasting.

The Python API (``spendlab.load``, ``describe``, ``features``, ``experiment``, ``score``,
``reconcile``; see :mod:`spendlab.api`) is exposed lazily: ``import spendlab`` imports nothing
but this file, which lower modules import for ``__version__``.

``describe``, ``features`` and ``reconcile`` are also subpackages. Python binds a subpackage to its
parent's attribute when it is imported (``import spendlab.describe.render`` sets
``spendlab.describe``), which would hide a function of the same name. So the subpackage *is* the
function: this package's module class intercepts that binding and gives the subpackage a module
class whose ``__call__`` runs the API function. ``spendlab.describe(...)`` and
``spendlab.describe.render`` then both work, in any import order (docs/python-api.md).
"""

import importlib
import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("spendlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

#: The API's functions; the first three share their name with a subpackage.
_CALLABLE_PACKAGES = ("describe", "features", "reconcile")
_FUNCTIONS = ("load", "experiment", "score")

__all__ = ["__version__", *_FUNCTIONS, *_CALLABLE_PACKAGES]


def _api_function(name: str) -> Any:
    # Imported by name at call time: the API sits on top of every layer, and the lower layers
    # import this package (for __version__), so a static import here would be a cycle.
    return getattr(importlib.import_module("spendlab.api"), name)


class _CallablePackage(types.ModuleType):
    """A subpackage that is also the API function of the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _api_function(self.__name__.rpartition(".")[2])(*args, **kwargs)

    @property
    def __signature__(self) -> Any:  # help() and notebooks' ? show the function's parameters
        import inspect

        return inspect.signature(_api_function(self.__name__.rpartition(".")[2]))


class _Spendlab(types.ModuleType):
    """This package's module class: marks the callable subpackages as the import system binds them."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_PACKAGES and type(value) is types.ModuleType and \
                value.__name__ == f"{self.__name__}.{name}":
            value.__class__ = _CallablePackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Spendlab


def __getattr__(name: str) -> Any:
    """PEP 562: the API functions, and the callable subpackages before anything imported them."""
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")  # binding it runs _Spendlab.__setattr__
    if name in _FUNCTIONS:
        return _api_function(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
