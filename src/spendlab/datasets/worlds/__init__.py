"""Synthetic worlds beyond the BTYD profiles.

``habit`` (routine shoppers) and ``mixed`` (routine shoppers among occasional buyers). Each has the interface of
:class:`~spendlab.datasets.synth.SynthWorld` (chunks, latent draws, purchases, oracle).
"""

from __future__ import annotations

from spendlab.datasets.shift import Shift
from spendlab.datasets.synth import SynthWorld
from spendlab.datasets.worlds.habit import HabitWorld
from spendlab.datasets.worlds.mixed import MixedWorld
from spendlab.errors import SpendlabError

#: The worlds by the name ``spendlab datasets synth --profile`` uses.
WORLDS: dict[str, type] = {"habit": HabitWorld, "mixed": MixedWorld}


def make_world(profile: str, *, users: int, months: int, start: str = "2023-01-01", seed: int = 0,
               chunk_users: int = 50_000, refund_rate: float = 0.01, shift: Shift | None = None) -> SynthWorld:
    """Make the generator of ``profile``: a world of :data:`WORLDS`, else a BTYD profile's SynthWorld.

    Parameters
    ----------
    profile : str
        ``habit``, ``mixed`` or a key of :data:`spendlab.datasets.synth.PROFILES`.
    users, months, start, seed, chunk_users, refund_rate
        As :class:`~spendlab.datasets.synth.SynthWorld` (the worlds write no refunds).
    shift : Shift, optional
        A change of behaviour at a known month (the BTYD profiles only).

    Returns
    -------
    SynthWorld
        The seeded world.

    Raises
    ------
    SpendlabError
        A shift asked of a world that does not model one.
    """
    if profile in WORLDS:
        if shift is not None:
            raise SpendlabError(f"--shift applies to the BTYD profiles, not to the {profile!r} world")
        return WORLDS[profile](users=users, months=months, start=start, seed=seed, chunk_users=chunk_users)
    return SynthWorld(users=users, months=months, start=start, seed=seed, chunk_users=chunk_users,
                      refund_rate=refund_rate, profile=profile, shift=shift)
