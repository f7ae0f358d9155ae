"""Installed dependency versions against the ranges spendlab is tested with.

The ranges are the ``dependencies`` of ``pyproject.toml``, read back from the installed package's
metadata, so there is one list to keep (docs/dependencies.md says why each range is what it is).
A resolver keeps a normal install inside them; an environment assembled by hand (``--no-deps``,
overrides, a shared conda environment) may not, and then results may differ from the tested ones.
The CLI says so in one line and carries on: a warning, never a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version

__all__ = ["Untested", "untested_dependencies", "untested_dependencies_line"]


@dataclass(frozen=True)
class Untested:
    """One runtime dependency outside its tested range.

    Attributes
    ----------
    name : str
        The distribution name as the requirement spells it (``scikit-learn``).
    installed : str or None
        The installed version, or ``None`` when the distribution is missing.
    tested : str
        The tested range (``>=2.2,<4``).
    """

    name: str
    installed: str | None
    tested: str

    def __str__(self) -> str:
        return f"{self.name} {self.installed or 'missing'} (tested {self.tested or 'any'})"


def untested_dependencies(
    requirements: Iterable[str] | None = None,
    installed: Callable[[str], str] | None = None,
) -> list[Untested]:
    """Return the runtime requirements whose installed version falls outside the tested range.

    Parameters
    ----------
    requirements : iterable of str, optional
        PEP 508 requirement strings; default: the installed spendlab's own ``Requires-Dist``.
        Requirements behind an extra (``test``, ``spark``) are skipped: they are optional.
    installed : callable, optional
        Maps a distribution name to its installed version and raises
        :class:`importlib.metadata.PackageNotFoundError` when it is absent; default:
        :func:`importlib.metadata.version`.

    Returns
    -------
    list of Untested
        In requirement order; empty when everything is inside its range. Pre-releases count as
        inside a range they would otherwise satisfy (``3.0.0rc1`` against ``<4``).
    """
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion

    if requirements is None:
        requirements = requires("spendlab") or []
    if installed is None:
        installed = version
    out: list[Untested] = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and ("extra" in str(req.marker) or not req.marker.evaluate()):
            continue
        try:
            have = installed(req.name)
        except PackageNotFoundError:
            out.append(Untested(req.name, None, str(req.specifier)))
            continue
        try:
            inside = req.specifier.contains(have, prereleases=True)
        except InvalidVersion:  # a local build with a non-PEP 440 version: cannot tell, so say so
            inside = False
        if not inside:
            out.append(Untested(req.name, have, str(req.specifier)))
    return out


def untested_dependencies_line(
    requirements: Iterable[str] | None = None,
    installed: Callable[[str], str] | None = None,
) -> str | None:
    """One warning line naming every dependency outside its tested range, or ``None``.

    Parameters
    ----------
    requirements, installed
        As for :func:`untested_dependencies`.

    Returns
    -------
    str or None
        ``None`` when every dependency is inside its range, and also when the check itself cannot
        run (no package metadata, say a source tree on ``sys.path``): a start-up courtesy must
        never be the thing that fails.
    """
    try:
        found = untested_dependencies(requirements, installed)
    except Exception:  # see Returns: the check never breaks the command it precedes
        return None
    if not found:
        return None
    return ("warning: installed versions differ from those spendlab is tested with: "
            + "; ".join(str(u) for u in found) + " (results may differ; see docs/dependencies.md)")
